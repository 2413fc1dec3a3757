//! Image config, manifest and index documents, built with `oci-spec` types and encoded
//! deterministically (sorted object keys, no whitespace).

use oci_spec::image::{
    Arch, Config, Descriptor, History, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageManifest, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use serde::Serialize;

use super::digest::digest_of;
use super::layer::LayerDigests;

/// Media type of a Docker v2s2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of a Docker gzipped layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Media type of a Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// BuildKit's default `PATH`: the only `Env` of a scratch or imported image, and what a
/// step gets when its image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors building or parsing image documents.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// oci-spec refused a value.
    #[error("invalid image document")]
    Spec(#[from] oci_spec::OciSpecError),
    /// JSON encoding or decoding failed.
    #[error("invalid image JSON")]
    Json(#[from] serde_json::Error),
    /// A digest string is malformed.
    #[error("invalid digest {0:?}")]
    Digest(String),
}

/// Which manifest flavour to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// OCI image manifest and media types (the default).
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2.
    Docker,
}

impl ImageFormat {
    /// Media type of the manifest.
    pub fn manifest_media_type(self) -> MediaType {
        match self {
            ImageFormat::Oci => MediaType::ImageManifest,
            ImageFormat::Docker => MediaType::Other(DOCKER_MANIFEST.into()),
        }
    }

    /// Media type of the config blob.
    pub fn config_media_type(self) -> MediaType {
        match self {
            ImageFormat::Oci => MediaType::ImageConfig,
            ImageFormat::Docker => MediaType::Other(DOCKER_CONFIG.into()),
        }
    }

    /// Media type of a gzipped layer.
    pub fn layer_media_type(self) -> MediaType {
        match self {
            ImageFormat::Oci => MediaType::ImageLayerGzip,
            ImageFormat::Docker => MediaType::Other(DOCKER_LAYER_GZIP.into()),
        }
    }
}

/// RFC 3339 UTC time for `epoch` seconds (e.g. `1970-01-01T00:00:00Z`).
pub fn rfc3339(epoch: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch.min(253_402_300_799) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Encodes `value` as compact JSON with object keys sorted, so equal documents always
/// have equal digests (oci-spec keeps labels and annotations in `HashMap`s).
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, OciError> {
    let value = serde_json::to_value(value)?;
    Ok(serde_json::to_vec(&value)?)
}

/// The descriptor of `bytes` with `media_type`.
pub fn descriptor_of(media_type: MediaType, bytes: &[u8]) -> Result<Descriptor, OciError> {
    Ok(Descriptor::new(
        media_type,
        bytes.len() as u64,
        digest_of(bytes),
    ))
}

/// A descriptor for a digest given as text (a build cache record's) and size.
pub fn descriptor(media_type: MediaType, digest: &str, size: u64) -> Result<Descriptor, OciError> {
    let digest: oci_spec::image::Digest = digest
        .parse()
        .map_err(|_| OciError::Digest(digest.into()))?;
    Ok(Descriptor::new(media_type, size, digest))
}

/// One layer of an image being assembled, with the history line describing it.
#[derive(Debug, Clone)]
pub struct ImageLayer {
    /// Digests and sizes from the layer writer (or from a pulled manifest + config).
    pub digests: LayerDigests,
    /// `created_by` text for the history entry.
    pub created_by: String,
}

/// A config for `layers` on linux/amd64-or-host, `created` and history at `epoch`.
pub fn new_config(
    layers: &[ImageLayer],
    runtime: Option<Config>,
    epoch: u64,
) -> Result<ImageConfiguration, OciError> {
    let created = rfc3339(epoch);
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| l.digests.diff_id.to_string())
                .collect::<Vec<_>>(),
        )
        .build()?;
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(l.created_by.clone())
                .build()
        })
        .collect::<Result<Vec<History>, _>>()?;
    let mut builder = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::default())
        .os(Os::Linux)
        .rootfs(rootfs)
        .history(history);
    if let Some(runtime) = runtime {
        builder = builder.config(runtime);
    }
    Ok(builder.build()?)
}

/// A manifest for `config_bytes` and `layers` in `format`.
pub fn new_manifest(
    format: ImageFormat,
    config_bytes: &[u8],
    layers: &[LayerDigests],
) -> Result<ImageManifest, OciError> {
    let config = descriptor_of(format.config_media_type(), config_bytes)?;
    let layers: Vec<Descriptor> = layers
        .iter()
        .map(|l| Descriptor::new(format.layer_media_type(), l.size, l.digest.clone()))
        .collect();
    Ok(ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(format.manifest_media_type())
        .config(config)
        .layers(layers)
        .build()?)
}

/// Re-types a manifest (and its config and layer descriptors) into `format`, for
/// `save --format docker-archive` and `--format docker`. Only media types change;
/// the blobs stay the same.
pub fn convert_manifest(manifest: &ImageManifest, format: ImageFormat) -> ImageManifest {
    let mut out = manifest.clone();
    out.set_media_type(Some(format.manifest_media_type()));
    let mut config = manifest.config().clone();
    config.set_media_type(format.config_media_type());
    out.set_config(config);
    for layer in out.layers_mut() {
        let gz = matches!(layer.media_type(), MediaType::ImageLayerGzip)
            || layer.media_type().to_string() == DOCKER_LAYER_GZIP;
        if gz {
            layer.set_media_type(format.layer_media_type());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> ImageLayer {
        ImageLayer {
            digests: LayerDigests {
                digest: digest_of(b"gz"),
                size: 2,
                diff_id: digest_of(b"tar"),
                tar_size: 3,
            },
            created_by: "flense import".into(),
        }
    }

    #[test]
    fn config_and_manifest_are_deterministic_and_typed() {
        let a = canonical_json(&new_config(&[layer()], None, 0).unwrap()).unwrap();
        let b = canonical_json(&new_config(&[layer()], None, 0).unwrap()).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a.clone()).unwrap();
        assert!(
            text.contains("\"created\":\"1970-01-01T00:00:00Z\""),
            "{text}"
        );
        let oci = new_manifest(ImageFormat::Oci, &a, &[layer().digests]).unwrap();
        assert_eq!(oci.layers()[0].media_type(), &MediaType::ImageLayerGzip);
        let docker = canonical_json(&convert_manifest(&oci, ImageFormat::Docker)).unwrap();
        let docker = String::from_utf8(docker).unwrap();
        assert!(
            docker.contains(DOCKER_MANIFEST)
                && docker.contains(DOCKER_LAYER_GZIP)
                && docker.contains(DOCKER_CONFIG)
        );
    }

    #[test]
    fn rfc3339_formats_epochs() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
