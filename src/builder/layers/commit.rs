//! [`Layers`]: the layers of a build in the store. A layer-producing step either reuses
//! the cached result of its key (from the store's index, else fetched from a shared
//! cache, [`super::remote`]) or commits new entries as a layer (written, recorded in the
//! cache, and its directory adopted from the step's captured tree). Layers are unpacked
//! (once, by diff-ID) only when a step must run on top of them
//! ([`StageLayer::unpacked`]).

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::stage::{StageLayer, StageState};
use super::view::ImageView;
use crate::builder::events::StepStatus;
use crate::builder::BuildError;
use crate::error_chain::ErrorChain;
use crate::image::digest::{parse_sha256, Digest};
use crate::image::{LayerDigests, LayerEntry, LayerOptions};
use crate::store::{Store, StoreError, StoredImage};

use super::adopt::{prepare_tree, StepWrites};
use super::cache::{entries_digest, CacheIndex, CacheKey, CacheRecord, CachedLayer, StatCache};
use super::owners::{disk_has_owners, remember_owners, OwnerIndex};
use super::remote::SharedCache;
use super::shared_mounts::{PersistentCache, UsedMounts};
use crate::image::cache_manifest::CacheRecords;

/// A copy from the build context: its layer is rewritten from the one the same step
/// wrote last time (see [`crate::image::layer::splice`]), reading only the files that
/// changed since.
pub struct ContextCopy<'v> {
    /// Names "the layer this step wrote last time", whatever the context held then.
    pub lineage: CacheKey,
    /// The context, with the stats its walk took of each file.
    pub context: &'v dyn ImageView,
}

/// The store, its build cache and the layer settings of one build.
pub struct Layers<'a> {
    store: &'a Store,
    index: CacheIndex,
    stats: RefCell<StatCache>,
    epoch: u64,
    no_cache: bool,
    shared: SharedSteps,
}

impl<'a> Layers<'a> {
    /// The layers of `store`, written with mtimes clamped to `epoch`; with `no_cache`
    /// nothing is looked up in the cache (results are still recorded).
    pub fn new(store: &'a Store, epoch: u64, no_cache: bool) -> Self {
        Self {
            store,
            index: CacheIndex::open(store),
            stats: RefCell::new(StatCache::load(store)),
            epoch,
            no_cache,
            shared: SharedSteps::default(),
        }
    }

    /// Looks steps the store lacks up in `cache` and exports to it (see
    /// [`super::remote`]).
    pub fn with_shared_cache(mut self, cache: Arc<SharedCache>) -> Self {
        self.shared.cache = Some(cache);
        self
    }

    /// The store.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// SOURCE_DATE_EPOCH of the build.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The digest of `entries` as they would be written (see [`entries_digest`]),
    /// hashing files through the stat cache.
    pub fn entries_digest(&self, entries: &[LayerEntry]) -> Result<String, BuildError> {
        Ok(entries_digest(
            entries,
            &mut self.stats.borrow_mut(),
            self.epoch,
        )?)
    }

    /// [`Self::entries_digest`] of entries read from `view`, with the stats the view
    /// took of their files.
    pub fn entries_digest_from(
        &self,
        entries: &[LayerEntry],
        view: &dyn crate::builder::layers::view::ImageView,
    ) -> Result<String, BuildError> {
        Ok(super::cache::entries_digest_seen(
            entries,
            &mut self.stats.borrow_mut(),
            self.epoch,
            &|host| view.host_stat(host),
        )?)
    }

    /// Saves the stat cache for the next build.
    pub fn save_stats(&self) -> Result<(), BuildError> {
        Ok(self.stats.borrow_mut().save()?)
    }

