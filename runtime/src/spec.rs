//! The sandbox specification: what to run, on which root filesystem, with which mounts,
//! identity, network and limits. Built with a builder-style API and started with
//! [`Sandbox::spawn`](crate::Sandbox::spawn).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::RuntimeError;
use crate::group::{Joined, NetworkGroup};
use crate::idmap::IdMode;
use crate::isolation::Isolation;

/// The root filesystem of a sandbox.
#[derive(Debug, Clone)]
pub enum RootFs {
    /// A plain directory used as it is (bind-mounted onto itself). Nothing is captured.
    Dir {
        /// The directory.
        path: PathBuf,
        /// Whether the sandbox may write to it.
        writable: bool,
    },
    /// An overlay of read-only layer directories with a fresh upper directory, whose
    /// contents become the diff of the step.
    Overlay(Overlay),
}

/// An overlay root: read-only lower layers (bottom first) and a state directory that
/// holds the upper, work and mount-point directories (created on spawn).
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Unpacked layer directories, bottom (base) layer first.
    pub lowers: Vec<PathBuf>,
    /// Directory for `upper/`, `work/`, `merged/` (and `copy/` in the copy fallback).
    pub state_dir: PathBuf,
    /// Skip the kernel overlay and use a copied tree plus a stat-walk diff.
    pub force_copy: bool,
}

impl Overlay {
    /// An overlay of `lowers` (bottom first) with its state under `state_dir`. The copy
    /// fallback is forced when the environment has `FLENSE_FORCE_COPY=1`.
    pub fn new(lowers: Vec<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Overlay {
            lowers,
            state_dir: state_dir.into(),
            force_copy: std::env::var_os("FLENSE_FORCE_COPY").is_some_and(|v| v == "1"),
        }
    }

    /// Forces (or stops forcing) the copy fallback.
    pub fn force_copy(mut self, force: bool) -> Self {
        self.force_copy = force;
        self
    }

    /// The upper directory: what the step wrote (kernel overlay mode).
    pub fn upper_dir(&self) -> PathBuf {
        self.state_dir.join("upper")
    }
}

/// An extra mount inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A host path bind-mounted at `dst`.
    Bind {
        /// Host path.
        src: PathBuf,
        /// Absolute path inside the sandbox.
        dst: PathBuf,
        /// Mount read-only.
        readonly: bool,
    },
    /// A fresh tmpfs at `dst`.
    Tmpfs {
        /// Absolute path inside the sandbox.
        dst: PathBuf,
        /// Size limit in bytes (`None`: the kernel default, half of RAM).
        size: Option<u64>,
    },
    /// A persistent cache directory on the host (created if missing), mounted read-write
    /// at `dst`; its contents never enter the diff.
    Cache {
        /// Host directory.
        src: PathBuf,
        /// Absolute path inside the sandbox.
        dst: PathBuf,
    },
}

impl Mount {
    /// The path inside the sandbox.
    pub fn dst(&self) -> &Path {
        match self {
            Mount::Bind { dst, .. } | Mount::Tmpfs { dst, .. } | Mount::Cache { dst, .. } => dst,
        }
    }
}

/// Network of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Share the host's network namespace.
    #[default]
    Host,
    /// A new network namespace with only the loopback interface, up.
    None,
}

/// Where a standard stream of the sandboxed process goes.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own stream.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe whose other end is in [`Child`](crate::Child).
    Piped,
    /// This open file.
    File(File),
}

/// The identity the command runs as, inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary group IDs (ignored in single mode, where `setgroups` is denied).
    pub groups: Vec<u32>,
}

/// A resource limit to set before the command starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The resource (`libc::RLIMIT_*`).
    pub resource: u32,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// A sandbox: everything needed to start one command in isolation.
#[derive(Debug)]
pub struct Sandbox {
    pub(crate) root: RootFs,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: PathBuf,
    pub(crate) user: User,
    pub(crate) hostname: Option<String>,
    pub(crate) network: Network,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
    pub(crate) timeout: Option<Duration>,
    pub(crate) rlimits: Vec<Rlimit>,
    pub(crate) id_mode: IdMode,
    pub(crate) isolation: Isolation,
    pub(crate) joined: Option<Joined>,
}

impl Sandbox {
    /// A sandbox that runs `args` (program first; looked up in the sandbox's `PATH`
    /// when it has no `/`) on `root`, as uid/gid 0, in `/`, with the host network.
    pub fn new(root: RootFs, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Sandbox {
            root,
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            user: User::default(),
            hostname: None,
            network: Network::Host,
            mounts: Vec::new(),
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            timeout: None,
            rlimits: Vec::new(),
            id_mode: IdMode::Auto,
            isolation: Isolation::Auto,
            joined: None,
        }
    }

    /// Sets (or replaces) an environment variable. The environment starts empty.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// The working directory inside the sandbox (created if missing).
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = cwd.into();
        self
    }

    /// The user and primary group the command runs as.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.user.uid = uid;
        self.user.gid = gid;
        self
    }

    /// Supplementary groups of the command.
    pub fn groups(mut self, groups: Vec<u32>) -> Self {
        self.user.groups = groups;
        self
    }

    /// The host name inside the sandbox (default: `flense`).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// Host network or none.
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Adds an extra mount.
    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Standard input.
    pub fn stdin(mut self, stdio: Stdio) -> Self {
        self.stdin = stdio;
        self
    }

    /// Standard output.
    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.stdout = stdio;
        self
    }

    /// Standard error.
    pub fn stderr(mut self, stdio: Stdio) -> Self {
        self.stderr = stdio;
        self
    }

    /// Kills the whole sandbox when the command runs longer than this.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a resource limit (`libc::RLIMIT_*`).
    pub fn rlimit(mut self, resource: u32, soft: u64, hard: u64) -> Self {
        self.rlimits.push(Rlimit {
            resource,
            soft,
            hard,
        });
        self
    }

    /// The user-namespace ID mode (default: detected).
    pub fn id_mode(mut self, mode: IdMode) -> Self {
        self.id_mode = mode;
        self
    }

    /// Namespaces or chroot (default: namespaces when allowed, see [`Isolation`]).
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Joins `group`'s user and network namespaces instead of creating new ones (the
    /// network setting is then ignored, and the ID mode is the group's).
    pub fn join(mut self, group: &NetworkGroup) -> Result<Self, RuntimeError> {
        self.joined = Some(group.joined()?);
        Ok(self)
    }

    /// The environment of the command, in order.
    pub fn env_vars(&self) -> &[(String, String)] {
        &self.env
    }

    /// The identity the command runs as.
    pub fn identity(&self) -> &User {
        &self.user
    }

    /// The root filesystem.
    pub fn root(&self) -> &RootFs {
        &self.root
    }
}
