//! Command steps in the sandbox.
//!
//! - [`runner`]: the seam between the builder and a sandbox — a [`runner::StepRequest`]
//!   (argv, env, user, layer directories, mounts) in, a [`runner::StepOutcome`] (exit
//!   code, captured writes as layer entries) out; tests may plug in their own
//!   [`runner::StepRunner`];
//! - [`sandbox`]: the real runner, `flense-runtime`'s rootless sandbox on an overlay;
//! - [`step`]: the plan-dependent parts of a request (environment, script mount,
//!   mounts and caches) and of its outcome (owners of pre-existing paths);
//! - [`mounts`]: scratch copies of mounted filesystems and persistent cache directories;
//! - [`toolcache`]: package managers' caches mounted from the store instead of written
//!   into layers.
//!
//! Data flow: the executor builds a request with [`step`] and [`mounts`], the runner
//! runs it, and the captured entries (and the overlay's upper directory, when it can be
//! adopted) go back to the executor to be committed as the step's layer.

pub mod mounts;
pub mod runner;
pub mod sandbox;
pub mod step;
pub mod toolcache;
