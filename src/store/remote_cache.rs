//! Shared build caches (`--cache-from` / `--cache-to`): one interface over a registry
//! repository ([`crate::registry::RegistryCache`]) and an OCI layout directory
//! ([`OciDirCache`]). Format: [`crate::image::cache_manifest`]; see `docs/cache.md`.
//!
//! What a build does with one:
//! 1. [`RemoteCache::load`] once: `None` (repository or tag missing) or an error is a
//!    warning and a cold build;
//! 2. on a key the local cache lacks but the records have, [`RemoteCache::fetch_layer`];
//!    an error for which [`RemoteCacheError::is_miss`] holds means "run the step"
//!    (other errors too, with a warning), never a wrong layer;
//! 3. at the end, [`RemoteCache::export`] of the records of every step it ran or reused.

use std::fmt;

use super::{Store, StoreError};
use crate::image::cache_manifest::{CacheFormatError, CacheRecords, CachedLayer};
use crate::image::cache_ref::CacheRef;
use crate::image::digest::HashingReader;
use crate::registry::{Client, ExportReport, RegistryCache, RegistryError};

pub use super::cache_dir::OciDirCache;

/// Errors of a shared cache.
#[derive(Debug, thiserror::Error)]
pub enum RemoteCacheError {
    /// The cache has a record of the layer but not its blob: a miss.
    #[error("cache {cache} has lost layer {digest}")]
    BlobMissing {
        /// The cache.
        cache: String,
        /// The layer blob.
        digest: String,
    },
    /// The cache's blob is not the layer of the record (wrong bytes, size or diff-ID):
    /// a miss. Nothing wrong lands in the local store's cache.
    #[error("cache {cache} has a corrupt layer {digest}")]
    BlobCorrupt {
        /// The cache.
        cache: String,
        /// The layer blob.
        digest: String,
        /// What did not match.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The OCI layout directory of the cache failed.
    #[error("cache {cache}")]
    Layout {
        /// The cache.
        cache: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The cache's documents are not a usable flense cache.
    #[error("cache {cache} is unusable")]
    Format {
        /// The cache.
        cache: String,
        /// What is wrong.
        #[source]
        source: CacheFormatError,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RemoteCacheError {
    /// `cache` lost the blob of `layer`.
    pub fn missing(cache: &dyn RemoteCache, layer: &CachedLayer) -> Self {
        Self::BlobMissing {
            cache: cache.to_string(),
            digest: layer.digest.clone(),
        }
    }

    /// The blob of `layer` in `cache` is not what the record says.
    pub fn corrupt(
        cache: &dyn RemoteCache,
        layer: &CachedLayer,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::BlobCorrupt {
            cache: cache.to_string(),
            digest: layer.digest.clone(),
            source: source.into(),
        }
    }

    /// Whether this is an expected miss (a lost or corrupt blob) rather than a failure
    /// of the cache or the store.
    pub fn is_miss(&self) -> bool {
        matches!(self, Self::BlobMissing { .. } | Self::BlobCorrupt { .. })
    }
}

/// A shared cache: a registry repository or an OCI layout directory, one tag.
pub trait RemoteCache: fmt::Display + Send + Sync {
    /// The records of the cache tag; `None` when the repository, directory or tag does
    /// not exist.
    fn load(&self) -> Result<Option<CacheRecords>, RemoteCacheError>;

    /// Puts the blob of `layer` into `store` (unless it is there), verified against its
    /// digest and size, checks that it unpacks to the record's diff-ID, and records
    /// the pair in the store. A lost or corrupt blob is an error with
    /// [`RemoteCacheError::is_miss`].
    fn fetch_layer(&self, layer: &CachedLayer, store: &Store) -> Result<(), RemoteCacheError>;

    /// Adds `records` (whose layer blobs are in `store`, or already in the cache) to
    /// the cache tag, merged with what the tag holds; a record whose blob is nowhere is
    /// left out (see [`ExportReport::skipped`]).
    fn export(
        &self,
        records: &CacheRecords,
        store: &Store,
    ) -> Result<ExportReport, RemoteCacheError>;
}

/// The cache `cache` names, reached through `client` when it is in a registry.
pub fn open_remote_cache<'c>(cache: &CacheRef, client: &'c Client) -> Box<dyn RemoteCache + 'c> {
    match cache {
        CacheRef::Registry(reference) => Box::new(RegistryCache::new(client, reference.clone())),
        CacheRef::OciDir { dir, tag } => Box::new(OciDirCache::new(dir, tag)),
    }
}

impl fmt::Display for RegistryCache<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reference())
    }
}

impl RemoteCache for RegistryCache<'_> {
    fn load(&self) -> Result<Option<CacheRecords>, RemoteCacheError> {
        Ok(RegistryCache::load(self)?)
    }

    fn fetch_layer(&self, layer: &CachedLayer, store: &Store) -> Result<(), RemoteCacheError> {
        match RegistryCache::fetch_layer(self, layer, store) {
            Ok(()) => {}
            Err(RegistryError::NotFound { .. }) => {
                return Err(RemoteCacheError::missing(self, layer))
            }
            Err(e @ RegistryError::BadContent { .. }) => {
                return Err(RemoteCacheError::corrupt(self, layer, e))
            }
            Err(e) => return Err(e.into()),
        }
        check_and_record(self, layer, store)
    }

    fn export(
        &self,
        records: &CacheRecords,
        store: &Store,
    ) -> Result<ExportReport, RemoteCacheError> {
        Ok(RegistryCache::export(self, records, store)?)
    }
}

/// Checks that the stored blob of `layer` unpacks to its diff-ID and tar size (once:
/// a blob whose diff-ID the store has recorded was checked before), then records the
/// pair, so a wrong record can never name a layer.
pub(super) fn check_and_record(
    cache: &dyn RemoteCache,
    layer: &CachedLayer,
    store: &Store,
) -> Result<(), RemoteCacheError> {
    let recorded = store.recorded_diff_id(&layer.digest)?;
    if recorded.is_some_and(|d| d.as_ref() == layer.diff_id) {
        return Ok(());
    }
    let stream = store.layer_tar_stream(&layer.digest, layer.size)?;
    let (diff_id, tar_size) = HashingReader::new(stream)
        .drain()
        .map_err(|e| RemoteCacheError::corrupt(cache, layer, e))?;
    if diff_id.as_ref() != layer.diff_id || tar_size != layer.tar_size {
        let detail = format!(
            "unpacks to {diff_id} ({tar_size} bytes), the record says {} ({} bytes)",
            layer.diff_id, layer.tar_size
        );
        return Err(RemoteCacheError::corrupt(cache, layer, detail));
    }
    store.record_layer(&layer.digest, &layer.diff_id)?;
    Ok(())
}
