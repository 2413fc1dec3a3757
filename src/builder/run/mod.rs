//! Command steps: the runner seam, the sandbox runner, mounts.

pub mod mounts;
pub mod runner;
pub mod sandbox;
pub mod step;
