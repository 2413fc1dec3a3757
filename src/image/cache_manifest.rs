//! The shared build cache's format (see `docs/cache.md`): one plain OCI image manifest
//! per cache tag, whose layers are the cached layer blobs (so registries keep them and
//! can mount them across repositories) and whose config blob, of media type
//! [`CACHE_CONFIG_MEDIA_TYPE`], maps each step's cache key to what a hit needs.
//!
//! Encoding is canonical (keys sorted, layers sorted by digest, compact JSON), so the
//! same records always give the same config and manifest digests. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::image::{ImageManifest, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};

use super::digest::sha256_hex;
use super::oci::{canonical_json, descriptor, descriptor_of, OciError};

/// Media type of the cache config blob (the records).
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.flense.cache.config.v1+json";

/// Annotation of a manifest layer that holds the contents of a cache mount
/// (`--cache-mounts`): the cache id.
pub const CACHE_MOUNT_ANNOTATION: &str = "dev.flense.cache.mount";

/// The `createdBy` of a cache mount's record is this prefix and the cache id.
const MOUNT_CREATED_BY: &str = "cache mount ";

/// Largest cache config accepted when loading (about 200 000 records).
pub const MAX_CACHE_CONFIG_SIZE: u64 = 64 * 1024 * 1024;

/// Why a cache manifest or config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheFormatError {
    /// The manifest's config is not a flense cache config.
    #[error("not a flense cache: config media type is {0:?}")]
    NotACache(String),
    /// The config is not valid JSON of the expected shape.
    #[error("invalid cache config")]
    Json(#[from] serde_json::Error),
    /// oci-spec refused a value while encoding.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The documents are well-formed but inconsistent (wrong key, bad digest, a layer
    /// index out of range, config and manifest disagreeing).
    #[error("invalid cache: {0}")]
    Invalid(String),
}

/// A layer a cached step produced, by its digests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CachedLayer {
    /// `sha256:` of the compressed blob.
    pub digest: String,
    /// Compressed size.
    pub size: u64,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// Uncompressed size.
    pub tar_size: u64,
    /// True when the layer has no entries (it is then left out of the image).
    pub empty: bool,
}

/// What a step produced, as a cache remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer, when the step made one.
    pub layer: Option<CachedLayer>,
    /// The history `created_by` text of the step.
    pub created_by: String,
}

impl CacheRecord {
    /// The record of the contents of cache mount `id` (stored under [`mount_key`]).
    pub fn mount(id: &str, layer: CachedLayer) -> Self {
        Self {
            layer: Some(layer),
            created_by: format!("{MOUNT_CREATED_BY}{id}"),
        }
    }

    /// The cache id, when this is the record of a cache mount's contents stored under
    /// `key`.
    pub fn mount_id(&self, key: &str) -> Option<&str> {
        let id = self.created_by.strip_prefix(MOUNT_CREATED_BY)?;
        (self.layer.is_some() && mount_key(id) == key).then_some(id)
    }
}

/// The key under which a cache holds the contents of cache mount `id` (a builder
/// cache's id or a tool cache's, see `docs/cache.md`): sha256 over
/// `flense-cache-mount-v1`, a NUL and the id, so it is a valid key no step can have.
pub fn mount_key(id: &str) -> String {
    let mut text = b"flense-cache-mount-v1\0".to_vec();
    text.extend_from_slice(id.as_bytes());
    super::digest::sha256(&text)
}

/// Cache key (lower-case sha256 hex) -> record, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheRecords {
    records: BTreeMap<String, CacheRecord>,
}

/// The documents of a cache tag: the config blob and the manifest over it.
#[derive(Debug, Clone)]
pub struct CacheDocuments {
    /// The config blob (media type [`CACHE_CONFIG_MEDIA_TYPE`]).
    pub config: Vec<u8>,
    /// The manifest: the config and the layer blobs, sorted by digest.
    pub manifest: ImageManifest,
    /// The manifest's canonical bytes (what is stored and tagged).
    pub manifest_bytes: Vec<u8>,
}

/// The config blob as stored: a layer table parallel to the manifest's layers, and
/// records pointing into it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheConfig {
    layers: Vec<ConfigLayer>,
    records: BTreeMap<String, ConfigRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigLayer {
    digest: String,
    #[serde(rename = "diffID")]
    diff_id: String,
    tar_size: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    empty: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layer: Option<usize>,
    created_by: String,
}