    /// The layers of a stored image (each unpacked, once by diff-ID, on first use).
    pub fn image_layers(&self, img: &StoredImage) -> Result<Vec<StageLayer>, BuildError> {
        let diff_ids = img.config.rootfs().diff_ids();
        if diff_ids.len() != img.manifest.layers().len() {
            return Err(BuildError::Image {
                reference: img.reference.clone().unwrap_or_default(),
                detail: format!(
                    "the manifest has {} layers but the config lists {} diff-IDs",
                    img.manifest.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (desc, diff_id) in img.manifest.layers().iter().zip(diff_ids) {
            let digests = LayerDigests {
                digest: desc.digest().clone(),
                size: desc.size(),
                diff_id: parse_sha256(diff_id).ok_or_else(|| BuildError::Image {
                    reference: img.reference.clone().unwrap_or_default(),
                    detail: format!("the config lists an invalid diff-ID {diff_id:?}"),
                })?,
                tar_size: 0,
            };
            layers.push(StageLayer::new(self.store, digests, String::new(), false));
        }
        Ok(layers)
    }

    /// The cached result of `key`, unless `--no-cache` or its blob is gone.
    pub fn lookup(&self, key: &CacheKey) -> Option<CacheRecord> {
        if self.no_cache {
            return None;
        }
        let rec = self.index.get(key)?;
        if let Some(layer) = &rec.layer {
            if !self.store.has_blob(&layer.digest) {
                self.index.remove(key);
                return None;
            }
        }
        Some(rec)
    }

    /// The result of `key` from a shared cache, its layer fetched into the store and
    /// recorded in the local index (unless `--no-cache`).
    fn fetch_shared(&self, key: &CacheKey) -> Option<CacheRecord> {
        let cache = self.shared.cache.as_ref().filter(|_| !self.no_cache)?;
        let rec = cache.fetch(key, self.store)?;
        if let Err(e) = self.index.put(key, &rec) {
            let e = crate::error_chain::ErrorChain(&e);
            tracing::warn!("cannot record cache hit {}: {e}", key.as_str());
        }
        Some(rec)
    }

    /// The result of `key` in a shared cache, without fetching its layer (what a dry
    /// run reports; unless `--no-cache`).
    pub fn peek_shared(&self, key: &CacheKey) -> Option<CacheRecord> {
        let cache = self.shared.cache.as_ref().filter(|_| !self.no_cache)?;
        cache.peek(key).cloned()
    }

    /// Exports the records of every layer step this build ran or reused to the shared
    /// caches' `--cache-to`s; returns how many exports failed (each a warning).
    /// With `--cache-mounts`, also the contents of the cache directories its steps
    /// mounted that changed (see [`super::shared_mounts`]).
    pub fn export_shared(&self) -> usize {
        match &self.shared.cache {
            Some(cache) if cache.exports() => {
                let mut records = self.shared.steps.borrow().clone();
                if cache.mounts() {
                    let mounts = self.shared.mounts.records(cache, self.store);
                    for (key, record) in mounts.iter() {
                        // Keys of records are valid keys.
                        let _ = records.insert(key, record.clone());
                    }
                }
                cache.export(&records, self.store)
            }
            _ => 0,
        }
    }

    /// Before a step that mounts `cache` runs: with `--cache-mounts`, restores its
    /// contents from a shared cache on the build's first use of it (see
    /// [`super::shared_mounts`]).
    pub fn prepare_cache_mount(&self, cache: &PersistentCache) {
        if let Some(shared) = self.shared.cache.as_ref().filter(|c| c.mounts()) {
            self.shared.mounts.prepare(shared, self.store, cache);
        }
    }

    /// Whether a shared cache with records is looked up (unless `--no-cache`).
    pub fn imports_shared(&self) -> bool {
        !self.no_cache && self.shared.cache.as_ref().is_some_and(|c| c.imports())
    }

    /// The shared caches' warnings given since the last call (for the build's events).
    pub fn take_cache_warnings(&self) -> Vec<String> {
        self.shared
            .cache
            .as_ref()
            .map(|c| c.take_warnings())
            .unwrap_or_default()
    }

    /// Applies a cached result to the stage (its layer is unpacked when first needed).
    pub fn reuse(
        &self,
        st: &mut StageState,
        key: CacheKey,
        rec: CacheRecord,
    ) -> Result<(), BuildError> {
        self.shared.used(&key, &rec);
        if let Some(l) = rec.layer {
            let digests = LayerDigests {
                digest: record_digest(&l.digest)?,
                size: l.size,
                diff_id: record_digest(&l.diff_id)?,
                tar_size: l.tar_size,
            };
            let layer = StageLayer::new(self.store, digests, rec.created_by, true);
            st.layers.push(layer);
        }
        st.key = key;
        Ok(())
    }

    /// Reuses the cached result of `key`, or commits what `produce` makes: lookup, lock,
    /// look again (another build may have produced it while this one waited), produce,
    /// commit.
    pub fn layer_step(
        &self,
        st: &mut StageState,
        key: CacheKey,
        created_by: &str,
        copy: Option<ContextCopy<'_>>,
        produce: impl FnOnce(&StageState) -> Result<StepWrites, BuildError>,
    ) -> Result<StepStatus, BuildError> {
        if let Some(rec) = self.lookup(&key) {
            self.reuse(st, key, rec)?;
            return Ok(StepStatus::Cached);
        }
        let _lock = if self.no_cache {
            None
        } else {
            let lock = self.index.lock(&key, created_by)?;
            if let Some(rec) = self.lookup(&key) {
                self.reuse(st, key, rec)?;
                return Ok(StepStatus::Cached);
            }
            if let Some(rec) = self.fetch_shared(&key) {
                self.reuse(st, key, rec)?;
                return Ok(StepStatus::CachedRemote);
            }
            Some(lock)
        };
        let writes = produce(st)?;
        self.commit(st, key, writes, created_by, copy)?;
        Ok(StepStatus::Ran)
    }

    /// Writes the step's entries as the stage's next layer (none when empty) and records
    /// it under `key`. The step's captured tree, when it has one, becomes the layer's
    /// unpacked directory (see [`super::adopt`]); otherwise, or when that is not
    /// possible, the layer is unpacked from its blob.
    fn commit(
        &self,
        st: &mut StageState,
        key: CacheKey,
        writes: StepWrites,
        created_by: &str,
        copy: Option<ContextCopy<'_>>,
    ) -> Result<(), BuildError> {
        let StepWrites { entries, tree } = writes;
        let layer = if entries.is_empty() {
            None
        } else {
            let opts = LayerOptions {
                epoch: self.epoch,
                ..LayerOptions::default()
            };
            let index = OwnerIndex::from_entries(&entries);
            let kept = tree.as_ref().map(|_| entries.clone());
            let started = Instant::now();
            let d = match copy {
                None => self.store.write_layer(entries, &opts)?,
                Some(copy) => self.write_context_copy(entries, &opts, &copy)?,
            };
            tracing::debug!(elapsed = ?started.elapsed(), "wrote layer {}", d.digest);
            if !disk_has_owners() {
                remember_owners(self.store, &d.diff_id, &index)?;
            }
            if let (Some(tree), Some(entries)) = (tree, kept) {
                self.adopt(&d.diff_id, &tree, &entries)?;
            }
            Some(CachedLayer {
                digest: d.digest.to_string(),
                size: d.size,
                diff_id: d.diff_id.to_string(),
                tar_size: d.tar_size,
                empty: false,
            })
        };
        let record = CacheRecord {
            layer,
            created_by: created_by.to_string(),
        };
        self.index.put(&key, &record)?;
        self.reuse(st, key, record)
    }

    /// Writes the layer of a copy from the context, from the layer its lineage wrote
    /// last (unless `--no-cache`), and records it as the lineage's latest.
    fn write_context_copy(
        &self,
        entries: Vec<LayerEntry>,
        opts: &LayerOptions,
        copy: &ContextCopy<'_>,
    ) -> Result<LayerDigests, BuildError> {
        let lineage = copy.lineage.as_str();
        let earlier = (!self.no_cache)
            .then(|| self.store.lineage(lineage))
            .flatten()
            .and_then(|diff_id| self.store.earlier_layer(&diff_id));
        let mut stats = self.stats.borrow_mut();
        let mut known = |host: &Path| {
            let stat = copy.context.host_stat(host)?;
            let sha = stats.sha256_bytes_seen(host, Some(stat)).ok()?;
            Some((stat.size, sha))
        };
        let (d, report) =
            self.store
                .write_layer_indexed(entries, opts, earlier.as_ref(), &mut known)?;
        if let Some(why) = &report.fallback {
            tracing::warn!("wrote layer {} afresh: {why}", d.digest);
        } else if earlier.is_some() {
            tracing::debug!(
                "layer {}: {} of {} entries and {} of {} gzip blocks taken from the earlier layer",
                d.digest,
                report.reused_entries,
                report.entries,
                report.reused_blocks,
                report.blocks
            );
        }
        if let Err(e) = self.store.record_lineage(lineage, &d.diff_id) {
            tracing::warn!("cannot record the layer of {lineage}: {}", ErrorChain(&e));
        }
        Ok(d)
    }

    /// Makes the captured `tree` of `entries` the unpacked directory of `diff_id`,
    /// unless it is already unpacked or the tree cannot be adopted exactly (then
    /// the layer is unpacked from its blob when needed).
    fn adopt(
        &self,
        diff_id: &Digest,
        tree: &Path,
        entries: &[LayerEntry],
    ) -> Result<(), BuildError> {
        if self.store.unpacked_layer(diff_id)?.is_some() {
            return Ok(());
        }
        let started = Instant::now();
        let report = match prepare_tree(tree, entries, self.epoch) {
            Ok(report) => report,
            Err(e) => {
                tracing::debug!(
                    "unpacking layer {diff_id} from its blob: {}",
                    ErrorChain(&e)
                );
                return Ok(());
            }
        };
        // A failed move leaves no layer directory behind: unpacking still works.
        match self.store.adopt_layer_dir(diff_id, tree, &report) {
            Ok(_) => {
                let elapsed = started.elapsed();
                tracing::debug!(?elapsed, "adopted the step's tree as layer {diff_id}");
            }
            Err(e) => tracing::warn!(
                "unpacking layer {diff_id} from its blob: {}",
                ErrorChain(&e)
            ),
        }
        Ok(())
    }
}

/// The shared cache of a build and the layer steps it ran or reused, for the export.
#[derive(Default)]
struct SharedSteps {
    cache: Option<Arc<SharedCache>>,
    steps: RefCell<CacheRecords>,
    mounts: UsedMounts,
}

impl SharedSteps {
    /// Remembers that the build used `rec` for `key`.
    fn used(&self, key: &CacheKey, rec: &CacheRecord) {
        if self.cache.is_some() {
            // Keys are sha256 hex, always valid.
            let _ = self.steps.borrow_mut().insert(key.as_str(), rec.clone());
        }
    }
}

/// A digest of a build cache record (which holds them as text).
fn record_digest(text: &str) -> Result<Digest, StoreError> {
    parse_sha256(text).ok_or_else(|| StoreError::BadDigest(text.to_owned()))
}
