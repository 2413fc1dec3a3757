//! Layers of a build: views of unpacked layer stacks, entry sets, owners, the build cache,
//! and committing or reusing a step's layer.

pub mod adopt;
pub mod cache;
pub mod commit;
pub mod diff;
pub mod entries;
pub mod owners;
pub mod view;
