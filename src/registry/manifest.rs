//! Manifest media types and parsing of what a registry's manifests endpoint returns:
//! OCI manifests and indexes, Docker v2 schema 2 manifests and manifest lists.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The `Accept` header for manifest requests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
/// Largest manifest accepted (the distribution spec's limit).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// One image: config and layers.
    Image(Box<ImageManifest>),
    /// Several images, one per platform.
    Index(Box<ImageIndex>),
}

impl Manifest {
    /// Parses `bytes` whose media type is `media_type` (from `Content-Type`, or
    /// detected from the document when the header is missing or generic).
    /// Returns the effective media type with the document.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<(String, Self), String> {
        let header_type = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .filter(|c| is_manifest_type(c));
        let probe: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
        let doc_type = probe
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string);
        let media_type = match header_type.or(doc_type) {
            Some(t) => t,
            None if probe.get("manifests").is_some() => OCI_INDEX.to_string(),
            None if probe.get("layers").is_some() => OCI_MANIFEST.to_string(),
            None => {
                let schema = probe.get("schemaVersion").and_then(|v| v.as_u64());
                return Err(format!(
                    "unrecognised manifest (schemaVersion {schema:?}, no mediaType)"
                ));
            }
        };
        let manifest = match media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => Self::Image(Box::new(
                serde_json::from_value(probe).map_err(|e| format!("bad image manifest: {e}"))?,
            )),
            OCI_INDEX | DOCKER_MANIFEST_LIST => Self::Index(Box::new(
                serde_json::from_value(probe).map_err(|e| format!("bad image index: {e}"))?,
            )),
            other => return Err(format!("unsupported manifest media type {other:?}")),
        };
        Ok((media_type, manifest))
    }
}

/// Whether `media_type` is one of the manifest types this client handles.
pub fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
    )
}

/// Whether `media_type` is an index or manifest list.
pub fn is_index_type(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// The blobs an image manifest references: config first, then the layers.
pub fn image_blobs(manifest: &ImageManifest) -> Vec<Descriptor> {
    let mut blobs = vec![manifest.config().clone()];
    blobs.extend(manifest.layers().iter().cloned());
    blobs
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn detects_types() {
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":3,"digest":"{D1}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":5,"digest":"{D1}"}}]}}"#
        );
        let (t, m) = Manifest::parse(docker.as_bytes(), Some("text/plain")).unwrap();
        assert_eq!(t, DOCKER_MANIFEST);
        let Manifest::Image(m) = m else { panic!() };
        assert_eq!(image_blobs(&m).len(), 2);

        let oci = r#"{"schemaVersion":2,"manifests":[]}"#;
        let (t, _) = Manifest::parse(oci.as_bytes(), None).unwrap();
        assert_eq!(t, OCI_INDEX);

        let s1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(Manifest::parse(s1.as_bytes(), None).is_err());
        let weird = r#"{"schemaVersion":2,"mediaType":"application/x-weird"}"#;
        assert!(Manifest::parse(weird.as_bytes(), None)
            .unwrap_err()
            .contains("application/x-weird"));
        assert!(Manifest::parse(b"<html>", None)
            .unwrap_err()
            .contains("not JSON"));
    }
}
