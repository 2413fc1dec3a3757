//! The instruction model: Blubber's `build.Instruction` types, each carrying both the
//! form Blubber writes (with `$LIVES_UID`-style references, rendered by
//! [`super::dockerfile`]) and the effective values the build executor needs (numeric
//! owners, expanded shell lines, the user and directory a step runs in).

use serde::Serialize;

/// One environment variable, `name=value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl EnvVar {
    /// A variable from a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The compilation phase an instruction came from (§5.1), in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Runs as root: base, build arguments, apt, user creation.
    Privileged,
    /// Switches to the lives user: HOME, working directory, `runs.environment`.
    PrivilegeDropped,
    /// Builders (node, php, python, custom), as the lives user.
    PreInstall,
    /// `copies`, owned by the lives user.
    Install,
    /// Switches to the runs user; runtime settings and the entrypoint.
    PostInstall,
}

/// The default value of an `ARG` instruction: Blubber writes strings quoted and the
/// lives/runs IDs bare (`ARG LIVES_UID=65533`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ArgDefault {
    /// A string default, rendered `ARG NAME="value"`.
    Str(String),
    /// An unsigned integer default, rendered `ARG NAME=123`.
    Uint(u32),
}

impl ArgDefault {
    /// The default as the string that enters the build environment.
    pub fn as_env_value(&self) -> String {
        match self {
            ArgDefault::Str(s) => s.clone(),
            ArgDefault::Uint(n) => n.to_string(),
        }
    }
}

/// The numeric owner of copied files (`--chown`), as written and as resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// The user as Blubber writes it, e.g. `$LIVES_UID`.
    pub user: String,
    /// The group as Blubber writes it, e.g. `$LIVES_GID`.
    pub group: String,
    /// The resolved numeric user ID.
    pub uid: u32,
    /// The resolved numeric group ID.
    pub gid: u32,
}

/// Where a builder mount's filesystem comes from (§5.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum MountSource {
    /// The final filesystem of another variant of the same config (built first).
    Variant(String),
    /// An image reference, pulled.
    Image(String),
    /// The local build context.
    Local,
}

impl MountSource {
    /// The name as the config writes it (`local`, a variant name or an image reference).
    pub fn name(&self) -> &str {
        match self {
            MountSource::Variant(n) | MountSource::Image(n) => n,
            MountSource::Local => "local",
        }
    }
}

/// A read-write bind mount whose changes are discarded (`builder.mounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The filesystem to mount.
    pub from: MountSource,
    /// Mount point, env-expanded; relative paths resolve against `workdir` of the run.
    pub destination: String,
    /// Sub-path of the source filesystem to mount, env-expanded; `None` = its root.
    pub source: Option<String>,
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheAccess {
    /// Any number of concurrent users (the default).
    Shared,
    /// One user at a time; others wait.
    Locked,
    /// Each concurrent user gets its own instance.
    Private,
}

impl CacheAccess {
    /// The name used in config files and in Dockerfile `sharing=`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheAccess::Shared => "shared",
            CacheAccess::Locked => "locked",
            CacheAccess::Private => "private",
        }
    }
}

/// A persistent cache mount (`builder.caches`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cache {
    /// Mount point, env-expanded.
    pub destination: String,
    /// Cache identity: the configured `id`, or the expanded destination.
    pub id: String,
    /// Sharing mode.
    pub access: CacheAccess,
    /// Owner `(uid, gid)` of a fresh cache directory (mode 0755); `None` = root.
    /// Set when the lives uid or gid is non-zero, so the builder can write to it.
    pub owner: Option<(u32, u32)>,
}

/// Everything a `Run`, `RunAll` or `RunScript` needs to execute, resolved at compile time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunContext {
    /// The user the step runs as: the bare numeric UID string (`USER` semantics;
    /// the group comes from the image's `/etc/passwd`).
    pub user: String,
    /// The working directory of the step. Before the stage's first `WORKDIR` (the
    /// Privileged phase: apt and user set-up, which use absolute paths only) this is
    /// `/`; BuildKit would use the base image's `WorkingDir` there.
    pub workdir: String,
    /// Variables the plan has set in the build environment so far, in order (build
    /// arguments, `HOME`, `runs.environment`, builder ENVs). Apply them over the base
    /// image `Env` and the platform variables of [`super::Plan::platform_env`].
    pub env: Vec<EnvVar>,
    /// Builder source mounts.
    pub mounts: Vec<Mount>,
    /// Builder cache mounts.
    pub caches: Vec<Cache>,
}

