//! Layer indexes and lineages: what lets a layer be rewritten from an earlier one
//! ([`crate::image::layer::splice`]). A layer written with an index keeps it in
//! `cache/layer-index/<diff-id hex>`; a lineage (a name the builder gives to "the
//! layer this step wrote last time", whatever its inputs were) points at the diff-ID
//! of its latest layer in `cache/lineage/<name>`. Both are caches: a missing, damaged
//! or stale one only means the next layer is written afresh.

use std::fs;

use super::{io_err, Store, StoreError};
use crate::fault_point::{PauseAfterFirstWrite, PausePoint};
use crate::image::digest::{parse_sha256, AsDigest, Digest};
use crate::image::layer::index::LayerIndex;
use crate::image::layer::splice::{write_layer_indexed, EarlierLayer, KnownContent, SpliceReport};
use crate::image::{LayerDigests, LayerEntry, LayerOptions};

use super::blobs::store_hex;

impl Store {
    fn layer_index_path(
        &self,
        diff_id: &(impl AsDigest + ?Sized),
    ) -> Result<std::path::PathBuf, StoreError> {
        Ok(self
            .root
            .join("cache/layer-index")
            .join(store_hex(diff_id)?))
    }

    fn lineage_path(&self, lineage: &str) -> Option<std::path::PathBuf> {
        let plain = !lineage.is_empty() && lineage.bytes().all(|b| b.is_ascii_alphanumeric());
        plain.then(|| self.root.join("cache/lineage").join(lineage))
    }

    /// Writes `entries` as a layer blob, as [`Store::write_layer`] does, and keeps its
    /// index; entries unchanged since `earlier` are taken from it.
    pub fn write_layer_indexed(
        &self,
        entries: Vec<LayerEntry>,
        opts: &LayerOptions,
        earlier: Option<&EarlierLayer>,
        known: KnownContent<'_>,
    ) -> Result<(LayerDigests, SpliceReport), StoreError> {
        let _activity = crate::activity::begin(
            || format!("writing a layer of {} files", entries.len()),
            None,
        );
        let new_out = || {
            let writer = self.blob_writer().map_err(std::io::Error::other)?;
            Ok(PauseAfterFirstWrite::new(writer, PausePoint::LayerWrite))
        };
        let layer = write_layer_indexed(entries, new_out, opts, earlier, known)?;
        let digests = layer.digests;
        layer
            .out
            .into_inner()
            .commit(Some((&digests.digest, digests.size)))?;
        self.record_layer(&digests.digest, &digests.diff_id)?;
        // The index only makes a later layer faster to write: without it, the layer is
        // written afresh.
        if let Err(e) = self.keep_layer_index(&digests.diff_id, &layer.index) {
            let e = crate::error_chain::ErrorChain(&e);
            tracing::warn!("cannot keep the index of layer {}: {e}", digests.diff_id);
        }
        Ok((digests, layer.report))
    }

    fn keep_layer_index(&self, diff_id: &Digest, index: &LayerIndex) -> Result<(), StoreError> {
        let path = self.layer_index_path(diff_id)?;
        let dir = path.parent().expect("index paths have a parent");
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        self.write_atomic(&path, &index.to_bytes())
    }

    /// The stored layer `diff_id` as an earlier layer to rewrite from, when its blob and
    /// a valid index are stored.
    pub fn earlier_layer(&self, diff_id: &(impl AsDigest + ?Sized)) -> Option<EarlierLayer> {
        let blob = self.blob_of_diff_id(diff_id).ok()??;
        let bytes = fs::read(self.layer_index_path(diff_id).ok()?).ok()?;
        let index = match LayerIndex::from_bytes(&bytes) {
            Ok(index) => index,
            Err(e) => {
                tracing::debug!("layer index of {}: {e}", diff_id.digest_str());
                return None;
            }
        };
        Some(EarlierLayer {
            blob: self.blob_path(&blob).ok()?,
            index,
        })
    }

    /// Records `diff_id` as the latest layer of `lineage` (letters and digits).
    pub fn record_lineage(
        &self,
        lineage: &str,
        diff_id: &(impl AsDigest + ?Sized),
    ) -> Result<(), StoreError> {
        let Some(path) = self.lineage_path(lineage) else {
            return Ok(());
        };
        let dir = path.parent().expect("lineage paths have a parent");
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        self.write_atomic(&path, diff_id.digest_str().as_bytes())
    }

    /// The latest layer recorded for `lineage`.
    pub fn lineage(&self, lineage: &str) -> Option<Digest> {
        let text = fs::read_to_string(self.lineage_path(lineage)?).ok()?;
        parse_sha256(text.trim())
    }

    /// Deletes the indexes of layers whose blob is gone and the lineages whose layer
    /// has no index left.
    pub(super) fn drop_indexes_of_missing_layers(&self) -> Result<(), StoreError> {
        let dir = self.root.join("cache/layer-index");
        for path in super::prune::list(&dir)? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let diff_id = parse_sha256(&format!("sha256:{name}"));
            let stored = diff_id.is_some_and(|d| matches!(self.blob_of_diff_id(&d), Ok(Some(_))));
            if !stored {
                super::prune::remove_if_present(&path)?;
            }
        }
        for path in super::prune::list(&self.root.join("cache/lineage"))? {
            let layer = fs::read_to_string(&path).ok();
            let diff_id = layer.as_deref().and_then(|s| parse_sha256(s.trim()));
            let indexed =
                diff_id.is_some_and(|d| self.layer_index_path(&d).is_ok_and(|p| p.is_file()));
            if !indexed {
                super::prune::remove_if_present(&path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Content, EntryKind};

    fn entries(changed: &str) -> Vec<LayerEntry> {
        ["a", "b", "c"]
            .iter()
            .map(|name| LayerEntry {
                path: format!("app/{name}").into(),
                kind: EntryKind::File(Content::Bytes(
                    if *name == "b" { changed } else { name }
                        .as_bytes()
                        .to_vec(),
                )),
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
                xattrs: vec![],
            })
            .collect()
    }

    #[test]
    fn layers_are_rewritten_along_their_lineage_and_pruned_with_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let opts = LayerOptions::default();
        let none = &mut |_: &std::path::Path| None;
        let (first, _) = store
            .write_layer_indexed(entries("b"), &opts, None, none)
            .unwrap();
        store.record_lineage("0123abcd", &first.diff_id).unwrap();
        assert_eq!(store.lineage("0123abcd"), Some(first.diff_id.clone()));
        let earlier = store.earlier_layer(&first.diff_id).expect("indexed");

        let (second, report) = store
            .write_layer_indexed(entries("B"), &opts, Some(&earlier), none)
            .unwrap();
        assert_eq!((report.reused_entries, report.entries), (2, 3));
        assert_eq!(second, store.write_layer(entries("B"), &opts).unwrap());
        store.record_lineage("0123abcd", &second.diff_id).unwrap();
        assert_eq!(store.lineage("0123abcd"), Some(second.diff_id.clone()));

        // Names that are not plain are not paths in the store.
        store.record_lineage("../escape", &first.diff_id).unwrap();
        assert_eq!(store.lineage("../escape"), None);
        assert!(!tmp.path().join("cache/escape").exists());

        // No image holds either layer: prune removes them, their indexes and lineage.
        store.prune().unwrap();
        assert!(store.earlier_layer(&first.diff_id).is_none());
        assert!(store.earlier_layer(&second.diff_id).is_none());
        assert_eq!(store.lineage("0123abcd"), None);
        let left = fs::read_dir(tmp.path().join("cache/layer-index")).unwrap();
        assert_eq!(left.count(), 0);
    }
}
