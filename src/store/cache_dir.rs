//! A shared build cache in an OCI image layout directory (`oci:DIR[:TAG]`): the cache
//! manifest is tagged in `index.json` with `org.opencontainers.image.ref.name` = TAG,
//! its config and layers are in `blobs/sha256/`. The directory is opened as a
//! [`Store`] layout, so blobs are written atomically and verified on read. Exports
//! to one directory are serialised by the lock file `flense-cache.lock`.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageManifest, MediaType};

use super::remote_cache::{check_and_record, RemoteCache, RemoteCacheError};
use super::{Store, StoreError};
use crate::image::cache_manifest::{
    CacheFormatError, CacheRecords, CachedLayer, MAX_CACHE_CONFIG_SIZE,
};
use crate::image::digest::sha256_digest;
use crate::image::oci::descriptor_of;
use crate::registry::ExportReport;

/// The largest cache manifest read (the distribution spec's manifest limit).
const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// A cache tag in an OCI layout directory.
#[derive(Debug, Clone)]
pub struct OciDirCache {
    dir: PathBuf,
    tag: String,
}

impl OciDirCache {
    /// The cache tagged `tag` in the layout directory `dir` (created on export).
    pub fn new(dir: &Path, tag: &str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
        }
    }

    fn layout_err(&self) -> impl FnOnce(StoreError) -> RemoteCacheError + '_ {
        |source| RemoteCacheError::Layout {
            cache: self.to_string(),
            source,
        }
    }

    fn format_err(&self) -> impl FnOnce(CacheFormatError) -> RemoteCacheError + '_ {
        |source| RemoteCacheError::Format {
            cache: self.to_string(),
            source,
        }
    }

    /// The records tagged in `layout`, if the tag exists.
    fn read_records(&self, layout: &Store) -> Result<Option<CacheRecords>, RemoteCacheError> {
        let tags = layout.tags().map_err(self.layout_err())?;
        let Some((_, desc)) = tags.into_iter().find(|(name, _)| *name == self.tag) else {
            return Ok(None);
        };
        let manifest: ImageManifest = serde_json::from_slice(&self.read_small(
            layout,
            desc.digest().as_ref(),
            desc.size(),
            MAX_MANIFEST_SIZE,
        )?)
        .map_err(|e| (self.format_err())(e.into()))?;
        let config = manifest.config();
        let config_bytes = self.read_small(
            layout,
            config.digest().as_ref(),
            config.size(),
            MAX_CACHE_CONFIG_SIZE,
        )?;
        CacheRecords::from_documents(&manifest, &config_bytes)
            .map(Some)
            .map_err(self.format_err())
    }

    /// A verified document blob of at most `limit` bytes.
    fn read_small(
        &self,
        layout: &Store,
        digest: &str,
        size: u64,
        limit: u64,
    ) -> Result<Vec<u8>, RemoteCacheError> {
        if size > limit {
            let reason = format!("{digest} has {size} bytes, more than the {limit} accepted");
            return Err((self.format_err())(CacheFormatError::Invalid(reason)));
        }
        let bytes = layout.read_blob(digest).map_err(self.layout_err())?;
        if bytes.len() as u64 != size {
            let reason = format!(
                "{digest} has {} bytes, its descriptor says {size}",
                bytes.len()
            );
            return Err((self.format_err())(CacheFormatError::Invalid(reason)));
        }
        Ok(bytes)
    }

    /// Copies the layer blobs of `records` the layout lacks from `store`; returns the
    /// digests available nowhere and the number copied.
    fn copy_layers(
        &self,
        layout: &Store,
        records: &CacheRecords,
        store: &Store,
    ) -> Result<(Vec<String>, usize), RemoteCacheError> {
        let mut missing = Vec::new();
        let mut copied = 0;
        for layer in records.layers() {
            if layout.has_blob(&layer.digest) {
                continue;
            }
            if !store.has_blob(&layer.digest) {
                tracing::warn!(
                    "cache layer {} is not in the local store; its records are not exported",
                    layer.digest
                );
                missing.push(layer.digest.clone());
                continue;
            }
            let mut reader = store.open_blob(&layer.digest, Some(layer.size))?;
            layout
                .put_blob_verified(&mut reader, &layer.digest, layer.size)
                .map_err(self.layout_err())?;
            copied += 1;
        }
        Ok((missing, copied))
    }
}

impl fmt::Display for OciDirCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci:{}:{}", self.dir.display(), self.tag)
    }
}

impl RemoteCache for OciDirCache {
    fn load(&self) -> Result<Option<CacheRecords>, RemoteCacheError> {
        match Store::existing_layout(&self.dir) {
            Some(layout) => self.read_records(&layout),
            None => Ok(None),
        }
    }

    fn fetch_layer(&self, layer: &CachedLayer, store: &Store) -> Result<(), RemoteCacheError> {
        let missing = || RemoteCacheError::missing(self, layer);
        if !store.has_blob(&layer.digest) {
            let layout = Store::existing_layout(&self.dir).ok_or_else(missing)?;
            let mut file = match layout.open_blob_file(&layer.digest) {
                Ok((file, _)) => file,
                Err(StoreError::MissingBlob(_)) => return Err(missing()),
                Err(e) => return Err((self.layout_err())(e)),
            };
            match store.put_blob_verified(&mut file, &layer.digest, layer.size) {
                Ok(()) => {}
                Err(e @ StoreError::Corrupt { .. }) => {
                    return Err(RemoteCacheError::corrupt(self, layer, e))
                }
                Err(e) => return Err(e.into()),
            }
        }
        check_and_record(self, layer, store)
    }

    fn export(
        &self,
        records: &CacheRecords,
        store: &Store,
    ) -> Result<ExportReport, RemoteCacheError> {
        let layout = Store::create_layout(&self.dir).map_err(self.layout_err())?;
        let _lock = layout
            .lock_file("flense-cache.lock")
            .map_err(self.layout_err())?;
        let (missing, layers_sent) = self.copy_layers(&layout, records, store)?;
        let mut ours = records.clone();
        ours.retain(|_, r| {
            r.layer
                .as_ref()
                .is_none_or(|l| !missing.contains(&l.digest))
        });
        let existing = self.read_records(&layout)?.unwrap_or_default();
        let mut merged = CacheRecords::merge(&existing, &ours);
        merged.retain(|_, r| r.layer.as_ref().is_none_or(|l| layout.has_blob(&l.digest)));
        let docs = merged.to_documents().map_err(self.format_err())?;
        if merged != existing {
            layout.put_blob(&docs.config).map_err(self.layout_err())?;
            layout
                .put_blob(&docs.manifest_bytes)
                .map_err(self.layout_err())?;
            let desc = descriptor_of(MediaType::ImageManifest, &docs.manifest_bytes)
                .map_err(|e| (self.format_err())(e.into()))?;
            layout
                .set_tag(&self.tag, &desc)
                .map_err(self.layout_err())?;
        }
        Ok(ExportReport {
            records: merged.len(),
            layers_sent,
            skipped: records
                .iter()
                .filter(|(k, _)| ours.get(k).is_none())
                .map(|(k, _)| k.to_string())
                .collect(),
            manifest_digest: sha256_digest(&docs.manifest_bytes),
        })
    }
}
