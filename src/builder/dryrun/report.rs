//! What a dry run reports: each step's cache state, the images it resolved, and why a
//! build would not start a step.

use std::path::PathBuf;

use serde::Serialize;

use crate::image::digest::Digest;

use crate::builder::events::StepStatus;
use crate::builder::run::runner::RunnerError;
use crate::builder::BuildError;

/// What a build would do with one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DryStatus {
    /// Its layer is in the build cache: the build would reuse it.
    Cached,
    /// Its layer is in a shared cache (`--cache-from`): the build would fetch it.
    CachedRemote,
    /// The build would run it (or write its layer).
    WouldRun,
    /// It only changes the image config or the build state.
    Applied,
}

impl From<StepStatus> for DryStatus {
    /// What a walk's status means to a dry run: a step that "ran" would run.
    fn from(status: StepStatus) -> Self {
        match status {
            StepStatus::Cached => DryStatus::Cached,
            StepStatus::CachedRemote => DryStatus::CachedRemote,
            StepStatus::Ran => DryStatus::WouldRun,
            StepStatus::Applied => DryStatus::Applied,
        }
    }
}

impl DryStatus {
    /// The words the CLI prints.
    pub fn label(self) -> &'static str {
        match self {
            DryStatus::Cached => "cached",
            DryStatus::CachedRemote => "cached (remote)",
            DryStatus::WouldRun => "would run",
            DryStatus::Applied => "config",
        }
    }
}

/// One instruction of the dry run.
#[derive(Debug, Clone, Serialize)]
pub struct DryStep {
    /// The variant (stage).
    pub variant: String,
    /// 1-based index within the stage.
    pub index: usize,
    /// Number of instructions in the stage.
    pub total: usize,
    /// The instruction's first line, as the Dockerfile rendering shows it.
    pub instruction: String,
    /// What the build would do.
    pub status: DryStatus,
}

/// An image reference of the plan and what it resolved to.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedImage {
    /// The reference as the config writes it.
    pub reference: String,
    /// The manifest digest it resolved to (after rewrites and mirrors).
    pub digest: Digest,
}

/// The result of a dry run that found nothing to stop the build.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunReport {
    /// The target variant.
    pub target: String,
    /// Stages in build order.
    pub stages: Vec<String>,
    /// Every base, `copies.from` and mount image, in first-use order.
    pub images: Vec<ResolvedImage>,
    /// Every instruction, in build order.
    pub steps: Vec<DryStep>,
    /// How command steps would be isolated (`namespace` or `chroot`, with why), when
    /// the runner says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
}

impl DryRunReport {
    /// Number of steps with `status`.
    pub fn count(&self, status: DryStatus) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }
}

/// Why a build would not start a step: what is wrong with which instruction.
#[derive(Debug, thiserror::Error)]
#[error("{}: variant '{variant}', step {index} ({instruction})", file.display())]
pub struct DryRunError {
    /// The config file.
    pub file: PathBuf,
    /// The variant.
    pub variant: String,
    /// 1-based step index within the variant.
    pub index: usize,
    /// The instruction's first line.
    pub instruction: String,
    /// What is wrong.
    #[source]
    pub reason: Box<DryRunProblem>,
}

/// What is wrong with one instruction.
#[derive(Debug, thiserror::Error)]
pub enum DryRunProblem {
    /// The executor's own check failed (copy source missing, image not resolvable...).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A copy source is missing (or a pattern is bad).
    #[error("{cause} in {from}")]
    Copy {
        /// What the copy code found.
        cause: crate::builder::copy::CopyError,
        /// Where the sources were looked for: the build context, a variant, an image.
        from: String,
    },
    /// The step runner cannot run a command as this user on this machine.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// A shell step on an image without a shell.
    #[error("the image has no /bin/sh to run this command with")]
    NoShell,
    /// Commands of an image for another architecture cannot run natively.
    #[error(
        "base image {reference} is for {image_arch}, but build steps run natively on {host_arch} \
         (with --platform linux/{image_arch} they run under emulation)"
    )]
    ForeignArchitecture {
        /// The base image.
        reference: String,
        /// Its architecture.
        image_arch: String,
        /// This machine's.
        host_arch: String,
    },
}