/// Where a cross-stage copy reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum CopySource {
    /// Another variant of the same config; it is built first.
    Variant(String),
    /// An image reference, pulled.
    Image(String),
}

impl CopySource {
    /// The variant name or image reference.
    pub fn name(&self) -> &str {
        match self {
            CopySource::Variant(n) | CopySource::Image(n) => n,
        }
    }
}

/// A copy's sources and destination, with BuildKit's Dockerfile-COPY semantics (§5.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopySpec {
    /// Source paths as written (globs allowed). Local sources are relative to the
    /// build context root.
    pub sources: Vec<String>,
    /// Destination as written; relative paths resolve against `workdir`. With more than
    /// one source Blubber's renderer adds a trailing `/`, and so does this field.
    pub destination: String,
    /// Exclude patterns (moby pattern syntax, `!` negation), relative to the source.
    pub exclude: Vec<String>,
    /// Owner of the copied files; `None` keeps the source ownership (scratch variants).
    pub chown: Option<Owner>,
    /// The working directory at the time of the copy, for relative destinations.
    pub workdir: String,
}

/// One Blubber instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Instruction {
    /// Start a stage: `FROM <image> AS <stage>` (`None` = scratch).
    Base {
        /// The base image reference, or `None` for an empty filesystem.
        image: Option<String>,
        /// The stage (variant) name.
        stage: String,
    },
    /// Declare a build argument and bind its value into the build environment only.
    Arg {
        /// The argument name.
        name: String,
        /// The default from the config (rendered).
        default: ArgDefault,
        /// The effective value: the `--build-arg` value when given, else the default.
        value: String,
    },
    /// Set variables in the build environment and in the image config.
    Env {
        /// The definitions as written (sorted by name where Blubber sorts them).
        definitions: Vec<EnvVar>,
        /// The values as they enter the image config (expanded before any of these
        /// definitions is applied: quirk Q17).
        image_values: Vec<EnvVar>,
        /// The values as they enter the build environment (applied one by one).
        build_values: Vec<EnvVar>,
    },
    /// Switch user: `USER <name>`.
    User {
        /// The user as written, e.g. `$LIVES_UID`.
        name: String,
        /// The effective user (bare UID string).
        uid: String,
    },
    /// Change the working directory (created if missing): `WORKDIR "<path>"`.
    WorkingDirectory {
        /// The path as written.
        path: String,
        /// The expanded path.
        effective: String,
    },
    /// One shell command in its own exec: `/bin/sh -c <effective>`.
    Run {
        /// The shell line as written (Go-quoted arguments, unexpanded).
        command: String,
        /// The shell line after Blubber's own variable expansion (§5.9): what runs.
        effective: String,
        /// User, directory, environment and mounts of the exec.
        context: RunContext,
    },
    /// Several shell commands joined with ` && ` into one exec.
    RunAll {
        /// The shell lines as written.
        commands: Vec<String>,
        /// The joined and expanded line: what runs through `/bin/sh -c`.
        effective: String,
        /// User, directory, environment and mounts of the exec.
        context: RunContext,
    },
    /// A builder script, written to a scratch file and executed directly (never expanded).
    RunScript {
        /// The script text, with `#!/bin/sh` prepended when it had no shebang.
        script: String,
        /// sha256 hex of `script`: the script lives at `/<sha256>/script` (mode 0555)
        /// on a read-only scratch mount during the exec.
        sha256: String,
        /// User, directory, environment and mounts of the exec.
        context: RunContext,
    },
    /// Copy from the build context.
    Copy(CopySpec),
    /// Copy from another variant's final filesystem or from an image.
    CopyFrom {
        /// Where the sources are read.
        from: CopySource,
        /// For a variant source: its final working directory (`runs.in`, else `lives.in`,
        /// `/` for scratch), against which relative sources resolve (quirk Q23).
        source_workdir: Option<String>,
        /// Sources, destination, excludes and owner.
        #[serde(flatten)]
        copy: CopySpec,
    },
    /// Write a file with fixed content, owned by root.
    File {
        /// Absolute path in the image.
        path: String,
        /// The file's bytes (text).
        content: String,
        /// Permission bits, e.g. `0o644`.
        mode: u32,
    },
    /// Set the image entrypoint (exec form) and clear `Cmd`.
    EntryPoint {
        /// The argv.
        command: Vec<String>,
    },
    /// Image labels.
    Label {
        /// Labels in order.
        definitions: Vec<EnvVar>,
    },
}

/// An instruction with the phase that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The phase (§5.1).
    pub phase: Phase,
    /// The instruction.
    #[serde(flatten)]
    pub instruction: Instruction,
}