/// Whether `key` is a cache key: 64 lower-case hex characters (keys become file names
/// in the local cache index, so nothing else is accepted from a remote cache).
pub fn valid_key(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl CacheRecords {
    /// No records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers what `key` produced (replacing an older record). A key that is not
    /// lower-case sha256 hex is refused.
    pub fn insert(&mut self, key: &str, record: CacheRecord) -> Result<(), CacheFormatError> {
        if !valid_key(key) {
            return Err(CacheFormatError::Invalid(format!("bad cache key {key:?}")));
        }
        self.records.insert(key.to_string(), record);
        Ok(())
    }

    /// The record of `key`.
    pub fn get(&self, key: &str) -> Option<&CacheRecord> {
        self.records.get(key)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every (key, record), in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &CacheRecord)> {
        self.records.iter().map(|(k, r)| (k.as_str(), r))
    }

    /// Keeps only the records `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &CacheRecord) -> bool) {
        self.records.retain(|k, r| keep(k, r));
    }

    /// The distinct layers the records use, sorted by digest.
    pub fn layers(&self) -> Vec<&CachedLayer> {
        let set: BTreeSet<&CachedLayer> = self
            .records
            .values()
            .filter_map(|r| r.layer.as_ref())
            .collect();
        let mut out: Vec<&CachedLayer> = set.into_iter().collect();
        out.dedup_by(|a, b| a.digest == b.digest);
        out
    }

    /// The union of `existing` (what a cache tag held) and `new` (what this writer
    /// built): every record of `new` is kept, and wins over `existing` on the same key.
    /// An existing record whose layer blob `new` describes differently takes `new`'s
    /// description (this writer computed it from the blob).
    pub fn merge(existing: &CacheRecords, new: &CacheRecords) -> CacheRecords {
        let ours: BTreeMap<&str, &CachedLayer> = new
            .records
            .values()
            .filter_map(|r| r.layer.as_ref())
            .map(|l| (l.digest.as_str(), l))
            .collect();
        let mut merged = existing.clone();
        for record in merged.records.values_mut() {
            if let Some(layer) = record.layer.as_mut() {
                if let Some(mine) = ours.get(layer.digest.as_str()) {
                    *layer = (*mine).clone();
                }
            }
        }
        merged
            .records
            .extend(new.records.iter().map(|(k, r)| (k.clone(), r.clone())));
        merged
    }

    /// Encodes the records as a cache config and the manifest over it.
    pub fn to_documents(&self) -> Result<CacheDocuments, CacheFormatError> {
        let layers: Vec<&CachedLayer> = self.layers();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, layer) in layers.iter().enumerate() {
            index.insert(layer.digest.as_str(), i);
        }
        let mut records = BTreeMap::new();
        for (key, record) in &self.records {
            let layer = match &record.layer {
                Some(l) if layers[index[l.digest.as_str()]] != l => {
                    return Err(CacheFormatError::Invalid(format!(
                        "records describe layer {} in two ways",
                        l.digest
                    )))
                }
                Some(l) => Some(index[l.digest.as_str()]),
                None => None,
            };
            let created_by = record.created_by.clone();
            records.insert(key.clone(), ConfigRecord { layer, created_by });
        }
        let config = CacheConfig {
            layers: layers
                .iter()
                .map(|l| ConfigLayer {
                    digest: l.digest.clone(),
                    diff_id: l.diff_id.clone(),
                    tar_size: l.tar_size,
                    empty: l.empty,
                })
                .collect(),
            records,
        };
        let config = canonical_json(&config)?;
        let mut mount_ids: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, record) in &self.records {
            if let (Some(id), Some(layer)) = (record.mount_id(key), &record.layer) {
                mount_ids.insert(layer.digest.as_str(), id);
            }
        }
        let mut layer_descriptors = Vec::with_capacity(layers.len());
        for layer in &layers {
            let mut desc = descriptor(MediaType::ImageLayerGzip, &layer.digest, layer.size)?;
            if let Some(id) = mount_ids.get(layer.digest.as_str()) {
                let annotation = (CACHE_MOUNT_ANNOTATION.to_string(), id.to_string());
                desc.set_annotations(Some([annotation].into()));
            }
            layer_descriptors.push(desc);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor_of(
                MediaType::Other(CACHE_CONFIG_MEDIA_TYPE.into()),
                &config,
            )?)
            .layers(layer_descriptors)
            .build()
            .map_err(OciError::from)?;
        let manifest_bytes = canonical_json(&manifest)?;
        Ok(CacheDocuments {
            config,
            manifest,
            manifest_bytes,
        })
    }

    /// Decodes the records of a cache manifest and its config blob (whose digest the
    /// caller has verified). Every key, digest and layer index is checked, so a record
    /// decoded here names exactly one layer blob of the manifest.
    pub fn from_documents(
        manifest: &ImageManifest,
        config: &[u8],
    ) -> Result<CacheRecords, CacheFormatError> {
        let media_type = manifest.config().media_type().to_string();
        if media_type != CACHE_CONFIG_MEDIA_TYPE {
            return Err(CacheFormatError::NotACache(media_type));
        }
        let invalid = |reason: String| CacheFormatError::Invalid(reason);
        let parsed: CacheConfig = serde_json::from_slice(config)?;
        if parsed.layers.len() != manifest.layers().len() {
            return Err(invalid(format!(
                "the config lists {} layers, the manifest {}",
                parsed.layers.len(),
                manifest.layers().len()
            )));
        }
        let mut layers = Vec::with_capacity(parsed.layers.len());
        for (layer, desc) in parsed.layers.into_iter().zip(manifest.layers()) {
            if layer.digest != desc.digest().to_string() {
                return Err(invalid(format!(
                    "config layer {} is {} in the manifest",
                    layer.digest,
                    desc.digest()
                )));
            }
            if sha256_hex(&layer.digest).is_none() || sha256_hex(&layer.diff_id).is_none() {
                return Err(invalid(format!("bad digest in layer {}", layer.digest)));
            }
            layers.push(CachedLayer {
                digest: layer.digest,
                size: desc.size(),
                diff_id: layer.diff_id,
                tar_size: layer.tar_size,
                empty: layer.empty,
            });
        }
        let mut out = CacheRecords::new();
        for (key, record) in parsed.records {
            let layer = match record.layer {
                Some(i) => Some(layers.get(i).cloned().ok_or_else(|| {
                    invalid(format!("record {key} names layer {i} of {}", layers.len()))
                })?),
                None => None,
            };
            let created_by = record.created_by;
            out.insert(&key, CacheRecord { layer, created_by })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
