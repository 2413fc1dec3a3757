//! OCI model work: the reproducible layer writer (tar + gzip + sha256), image config,
//! manifest and index.

pub mod entry;

pub use entry::{Content, EntryKind, LayerEntry};
