//! OCI model work, pure (no network, no processes): the reproducible layer writer
//! (tar + gzip + sha256), image config, manifest and index, and the core types the
//! store, the registry client, the plan and the CLI share: image references
//! ([`reference`](mod@reference)), platforms ([`platform`]), the `sha256` helpers
//! ([`digest`]) and the default `PATH` ([`oci::DEFAULT_PATH`]).

pub mod cache_manifest;
pub mod cache_ref;
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
