//! Builds a variant: a compiled [`crate::plan::Plan`] becomes layers and an image in the
//! store, with a content-derived build cache.
//!
//! How `flense build VARIANT` flows through it:
//! 1. [`project::build_project`] loads the config, resolves the base images
//!    ([`images::PullingImages`] pulls missing ones) and compiles the plan once;
//! 2. [`walk::walk`] goes over the plan's stages (dependencies first) and their steps,
//!    handing each step by kind to a [`walk::StepVisitor`];
//! 3. first visitor: the preflight, [`dryrun`] without cache lookups — a step that
//!    could not start (missing copy source, no shell, unknown image) fails the build
//!    before anything runs (`--dry-run` is the same visitor with lookups);
//! 4. second visitor: the [`execute::Executor`]. Per layer step it derives the cache key
//!    ([`walk::Session`]), then [`layers::commit::Layers::layer_step`] reuses a cached
//!    layer or commits what the step produces: entries written natively ([`users`],
//!    [`copy`], fixed files) or a command's writes, run through the
//!    [`run::runner::StepRunner`] seam ([`run::sandbox`] is the real one);
//! 5. the executor commits the target stage as an image ([`imageconfig`]).
//!
//! [`stage`] holds the types these share; [`events`] the progress events.

pub mod copy;
pub mod dryrun;
pub mod emulation;
pub mod events;
pub mod execute;
pub mod imageconfig;
pub mod images;
pub mod layers;
pub mod platforms;
pub mod project;
pub mod run;
pub mod stage;
pub mod users;
pub mod walk;

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
    #[error("variant '{variant}', {step}")]
    Copy {
        /// The variant.
        variant: String,
        /// The instruction.
        step: String,
        /// The cause.
        source: copy::CopyError,
    },
    /// Creating users failed.
    #[error("variant '{variant}'")]
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
    /// A base or source image is unusable.
    #[error("image {reference}: {detail}")]
    Image {
        /// The reference.
        reference: String,
        /// What is wrong with it.
        detail: String,
    },
    /// An image is not in the local store (and is not pulled).
    #[error("image {reference}")]
    NotInStore {
        /// The reference.
        reference: String,
        /// Why the store has none.
        source: crate::store::StoreError,
    },
    /// An image is not in the local store (or `--pull always`) and pulling it failed.
    #[error("image {reference}: {local}, and pulling it failed")]
    Pull {
        /// The reference.
        reference: String,
        /// Why it was pulled: why the store has none, or the pull policy.
        local: String,
        /// Why the pull failed.
        source: Box<crate::registry::RegistryError>,
    },
    /// An image is not in the local store and the pull policy forbids pulling it.
    #[error("image {reference} is not in the local store and the pull policy is never (--pull never): not pulling it")]
    PullNever {
        /// The reference.
        reference: String,
        /// Why the store has none.
        source: Box<crate::store::StoreError>,
    },
    /// Steps of a foreign platform cannot run here (no usable binfmt_misc handler).
    #[error(transparent)]
    Emulation(#[from] emulation::EmulationError),
    /// The image config could not be built.
    #[error("image config")]
    Config(#[source] oci_spec::OciSpecError),
    /// The whole build context could not be read (for its digest).
    #[error("reading the build context")]
    ContextCopy(#[source] copy::CopyError),
    /// A plan refers to a stage that was not built before it.
    #[error("variant '{0}' is used before it is built")]
    UnknownStage(String),
    /// A filesystem operation failed.
    #[error("{}", path.display())]
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
