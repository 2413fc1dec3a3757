//! Signatures stored the way cosign stores them (containers/image calls these "sigstore
//! attachments"): an OCI image manifest tagged `sha256-<hex>.sig` in the image's
//! repository, one layer per signature whose blob is the simple-signing payload and
//! whose annotation `dev.cosignproject.cosign/signature` holds the base64 ECDSA
//! signature. Adding a signature appends a layer and keeps the others.

use oci_spec::image::{Descriptor, Digest};

use crate::image::reference::Reference;
use crate::registry::artifact::{get_manifest, get_small_blob, put_manifest, put_small_blob};
use crate::registry::manifest::OCI_MANIFEST;
use crate::registry::{Client, RegistryError, Repository};

/// Media type of a signature layer (the simple-signing payload).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Media type of the signature manifest's config (an OCI image config).
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Why signatures could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The existing signature manifest is not one this code can extend or read.
    #[error("{reference}: signature manifest {tag}: {reason}")]
    BadSignatureManifest {
        /// The image the signatures belong to.
        reference: String,
        /// The `sha256-<hex>.sig` tag.
        tag: String,
        /// What is wrong.
        reason: String,
    },
}

/// One stored signature: the payload it signs and the base64 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSignature {
    /// The simple-signing payload bytes.
    pub payload: Vec<u8>,
    /// The annotation's value: base64 of the DER ECDSA signature.
    pub signature: String,
}

/// The tag cosign stores the signatures of manifest `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.digest())
}

/// The signatures stored for manifest `digest` in the repository of `reference`
/// (rewritten per the client's settings); empty when there are none.
pub fn fetch_signatures(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
) -> Result<Vec<StoredSignature>, AttachError> {
    let target = client.settings().rewrite(reference);
    let repo = client.repository(&target, false)?;
    let tag = signature_tag(digest);
    let Some(fetched) = get_manifest(&repo, &tag)? else {
        return Ok(Vec::new());
    };
    let bad = |reason: String| AttachError::BadSignatureManifest {
        reference: reference.to_string(),
        tag: tag.clone(),
        reason,
    };
    let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(&fetched.bytes)
        .map_err(|e| bad(format!("not an OCI image manifest: {e}")))?;
    let mut signatures = Vec::new();
    for layer in manifest.layers() {
        let signature = layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION));
        let (Some(signature), true) = (
            signature,
            layer.media_type().to_string() == SIMPLE_SIGNING_MEDIA_TYPE,
        ) else {
            continue;
        };
        signatures.push(StoredSignature {
            payload: get_small_blob(&repo, layer)?,
            signature: signature.clone(),
        });
    }
    Ok(signatures)
}

/// Adds `signature` to the signatures of manifest `digest` in the repository of `dest`
/// (rewritten per the client's settings), keeping those already there; a signature
/// already stored is not added twice. Returns the signature manifest's tag.
pub fn attach_signature(
    client: &Client,
    dest: &Reference,
    digest: &Digest,
    signature: &StoredSignature,
) -> Result<String, AttachError> {
    let target = client.settings().rewrite(dest);
    let repo = client.repository(&target, true)?;
    let tag = signature_tag(digest);
    let bad = |reason: String| AttachError::BadSignatureManifest {
        reference: dest.to_string(),
        tag: tag.clone(),
        reason,
    };
    let (mut manifest, mut config) = match get_manifest(&repo, &tag)? {
        Some(existing) => {
            let manifest: serde_json::Value = serde_json::from_slice(&existing.bytes)
                .map_err(|e| bad(format!("not JSON: {e}")))?;
            let config = existing_config(&repo, &manifest, &bad)?;
            (manifest, config)
        }
        None => (empty_manifest(), empty_config()),
    };
    let layer = put_small_blob(&repo, SIMPLE_SIGNING_MEDIA_TYPE, signature.payload.clone())?;
    let layers = manifest
        .get_mut("layers")
        .and_then(|l| l.as_array_mut())
        .ok_or_else(|| bad("no layers array".into()))?;
    let already = layers.iter().any(|l| {
        l.get("digest").and_then(|d| d.as_str()) == Some(layer.digest().as_ref())
            && l.pointer(&format!(
                "/annotations/{}",
                SIGNATURE_ANNOTATION.replace('/', "~1")
            ))
            .and_then(|s| s.as_str())
                == Some(signature.signature.as_str())
    });
    if already {
        return Ok(tag);
    }
    layers.push(serde_json::json!({
        "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
        "size": layer.size(),
        "digest": layer.digest().to_string(),
        "annotations": {SIGNATURE_ANNOTATION: signature.signature},
    }));
    config["rootfs"]["type"] = "layers".into();
    match config["rootfs"]["diff_ids"].as_array_mut() {
        Some(ids) => ids.push(layer.digest().to_string().into()),
        None => config["rootfs"]["diff_ids"] = serde_json::json!([layer.digest().to_string()]),
    }
    let config_bytes = serde_json::to_vec(&config).expect("JSON serialises");
    let config = put_small_blob(&repo, CONFIG_MEDIA_TYPE, config_bytes)?;
    manifest["config"] = descriptor_json(&config);
    let bytes = serde_json::to_vec(&manifest).expect("JSON serialises");
    put_manifest(&repo, &tag, OCI_MANIFEST, &bytes)?;
    Ok(tag)
}

/// The config of an existing signature manifest, to extend its `diff_ids`.
fn existing_config(
    repo: &Repository<'_>,
    manifest: &serde_json::Value,
    bad: &dyn Fn(String) -> AttachError,
) -> Result<serde_json::Value, AttachError> {
    let descriptor: Descriptor = manifest
        .get("config")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .ok_or_else(|| bad("no valid config descriptor".into()))?;
    let bytes = get_small_blob(repo, &descriptor)?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("config is not JSON: {e}")))
}

fn empty_manifest() -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": null,
        "layers": [],
    })
}

/// The config cosign (through go-containerregistry) gives a signature image.
fn empty_config() -> serde_json::Value {
    serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    })
}

fn descriptor_json(descriptor: &Descriptor) -> serde_json::Value {
    serde_json::json!({
        "mediaType": descriptor.media_type().to_string(),
        "size": descriptor.size(),
        "digest": descriptor.digest().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tag_is_cosigns() {
        let digest: Digest =
            "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
                .parse()
                .unwrap();
        assert_eq!(
            signature_tag(&digest),
            "sha256-2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae.sig"
        );
    }
}
