//! `--cache-mounts`: the contents of the persistent cache directories a build's
//! command steps mount (builder `caches` shared or locked, and the tool caches) travel
//! through the shared caches, one record per cache id under its
//! [`crate::image::cache_manifest::mount_key`] (format in `docs/cache.md`).
//!
//! - before the first step of the build that mounts a cache, [`UsedMounts::prepare`]
//!   restores it from the first `--cache-from` that has it, when the local directory
//!   is empty (a runner's own warm cache is kept);
//! - after the build, [`UsedMounts::records`] gives the records of those whose
//!   contents differ from what the source had (compared by the digest of their
//!   reproducible tar), written as layer blobs into the store for the export.
//!
//! Restoring and reading a directory hold its exclusive lock (steps of other builds on
//! the same store hold it shared while they run). Any failure is a warning and a cold
//! (or unexported) cache, never a failed build.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error_chain::ErrorChain;
use crate::image::cache_manifest::{mount_key, CacheRecord, CacheRecords, CachedLayer};
use crate::image::LayerOptions;
use crate::store::cache_mount::content_digest;
use crate::store::{CacheMountDir, Store, StoreError};

use super::remote::SharedCache;

/// A persistent cache directory a command step mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistentCache {
    /// The cache id (a builder cache's `id` or destination, or a tool cache's id).
    pub id: String,
    /// Its directory in the store.
    pub dir: PathBuf,
    /// The owner its exported entries get (and restored ones, as root).
    pub owner: (u32, u32),
    /// Top-level names never exported (a tool's logs).
    pub skip: &'static [&'static str],
}

/// The cache directories the build's steps mounted, by id.
#[derive(Debug, Default)]
pub(super) struct UsedMounts {
    used: RefCell<BTreeMap<String, PersistentCache>>,
}

impl UsedMounts {
    /// Called before a step that mounts `cache` runs: on the build's first use of it,
    /// restores its contents from `shared` into the directory when that is empty.
    pub fn prepare(&self, shared: &SharedCache, store: &Store, cache: &PersistentCache) {
        if self.used.borrow().contains_key(&cache.id) {
            return;
        }
        self.used
            .borrow_mut()
            .insert(cache.id.clone(), cache.clone());
        if shared.peek_mount(&cache.id).is_none() {
            return;
        }
        if let Err(e) = restore(shared, store, cache) {
            shared.warn(format!(
                "cache mount {}: not restored, it starts empty: {}",
                cache.id,
                ErrorChain(&e)
            ));
        }
    }

    /// The records of the used caches whose contents changed from the source's (new
    /// layer blobs in `store`), and of unchanged ones restored here (to copy them to
    /// another `--cache-to`). A cache that cannot be read is a warning.
    pub fn records(&self, shared: &SharedCache, store: &Store) -> CacheRecords {
        let mut records = CacheRecords::new();
        for cache in self.used.borrow().values() {
            match mount_record(shared, store, cache) {
                Ok(Some(record)) => {
                    // Mount keys are sha256 hex, always valid.
                    let _ = records.insert(&mount_key(&cache.id), record);
                }
                Ok(None) => {}
                Err(e) => shared.warn(format!(
                    "cache mount {}: not exported: {}",
                    cache.id,
                    ErrorChain(&e)
                )),
            }
        }
        records
    }
}

/// Restores `cache` from `shared` under its exclusive lock, unless its directory has
/// contents (this runner's own, or another build's that restored it meanwhile).
fn restore(shared: &SharedCache, store: &Store, cache: &PersistentCache) -> Result<(), StoreError> {
    let dir = CacheMountDir::new(&cache.dir);
    let _lock = dir.lock(true)?;
    if !dir.is_empty()? {
        tracing::debug!("cache mount {}: keeping the local contents", cache.id);
        return Ok(());
    }
    let Some(layer) = shared.mount(&cache.id, store) else {
        return Ok(());
    };
    dir.restore(store, &layer.digest, layer.size)?;
    tracing::info!(
        "cache mount {}: restored {} ({} bytes)",
        cache.id,
        layer.digest,
        layer.tar_size
    );
    Ok(())
}

/// The record to export for `cache`: `None` when it is empty, or unchanged and its
/// blob is not in the store.
fn mount_record(
    shared: &SharedCache,
    store: &Store,
    cache: &PersistentCache,
) -> Result<Option<CacheRecord>, StoreError> {
    let dir = CacheMountDir::new(&cache.dir);
    let _lock = dir.lock(true)?;
    let entries = dir.entries(cache.owner, cache.skip)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let digest = content_digest(&entries)?;
    if let Some(known) = shared.peek_mount(&cache.id) {
        if known.diff_id == digest.as_ref() {
            let here = store.has_blob(&known.digest);
            return Ok(here.then(|| CacheRecord::mount(&cache.id, known.clone())));
        }
    }
    let options = LayerOptions {
        epoch: 0,
        ..LayerOptions::default()
    };
    let written = store.write_layer(entries, &options)?;
    tracing::info!("cache mount {}: exporting {}", cache.id, written.digest);
    let layer = CachedLayer {
        digest: written.digest.to_string(),
        size: written.size,
        diff_id: written.diff_id.to_string(),
        tar_size: written.tar_size,
        empty: false,
    };
    Ok(Some(CacheRecord::mount(&cache.id, layer)))
}
