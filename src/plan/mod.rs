//! Compiles a Blubber variant into a plan of instructions and renders it as a Dockerfile.
//!
//! Pure: no I/O. [`compile()`] turns an expanded variant (and the variants it copies or
//! mounts from) into a [`Plan`]: one [`Stage`] per variant, dependencies first, each a
//! list of [`Step`]s in Blubber's phase order (§5), carrying everything the build
//! executor needs. [`dockerfile::render`] prints the Dockerfile-equivalent text (§6).

mod apt;
mod builders;
pub mod compile;
pub mod copies;
pub mod dockerfile;
pub mod env;
pub mod expand;
pub mod instruction;
pub mod quote;
mod stage;
pub mod summary;
mod users;

use std::collections::BTreeMap;

use serde::Serialize;

pub use compile::{base_images, compile, compile_stage, StageEnv};
pub use instruction::{
    ArgDefault, Cache, CacheAccess, CopySource, CopySpec, EnvVar, Instruction, Mount, MountSource,
    Owner, Phase, RunContext, Step,
};

/// The target platform, for the `BUILD*`/`TARGET*` variables.
use crate::image::platform::Platform;

/// The label key naming the built variant.
pub const LABEL_VARIANT: &str = "blubber.variant";
/// The label key naming the tool version that built the image.
pub const LABEL_VERSION: &str = "blubber.version";

/// The value of the `blubber.version` label: flense's own version (not Blubber's).
pub fn version_label() -> String {
    format!("flense-{}", env!("CARGO_PKG_VERSION"))
}

/// The compiled form of one variant and the variants it depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The variant that was asked for (the last stage; the only one exported).
    pub target: String,
    /// Stages in build order: copies/mounts dependencies first (leaves first), target last.
    pub stages: Vec<Stage>,
    /// Platform variables (`BUILDPLATFORM`, `TARGETARCH`, ...) set for every exec; not
    /// part of the image config.
    pub platform_env: Vec<EnvVar>,
    /// Proxy variables from `--build-arg` (`HTTP_PROXY`, `https_proxy`, ...): set for
    /// every exec, never persisted.
    pub proxy_env: Vec<EnvVar>,
    /// The labels of the exported image (rendered once, after the last stage).
    pub labels: Vec<EnvVar>,
}

impl Plan {
    /// The target stage.
    pub fn target_stage(&self) -> &Stage {
        self.stages
            .last()
            .expect("a plan always has its target stage")
    }

    /// The stage built from `variant`, if it is part of the plan.
    pub fn stage(&self, variant: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.variant == variant)
    }
}

/// One variant compiled into instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// The variant name (also the stage name).
    pub variant: String,
    /// The base image reference; `None` = scratch.
    pub base: Option<String>,
    /// Variants whose final filesystems this stage reads (copies, requirements, mounts),
    /// in first-use order. All of them come earlier in [`Plan::stages`].
    pub depends_on_variants: Vec<String>,
    /// Build arguments declared by this stage, with their effective values.
    pub build_args: Vec<EnvVar>,
    /// The instructions, starting with [`Instruction::Base`].
    pub steps: Vec<Step>,
    /// What the stage changes in the image config it inherits from its base.
    pub image: ImageConfig,
}

/// The image-config changes a stage makes (§5.11), applied over the base image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageConfig {
    /// `User`: the bare UID string; `None` keeps the base image's (scratch variants).
    pub user: Option<String>,
    /// `WorkingDir`: `runs.in`, else `lives.in`; `/` for scratch.
    pub working_dir: String,
    /// `Entrypoint`; when set, `Cmd` is cleared. `None` keeps the base image's.
    pub entrypoint: Option<Vec<String>>,
    /// `Env` entries in order: each replaces an existing entry of the same name in
    /// place or is appended. Base image variables referenced in values and not known
    /// at compile time are kept as `$NAME` for the executor to expand.
    pub env: Vec<EnvVar>,
    /// Labels added to the base image's labels.
    pub labels: Vec<EnvVar>,
}

/// Inputs of [`compile()`] besides the config.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// `--build-arg NAME=VALUE` values. Declared arguments (user `arguments` and the
    /// `LIVES_*`/`RUNS_*` ones) take them; proxy variables go to every exec; others
    /// are ignored.
    pub build_args: BTreeMap<String, String>,
    /// Target platform; `None` = the host's.
    pub platform: Option<Platform>,
    /// The `Env` of each base image, keyed by the image reference as written in the
    /// config. When a stage's base is listed, references to unknown variables expand to
    /// the empty string like Blubber; when it is not, they are kept verbatim.
    pub base_env: BTreeMap<String, Vec<String>>,
}

/// Errors of compilation.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A user or group ID argument did not resolve to a number.
    #[error("variant '{variant}': {name} is {value:?}, but user and group IDs must be numbers (check --build-arg {name}=...)")]
    NotNumeric {
        /// The variant being compiled.
        variant: String,
        /// The argument name, e.g. `LIVES_UID`.
        name: String,
        /// The value it had.
        value: String,
    },
    /// The config could not be expanded for a variant.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
    /// Variants copy from each other in a circle.
    #[error(
        "processing copies for variant '{variant}': Detected dependency graph cycle at '{at}'"
    )]
    CopiesCycle {
        /// The variant being compiled.
        variant: String,
        /// Where the cycle closed.
        at: String,
    },
    /// A `--build-arg` was not of the form `NAME=VALUE`.
    #[error("build argument {0:?} is not of the form NAME=VALUE")]
    BadBuildArg(String),
}

/// Parses `--build-arg` values (`NAME=VALUE`; a value may be empty or contain `=`).
pub fn parse_build_args(args: &[String]) -> Result<BTreeMap<String, String>, PlanError> {
    let mut map = BTreeMap::new();
    for arg in args {
        match arg.split_once('=') {
            Some((name, value)) if !name.is_empty() => {
                map.insert(name.to_string(), value.to_string());
            }
            _ => return Err(PlanError::BadBuildArg(arg.clone())),
        }
    }
    Ok(map)
}
