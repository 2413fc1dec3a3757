//! Images in the store: resolving references, reading manifests and configs, committing
//! new images (pruning is in [`super::prune`]).

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::reference::{candidate_names, parse_name, parse_reference, LocalRef};
use super::{Store, StoreError};
use crate::image::digest::{parse_sha256, Digest};
use crate::image::oci::{
    canonical_json, descriptor_of, new_manifest, ImageFormat, DOCKER_MANIFEST_LIST,
};
use crate::image::platform::Platform;
use crate::image::LayerDigests;

/// A resolved image: its manifest descriptor, manifest and config.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The tag it was found by, if any.
    pub reference: Option<String>,
    /// Descriptor of the manifest (for a multi-platform index: of the chosen manifest).
    pub descriptor: Descriptor,
    /// The image manifest.
    pub manifest: ImageManifest,
    /// The image config.
    pub config: ImageConfiguration,
}

impl StoredImage {
    /// Total size of config and layer blobs (compressed), as `images` shows it.
    pub fn size(&self) -> u64 {
        self.manifest.config().size() + self.manifest.layers().iter().map(|l| l.size()).sum::<u64>()
    }
}

/// Whether `media_type` is an image index (OCI, or a Docker manifest list).
pub fn is_index(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageIndex) || media_type.to_string() == DOCKER_MANIFEST_LIST
}

impl Store {
    /// Finds the manifest descriptor a reference names: a tag (`busybox`,
    /// `localhost:5000/x:y`), `name@sha256:...` or a bare manifest digest. A short name
    /// means `localhost/<name>` first, then Docker Hub's `docker.io/library/<name>`
    /// (see [`candidate_names`]). Returns the tag found, if any.
    pub fn resolve(&self, reference: &str) -> Result<(Option<String>, Descriptor), StoreError> {
        let parsed = parse_reference(reference)?;
        let tags = self.tags()?;
        let by_digest = |digest: &Digest| -> Result<Descriptor, StoreError> {
            if let Some((_, d)) = tags.iter().find(|(_, d)| d.digest() == digest) {
                return Ok(d.clone());
            }
            let bytes = self.read_blob(digest).map_err(|e| match e {
                StoreError::MissingBlob(_) => StoreError::UnknownImage(reference.to_owned()),
                e => e,
            })?;
            let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str())
                        .map(MediaType::from)
                })
                .unwrap_or(MediaType::ImageManifest);
            Ok(descriptor_of(media_type, &bytes)?)
        };
        match parsed {
            LocalRef::Digest(digest) => Ok((None, by_digest(&digest)?)),
            LocalRef::Named(name) => match name.split_once('@') {
                Some((_, digest)) => {
                    let digest = parse_sha256(digest)
                        .ok_or_else(|| StoreError::BadDigest(digest.to_owned()))?;
                    Ok((None, by_digest(&digest)?))
                }
                None => candidate_names(reference)?
                    .into_iter()
                    .find_map(|c| tags.iter().find(|(n, _)| *n == c).cloned())
                    .map(|(n, d)| (Some(n), d))
                    .ok_or(StoreError::UnknownImage(name)),
            },
        }
    }

    /// Reads the image a reference names.
    pub fn image(&self, reference: &str) -> Result<StoredImage, StoreError> {
        let (tag, descriptor) = self.resolve(reference)?;
        let mut image = self.image_at(&descriptor)?;
        image.reference = tag;
        Ok(image)
    }

    /// Reads the image whose manifest (or index, resolved to this host's platform) is
    /// `descriptor`.
    pub fn image_at(&self, descriptor: &Descriptor) -> Result<StoredImage, StoreError> {
        let mut descriptor = descriptor.clone();
        let digest = descriptor.digest();
        let mut bytes = self.read_blob(digest)?;
        if is_index(descriptor.media_type()) {
            let index: ImageIndex = parse_doc("image index", digest, &bytes)?;
            let chosen = pick_platform(&index).ok_or_else(|| StoreError::BadDocument {
                what: "image index",
                name: digest.to_string(),
                detail: "no manifest for this platform".into(),
            })?;
            descriptor = chosen;
            bytes = self.read_blob(descriptor.digest())?;
        }
        let manifest: ImageManifest = parse_doc("manifest", descriptor.digest(), &bytes)?;
        let config_digest = manifest.config().digest();
        let config: ImageConfiguration =
            parse_doc("config", config_digest, &self.read_blob(config_digest)?)?;
        Ok(StoredImage {
            reference: None,
            descriptor,
            manifest,
            config,
        })
    }

    /// Stores a manifest document and returns its descriptor.
    pub fn put_manifest(&self, manifest: &ImageManifest) -> Result<Descriptor, StoreError> {
        let bytes = canonical_json(manifest)?;
        self.put_blob(&bytes)?;
        let media_type = manifest
            .media_type()
            .clone()
            .unwrap_or(MediaType::ImageManifest);
        Ok(descriptor_of(media_type, &bytes)?)
    }

    /// Stores `config` and a manifest over `layers` (whose blobs must be stored), and
    /// tags it as `name` when given. Returns the manifest descriptor.
    pub fn commit_image(
        &self,
        name: Option<&str>,
        format: ImageFormat,
        config: &ImageConfiguration,
        layers: &[LayerDigests],
    ) -> Result<Descriptor, StoreError> {
        for layer in layers {
            if !self.has_blob(&layer.digest) {
                return Err(StoreError::MissingBlob(layer.digest.to_string()));
            }
        }
        let config_bytes = canonical_json(config)?;
        self.put_blob(&config_bytes)?;
        let manifest = new_manifest(format, &config_bytes, layers)?;
        let descriptor = self.put_manifest(&manifest)?;
        crate::fault_point::pause_at(crate::fault_point::PausePoint::Commit);
        if let Some(name) = name {
            self.set_tag(&parse_name(name)?, &descriptor)?;
        }
        Ok(descriptor)
    }

    /// Every tagged image, sorted by reference.
    pub fn images(&self) -> Result<Vec<StoredImage>, StoreError> {
        self.tags()?
            .into_iter()
            .map(|(name, d)| {
                let mut image = self.image_at(&d)?;
                image.descriptor = d;
                image.reference = Some(name);
                Ok(image)
            })
            .collect()
    }
}

fn parse_doc<T: serde::de::DeserializeOwned>(
    what: &'static str,
    digest: &Digest,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Json {
        what,
        name: digest.to_string(),
        source,
    })
}

/// The manifest of an index for this host's platform (linux + this architecture), or
/// the first one without a platform.
pub(super) fn pick_platform(index: &ImageIndex) -> Option<Descriptor> {
    Platform::host()
        .without_variant()
        .select(index)
        .or_else(|| index.manifests().iter().find(|m| m.platform().is_none()))
        .cloned()
}
