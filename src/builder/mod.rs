//! Executes a plan: base image, then layers, then the image, with caching.
//!
//! [`executor::Executor`] walks the stages of a [`crate::plan::Plan`] (dependencies
//! first). Files flense writes itself (users, copies, fixed files) become layer entries
//! directly ([`users`], [`copy`], [`context`]); commands run through a
//! [`runner::StepRunner`] on an overlay of the unpacked layers, and their writes become
//! the next layer. Every layer-producing step has a content-derived cache key
//! ([`cache`]); a hit reuses the stored layer without running anything.

pub mod copy;
pub mod dryrun;
pub mod events;
pub mod execute;
pub mod imageconfig;
pub mod images;
pub mod layers;
pub mod project;
pub mod run;
pub mod stage;
pub mod users;

use std::path::PathBuf;

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The build context could not be read.
    #[error(transparent)]
    Context(#[from] copy::context::ContextError),
    /// A copy failed.
    #[error("variant '{variant}', {step}: {source}")]
    Copy {
        /// The variant.
        variant: String,
        /// The instruction.
        step: String,
        /// The cause.
        source: copy::CopyError,
    },
    /// Creating users failed.
    #[error("variant '{variant}': {source}")]
    Users {
        /// The variant.
        variant: String,
        /// The cause.
        source: users::UsersError,
    },
    /// The build cache failed.
    #[error(transparent)]
    Cache(#[from] layers::cache::CacheError),
    /// The sandbox failed.
    #[error(transparent)]
    Runner(#[from] run::runner::RunnerError),
    /// A command exited non-zero.
    #[error("variant '{variant}', step {index} ({step}) failed with exit code {code}{}", hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    StepFailed {
        /// The variant.
        variant: String,
        /// 1-based step index.
        index: usize,
        /// The instruction.
        step: String,
        /// Its exit code.
        code: i32,
        /// How to fix it, when flense can tell.
        hint: Option<String>,
    },
    /// A base or source image could not be found or pulled.
    #[error("image {reference}: {detail}")]
    Image {
        /// The reference.
        reference: String,
        /// What went wrong.
        detail: String,
    },
    /// The image config could not be built.
    #[error("image config: {0}")]
    Config(String),
    /// A plan refers to a stage that was not built before it.
    #[error("variant '{0}' is used before it is built")]
    UnknownStage(String),
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}
