//! `flense prune`: deleting what no name reaches, in an order that keeps the store
//! consistent however it is interrupted (`kill -9` at any moment leaves what
//! `flense check` accepts, and the next prune finishes the work):
//!
//! 1. the build-cache records naming a layer blob about to go (a record never names a
//!    deleted blob; a build that misses one runs the step again),
//! 2. the blobs,
//! 3. the diff-ID records of every blob that is gone (also those a killed prune left),
//! 4. the unpacked layers no kept image uses, each renamed into `tmp/` before it is
//!    deleted, so none appears half deleted.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use super::images::is_index;
use super::{io_err, CacheDir, Store, StoreError};
use crate::fault_point::{pause_at, PausePoint};
use crate::image::cache_manifest::CacheRecord;
use crate::image::digest::{parse_sha256, Digest};

/// What `prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs deleted.
    pub blobs: usize,
    /// Bytes of blobs deleted.
    pub bytes: u64,
    /// Unpacked layer directories deleted.
    pub layers: usize,
    /// Build-cache records deleted with the layer blob they name.
    pub records: usize,
}

/// What the names in `index.json` reach.
#[derive(Default)]
struct Reachable {
    /// Digests of indexes, manifests, configs and layer blobs.
    blobs: BTreeSet<String>,
    /// Diff-IDs of the layers.
    diff_ids: BTreeSet<String>,
}

impl Store {
    /// Deletes blobs, diff-ID records, unpacked layers and build-cache records that no
    /// name reaches (see the module docs). Waits for every [`super::index::BlobHold`]
    /// to be released first (running builds, pulls and runs hold one).
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let _hold = self.hold_blobs_exclusively()?;
        let _lock = self.lock_index()?;
        let reachable = self.reachable()?;
        let doomed: Vec<Digest> = self
            .list_blobs()?
            .into_iter()
            .filter(|d| !reachable.blobs.contains(d.as_ref() as &str))
            .collect();
        let mut report = PruneReport {
            records: self.forget_cache_records_of(&doomed)?,
            ..PruneReport::default()
        };
        for digest in &doomed {
            let path = self.blob_path(digest)?;
            report.bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(io_err("removing", &path))?;
            report.blobs += 1;
        }
        if !doomed.is_empty() {
            pause_at(PausePoint::PruneDelete);
        }
        self.drop_records_of_missing_blobs()?;
        self.drop_indexes_of_missing_layers()?;
        report.layers = self.delete_layers_except(&reachable.diff_ids)?;
        Ok(report)
    }

    /// Every blob and diff-ID the names in `index.json` reach. Unreadable documents
    /// reach nothing further (`flense check` reports them).
    fn reachable(&self) -> Result<Reachable, StoreError> {
        let mut keep = Reachable::default();
        for d in self.read_index()?.manifests() {
            keep.blobs.insert(d.digest().to_string());
            let mut manifests = vec![(d.media_type().clone(), d.digest().clone())];
            while let Some((media_type, digest)) = manifests.pop() {
                let Ok(bytes) = self.read_blob(&digest) else {
                    continue;
                };
                if is_index(&media_type) {
                    if let Ok(index) = serde_json::from_slice::<ImageIndex>(&bytes) {
                        for m in index.manifests() {
                            keep.blobs.insert(m.digest().to_string());
                            manifests.push((m.media_type().clone(), m.digest().clone()));
                        }
                    }
                    continue;
                }
                let Ok(manifest) = serde_json::from_slice::<ImageManifest>(&bytes) else {
                    continue;
                };
                let config_digest = manifest.config().digest();
                keep.blobs.insert(config_digest.to_string());
                for layer in manifest.layers() {
                    keep.blobs.insert(layer.digest().to_string());
                    if let Ok(Some(diff_id)) = self.recorded_diff_id(layer.digest()) {
                        keep.diff_ids.insert(diff_id.to_string());
                    }
                }
                if let Ok(config) = self.read_blob(config_digest) {
                    if let Ok(config) = serde_json::from_slice::<ImageConfiguration>(&config) {
                        keep.diff_ids
                            .extend(config.rootfs().diff_ids().iter().cloned());
                    }
                }
            }
        }
        Ok(keep)
    }

    /// Deletes the build-cache records whose layer blob is one of `blobs`; returns how
    /// many.
    fn forget_cache_records_of(&self, blobs: &[Digest]) -> Result<usize, StoreError> {
        let doomed: BTreeSet<&str> = blobs.iter().map(|d| d.as_ref() as &str).collect();
        let dir = self.cache_dir(CacheDir::Index);
        let mut removed = 0;
        for path in list(&dir)? {
            let names_doomed = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<CacheRecord>(&b).ok())
                .and_then(|record| record.layer)
                .is_some_and(|layer| doomed.contains(layer.digest.as_str()));
            if names_doomed {
                remove_if_present(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes the diff-ID records (both ways) of layer blobs that are not stored.
    fn drop_records_of_missing_blobs(&self) -> Result<(), StoreError> {
        for path in list(&self.root.join("diffids/sha256"))? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let blob = format!("sha256:{name}");
            if parse_sha256(&blob).is_some_and(|b| !self.has_blob(&b)) {
                remove_if_present(&path)?;
            }
        }
        for path in list(&self.root.join("layer-blobs/sha256"))? {
            let recorded = fs::read_to_string(&path).ok();
            let blob = recorded.as_deref().and_then(|s| parse_sha256(s.trim()));
            if blob.is_some_and(|b| !self.has_blob(&b)) {
                remove_if_present(&path)?;
            }
        }
        Ok(())
    }

    /// Deletes the unpacked layers whose diff-ID is not in `keep`; returns how many.
    fn delete_layers_except(&self, keep: &BTreeSet<String>) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for path in list(&self.root.join("layers"))? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let diff_id = format!("sha256:{name}");
            // Names that are not diff-IDs are extractions in progress: leave them.
            if parse_sha256(&diff_id).is_none() || keep.contains(&diff_id) {
                continue;
            }
            self.delete_layer_dir(&path)?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// The entries of `dir`, sorted (none when it does not exist).
pub(super) fn list(dir: &Path) -> Result<Vec<std::path::PathBuf>, StoreError> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut paths = Vec::new();
    for item in listing {
        paths.push(item.map_err(io_err("listing", dir))?.path());
    }
    paths.sort();
    Ok(paths)
}

pub(super) fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}
