//! OCI model work: the reproducible layer writer (tar + gzip + sha256), image config,
//! manifest and index.

pub mod digest;
pub mod entry;
pub mod gzip;
pub mod layer;
pub mod oci;
pub mod platform;
pub mod reference;
pub mod tree;

pub use entry::{Content, EntryKind, LayerEntry};
pub use layer::{source_date_epoch, write_layer, LayerDigests, LayerError, LayerOptions};
