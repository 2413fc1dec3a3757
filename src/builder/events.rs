//! Progress events of a build, for the CLI's one-line-per-instruction output and `--json`.

use serde::Serialize;

use crate::image::digest::Digest;

/// How an instruction was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Its layer came from the build cache; nothing ran.
    Cached,
    /// Its layer came from a shared cache (`--cache-from`), fetched; nothing ran.
    CachedRemote,
    /// It ran (a command in the sandbox, or a copy/user step written as a layer).
    Ran,
    /// It only changed the image config or the build state.
    Applied,
}

/// One build event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum BuildEvent {
    /// A stage (variant) starts.
    Stage {
        /// The variant.
        variant: String,
        /// Its base image (`None` = scratch).
        base: Option<String>,
    },
    /// An instruction finished.
    Step {
        /// The variant.
        variant: String,
        /// 1-based index within the stage.
        index: usize,
        /// Number of instructions in the stage.
        total: usize,
        /// The instruction, as the Dockerfile rendering shows it.
        instruction: String,
        /// What happened.
        status: StepStatus,
        /// Wall time in seconds.
        seconds: f64,
    },
    /// A shared cache (`--cache-from`, `--cache-to`, `--cache-mounts`) could not be
    /// used as asked: a missing cache, a lost or corrupt blob, a failed export. The
    /// build goes on (without it); the same text is logged on stderr.
    Warning {
        /// What happened and what the build does instead.
        message: String,
    },
    /// The image was written.
    Image {
        /// The variant.
        variant: String,
        /// Manifest digest.
        digest: Digest,
        /// The tag, if any.
        reference: Option<String>,
    },
}

/// Receives build events.
pub trait EventSink {
    /// Handles one event.
    fn event(&self, event: &BuildEvent);
}

/// Drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&self, _event: &BuildEvent) {}
}
