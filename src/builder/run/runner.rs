//! The boundary between the executor and the sandbox: one command on an overlay of
//! layer directories, whose writes come back as layer entries. The real implementation
//! (`flense-runtime`) lives in [`crate::builder::run::sandbox`]; tests may use their own.

use std::path::PathBuf;

use crate::image::LayerEntry;

/// Network of a build step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepNetwork {
    /// Share the host's network (the default, like BuildKit).
    #[default]
    Host,
    /// Only a loopback interface.
    None,
}

/// An extra mount of a build step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepMount {
    /// A host directory or file at `dst`; writes to a read-write one are the caller's
    /// to discard (it passes a scratch copy).
    Bind {
        /// Host path.
        src: PathBuf,
        /// Absolute path in the sandbox.
        dst: PathBuf,
        /// Read-only.
        readonly: bool,
    },
    /// A persistent cache directory, never part of the layer.
    Cache {
        /// Host directory.
        src: PathBuf,
        /// Absolute path in the sandbox.
        dst: PathBuf,
    },
}

/// One command to run as a build step.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// argv.
    pub argv: Vec<String>,
    /// Environment, in order (later entries win).
    pub env: Vec<(String, String)>,
    /// Working directory inside the image.
    pub cwd: PathBuf,
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary groups (from `/etc/group`).
    pub groups: Vec<u32>,
    /// Unpacked layer directories, bottom first.
    pub lowers: Vec<PathBuf>,
    /// Scratch directory for the overlay's upper/work dirs (removed by the caller).
    pub state_dir: PathBuf,
    /// Extra mounts.
    pub mounts: Vec<StepMount>,
    /// Network.
    pub network: StepNetwork,
    /// Whether to capture the step's writes as layer entries.
    pub capture: bool,
}

/// What a step did.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// Exit code (128 + signal for a signal).
    pub exit_code: i32,
    /// The writes of the step, as layer entries (empty when not captured).
    pub entries: Vec<LayerEntry>,
    /// The overlay upper directory the entries were captured from (their file contents
    /// live there), when it may become the layer's unpacked directory: kernel overlay
    /// (not the copy fallback), and files the caller can give their extracted owners
    /// (as root, or single-ID mode where the caller owns them all). `None` otherwise.
    pub tree: Option<PathBuf>,
    /// True when the sandbox could not observe owners (single-ID mode) and gave every
    /// entry the step's user: entries that existed before the step then take their
    /// owner from the image (the step could not have changed it to another ID).
    pub owners_assumed: bool,
}

/// Errors of a step runner.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The sandbox could not be set up or the command not started.
    #[error("sandbox")]
    Sandbox(#[source] flense_runtime::RuntimeError),
    /// A file the sandbox needs could not be prepared.
    #[error("sandbox: {what}")]
    Setup {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The step's writes could not be captured.
    #[error("capturing the step's changes")]
    Capture(#[source] flense_runtime::RuntimeError),
    /// The step left a directory private to another user of the sandbox, which a
    /// rootless caller in subuid mode cannot read to capture it.
    #[error(
        "capturing the step's changes: the step made a path private to another user of the \
         sandbox, which a build without root cannot read yet in subuid mode (a known \
         limitation); build such images as root"
    )]
    CapturePrivate(#[source] flense_runtime::RuntimeError),
}

/// Runs build steps.
pub trait StepRunner {
    /// Runs one step to completion; its stdout and stderr go to the runner's output.
    fn run(&self, req: &StepRequest) -> Result<StepOutcome, RunnerError>;

    /// A hint for a step that exited with `code` (e.g. how to enable more user IDs).
    fn failure_hint(&self, _req: &StepRequest, _code: i32) -> Option<String> {
        None
    }

    /// Fails when this runner cannot run a step as `uid:gid` on this machine (checked
    /// by `flense build --dry-run` before anything runs).
    fn check_user(&self, _uid: u32, _gid: u32) -> Result<(), RunnerError> {
        Ok(())
    }

    /// How this runner isolates steps on this machine, for the dry-run report (e.g.
    /// `namespace`, or `chroot` and why); `None` when it does not say or cannot run
    /// steps at all (then [`check_user`](Self::check_user) fails with the cause).
    fn isolation(&self) -> Option<String> {
        None
    }
}
