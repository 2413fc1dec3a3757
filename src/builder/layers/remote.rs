//! The shared caches of one build (`--cache-from`, `--cache-to`; format and transport in
//! [`crate::store::remote_cache`], `docs/cache.md`).
//!
//! - [`SharedCache::open`] loads every `--cache-from` once, at the start; a missing
//!   cache or a failed load is a warning and the build goes on without it;
//! - [`SharedCache::fetch`], on a key the local index lacks: the first source with a
//!   record of it has its layer blob fetched (digest-verified) into the store; any
//!   failure is a warning and a miss (the step runs), never a wrong layer;
//! - [`SharedCache::export`], after a successful build: the records of every layer step
//!   the build ran or reused go to each `--cache-to`, merged with what is there; a
//!   failure is a warning (the image was built).
//!
//! - with `--cache-mounts` ([`SharedCache::with_mounts`]), the contents of the cache
//!   directories steps mount travel too, under [`mount_key`]s: [`SharedCache::mount`]
//!   gives the record of one (its blob fetched), the export carries the changed ones.
//!
//! Warnings go to stderr through `tracing`, and are kept for the build's events
//! ([`SharedCache::take_warnings`]).

use std::fmt;
use std::sync::Mutex;

use crate::error_chain::ErrorChain;
use crate::image::cache_manifest::{mount_key, CacheRecord, CacheRecords, CachedLayer};
use crate::image::cache_ref::CacheRef;
use crate::registry::Client;
use crate::store::{open_remote_cache, Store};

use super::cache::CacheKey;

/// Where a build imports cached steps from and exports them to.
pub struct SharedCache {
    client: Client,
    sources: Vec<Source>,
    targets: Vec<CacheRef>,
    mounts: bool,
    warnings: Mutex<Vec<String>>,
    /// Held while exporting: the platforms of a multi-platform build share this cache
    /// and export one after the other, each merging with what the other wrote.
    exporting: Mutex<()>,
}

/// A `--cache-from` that loaded.
struct Source {
    cache: CacheRef,
    records: CacheRecords,
}

impl fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sources: Vec<String> = self
            .sources
            .iter()
            .map(|s| format!("{} ({} records)", s.cache, s.records.len()))
            .collect();
        let targets: Vec<String> = self.targets.iter().map(|t| t.to_string()).collect();
        f.debug_struct("SharedCache")
            .field("sources", &sources)
            .field("targets", &targets)
            .field("mounts", &self.mounts)
            .finish()
    }
}

impl SharedCache {
    /// Loads the records of each of `from` (reached through `client` when in a
    /// registry); exports will go to `to`. A cache that is missing or fails to load is
    /// a warning and left out.
    pub fn open(client: Client, from: &[CacheRef], to: &[CacheRef]) -> Self {
        let mut cache = Self {
            client,
            sources: Vec::new(),
            targets: to.to_vec(),
            mounts: false,
            warnings: Mutex::new(Vec::new()),
            exporting: Mutex::new(()),
        };
        for source in from {
            cache.load_source(source);
        }
        cache
    }

    /// Also restores and exports the contents of cache mounts (`--cache-mounts`).
    pub fn with_mounts(mut self, mounts: bool) -> Self {
        self.mounts = mounts;
        self
    }

    /// Whether cache mounts' contents are restored and exported.
    pub fn mounts(&self) -> bool {
        self.mounts
    }

    /// The warnings given since the last call, oldest first.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Warns on stderr and keeps the warning for [`Self::take_warnings`].
    pub fn warn(&self, message: String) {
        tracing::warn!("{message}");
        let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        warnings.push(message);
    }

    /// Loads `cache` as a source; a missing or unloadable cache is a warning.
    fn load_source(&mut self, cache: &CacheRef) {
        let remote = open_remote_cache(cache, &self.client);
        match remote.load() {
            Ok(Some(records)) => {
                tracing::info!("cache {cache}: {} records", records.len());
                self.sources.push(Source {
                    cache: cache.clone(),
                    records,
                });
            }
            Ok(None) => self.warn(format!(
                "cache {cache} does not exist (yet): building without it"
            )),
            Err(e) => self.warn(format!(
                "cannot load cache {cache}, building without it: {}",
                ErrorChain(&e)
            )),
        }
    }

    /// Whether any `--cache-from` loaded (so steps may hit without running).
    pub fn imports(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Whether a build exports its records.
    pub fn exports(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The record of `key` in the first source that has one, without fetching its
    /// layer (what a dry run reports).
    pub fn peek(&self, key: &CacheKey) -> Option<&CacheRecord> {
        self.peek_key(key.as_str())
    }

    fn peek_key(&self, key: &str) -> Option<&CacheRecord> {
        self.sources.iter().find_map(|s| s.records.get(key))
    }

    /// The record of `key` from the first source that has it and whose layer blob
    /// fetches into `store` verified; `None` (with a warning for each failed fetch)
    /// when no source can give it.
    pub fn fetch(&self, key: &CacheKey, store: &Store) -> Option<CacheRecord> {
        self.fetch_key(key.as_str(), store, "the step runs")
    }

    fn fetch_key(&self, key: &str, store: &Store, consequence: &str) -> Option<CacheRecord> {
        for source in &self.sources {
            let Some(record) = source.records.get(key) else {
                continue;
            };
            let Some(layer) = &record.layer else {
                return Some(record.clone());
            };
            let remote = open_remote_cache(&source.cache, &self.client);
            match remote.fetch_layer(layer, store) {
                Ok(()) => return Some(record.clone()),
                Err(e) => self.warn(format!(
                    "cache {}: not using its layer for `{}` ({}); {consequence}",
                    source.cache,
                    first_line(&record.created_by),
                    ErrorChain(&e)
                )),
            }
        }
        None
    }

    /// The layer holding the contents of cache mount `id` in the first source that
    /// has one, without fetching it.
    pub fn peek_mount(&self, id: &str) -> Option<&CachedLayer> {
        self.peek_key(&mount_key(id))?.layer.as_ref()
    }

    /// The layer holding the contents of cache mount `id`, fetched into `store`
    /// (verified); `None` (with a warning when a fetch failed) when no source has it.
    pub fn mount(&self, id: &str, store: &Store) -> Option<CachedLayer> {
        self.fetch_key(&mount_key(id), store, "the cache starts empty")?
            .layer
    }

    /// Adds `records` (whose layers are in `store`) to every `--cache-to`, merged with
    /// what each holds. Returns how many exports failed (each a warning).
    pub fn export(&self, records: &CacheRecords, store: &Store) -> usize {
        let _exporting = self.exporting.lock().unwrap_or_else(|e| e.into_inner());
        let mut failed = 0;
        for cache in &self.targets {
            let remote = open_remote_cache(cache, &self.client);
            match remote.export(records, store) {
                Ok(report) => {
                    tracing::info!(
                        "exported {} records to cache {cache} ({} layers sent, {} records there)",
                        records.len(),
                        report.layers_sent,
                        report.records
                    );
                    if !report.skipped.is_empty() {
                        self.warn(format!(
                            "cache {cache}: {} records left out, their layers are gone",
                            report.skipped.len()
                        ));
                    }
                }
                Err(e) => {
                    failed += 1;
                    self.warn(format!(
                        "the image was built, but exporting the build cache to {cache} failed: {}",
                        ErrorChain(&e)
                    ));
                }
            }
        }
        failed
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
