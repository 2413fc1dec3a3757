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
//! Warnings go to stderr through `tracing`.

use std::fmt;

use crate::error_chain::ErrorChain;
use crate::image::cache_manifest::{CacheRecord, CacheRecords};
use crate::image::cache_ref::CacheRef;
use crate::registry::Client;
use crate::store::{open_remote_cache, Store};

use super::cache::CacheKey;

/// Where a build imports cached steps from and exports them to.
pub struct SharedCache {
    client: Client,
    sources: Vec<Source>,
    targets: Vec<CacheRef>,
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
            .finish()
    }
}

impl SharedCache {
    /// Loads the records of each of `from` (reached through `client` when in a
    /// registry); exports will go to `to`. A cache that is missing or fails to load is
    /// a warning and left out.
    pub fn open(client: Client, from: &[CacheRef], to: &[CacheRef]) -> Self {
        let mut sources = Vec::new();
        for cache in from {
            let remote = open_remote_cache(cache, &client);
            match remote.load() {
                Ok(Some(records)) => {
                    tracing::info!("cache {cache}: {} records", records.len());
                    sources.push(Source {
                        cache: cache.clone(),
                        records,
                    });
                }
                Ok(None) => {
                    tracing::warn!("cache {cache} does not exist (yet): building without it")
                }
                Err(e) => tracing::warn!(
                    "cannot load cache {cache}, building without it: {}",
                    ErrorChain(&e)
                ),
            }
        }
        Self {
            client,
            sources,
            targets: to.to_vec(),
        }
    }

    /// Whether a build exports its records.
    pub fn exports(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The record of `key` in the first source that has one, without fetching its
    /// layer (what a dry run reports).
    pub fn peek(&self, key: &CacheKey) -> Option<&CacheRecord> {
        self.sources
            .iter()
            .find_map(|s| s.records.get(key.as_str()))
    }

    /// The record of `key` from the first source that has it and whose layer blob
    /// fetches into `store` verified; `None` (with a warning for each failed fetch)
    /// when no source can give it.
    pub fn fetch(&self, key: &CacheKey, store: &Store) -> Option<CacheRecord> {
        for source in &self.sources {
            let Some(record) = source.records.get(key.as_str()) else {
                continue;
            };
            let Some(layer) = &record.layer else {
                return Some(record.clone());
            };
            let remote = open_remote_cache(&source.cache, &self.client);
            match remote.fetch_layer(layer, store) {
                Ok(()) => return Some(record.clone()),
                Err(e) => tracing::warn!(
                    "cache {}: not using its layer for `{}` ({}); the step runs",
                    source.cache,
                    first_line(&record.created_by),
                    ErrorChain(&e)
                ),
            }
        }
        None
    }

    /// Adds `records` (whose layers are in `store`) to every `--cache-to`, merged with
    /// what each holds. Returns how many exports failed (each a warning).
    pub fn export(&self, records: &CacheRecords, store: &Store) -> usize {
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
                        tracing::warn!(
                            "cache {cache}: {} records left out, their layers are gone",
                            report.skipped.len()
                        );
                    }
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(
                        "the image was built, but exporting the build cache to {cache} failed: {}",
                        ErrorChain(&e)
                    );
                }
            }
        }
        failed
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
