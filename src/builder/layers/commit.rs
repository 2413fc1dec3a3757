//! The result of a layer-producing step: reuse of a cached layer, or the commit of new
//! entries as a layer (written, recorded in the cache, and its directory adopted from
//! the step's captured tree or unpacked from the blob).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::image::{LayerDigests, LayerEntry, LayerOptions};

use crate::builder::events::StepStatus;
use crate::builder::execute::{Executor, StageLayer, StageState};
use crate::builder::layers::adopt::{prepare_tree, StepWrites};
use crate::builder::layers::cache::{CacheKey, CacheRecord, CachedLayer};
use crate::builder::layers::owners::{disk_has_owners, layer_owners, remember_owners, OwnerIndex};
use crate::builder::BuildError;

impl Executor<'_> {
    /// The cached result of `key`, unless `--no-cache` or its blob is gone.
    pub(crate) fn lookup(&self, key: &CacheKey) -> Option<CacheRecord> {
        if self.settings.no_cache {
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

    /// Applies a cached result to the stage.
    pub(crate) fn reuse(
        &self,
        st: &mut StageState,
        key: CacheKey,
        rec: CacheRecord,
    ) -> Result<(), BuildError> {
        if let Some(l) = rec.layer {
            let unpacked = self.store.unpack_layer(&l.digest, Some(&l.diff_id))?;
            let owners = if disk_has_owners() {
                None
            } else {
                Some(Arc::new(layer_owners(self.store, &l.digest, &l.diff_id)?))
            };
            st.layers.push(StageLayer {
                owners,
                digests: LayerDigests {
                    digest: l.digest,
                    size: l.size,
                    diff_id: l.diff_id,
                    tar_size: l.tar_size,
                },
                dir: unpacked.diff,
                created_by: rec.created_by,
                new: true,
            });
        }
        st.key = key;
        Ok(())
    }

    /// Writes the step's entries as the stage's next layer (none when empty) and records
    /// it under `key`. The step's captured tree, when it has one, becomes the layer's
    /// unpacked directory (see [`crate::builder::layers::adopt`]); otherwise, or when that is not
    /// possible, the layer is unpacked from its blob.
    pub(crate) fn commit(
        &self,
        st: &mut StageState,
        key: CacheKey,
        writes: StepWrites,
        created_by: &str,
    ) -> Result<(), BuildError> {
        let StepWrites { entries, tree } = writes;
        let record = if entries.is_empty() {
            CacheRecord {
                layer: None,
                created_by: created_by.to_string(),
            }
        } else {
            let opts = LayerOptions {
                epoch: self.settings.epoch,
                ..LayerOptions::default()
            };
            let index = OwnerIndex::from_entries(&entries);
            let kept = tree.as_ref().map(|_| entries.clone());
            let started = Instant::now();
            let d = self.store.write_layer(entries, &opts)?;
            tracing::debug!(elapsed = ?started.elapsed(), "wrote layer {}", d.digest);
            if !disk_has_owners() {
                remember_owners(self.store, &d.diff_id, &index)?;
            }
            if let (Some(tree), Some(entries)) = (tree, kept) {
                self.adopt(&d.diff_id, &tree, &entries)?;
            }
            CacheRecord {
                layer: Some(CachedLayer {
                    digest: d.digest,
                    size: d.size,
                    diff_id: d.diff_id,
                    tar_size: d.tar_size,
                    empty: false,
                }),
                created_by: created_by.to_string(),
            }
        };
        self.index.put(&key, &record)?;
        self.reuse(st, key, record)
    }

    /// Makes the captured `tree` of `entries` the unpacked directory of `diff_id`,
    /// unless it is already unpacked or the tree cannot be adopted exactly (then
    /// [`Self::reuse`] unpacks the blob).
    fn adopt(&self, diff_id: &str, tree: &Path, entries: &[LayerEntry]) -> Result<(), BuildError> {
        if self.store.unpacked_layer(diff_id)?.is_some() {
            return Ok(());
        }
        let started = Instant::now();
        let report = match prepare_tree(tree, entries, self.settings.epoch) {
            Ok(report) => report,
            Err(e) => {
                tracing::debug!("unpacking layer {diff_id} from its blob: {e}");
                return Ok(());
            }
        };
        // A failed move leaves no layer directory behind: unpacking still works.
        match self.store.adopt_layer_dir(diff_id, tree, &report) {
            Ok(_) => {
                let elapsed = started.elapsed();
                tracing::debug!(?elapsed, "adopted the step's tree as layer {diff_id}");
            }
            Err(e) => tracing::warn!("unpacking layer {diff_id} from its blob: {e}"),
        }
        Ok(())
    }

    /// Reuses the cached result of `key`, or commits what `produce` makes.
    pub(crate) fn layer_step(
        &self,
        st: &mut StageState,
        key: CacheKey,
        created_by: &str,
        produce: impl FnOnce(&StageState) -> Result<StepWrites, BuildError>,
    ) -> Result<StepStatus, BuildError> {
        if let Some(rec) = self.lookup(&key) {
            self.reuse(st, key, rec)?;
            return Ok(StepStatus::Cached);
        }
        let _lock = if self.settings.no_cache {
            None
        } else {
            let lock = self.index.lock(&key)?;
            // Another build may have produced it while this one waited.
            if let Some(rec) = self.lookup(&key) {
                self.reuse(st, key, rec)?;
                return Ok(StepStatus::Cached);
            }
            Some(lock)
        };
        let result = produce(st).and_then(|writes| self.commit(st, key, writes, created_by));
        self.clean_scratch();
        result.map(|()| StepStatus::Ran)
    }
}
