//! Sigstore's "simple signing" payload: the JSON document a cosign signature signs,
//! naming the image (the manifest digest) and the identity it was signed for (a docker
//! reference). containers/image accepts exactly this shape for `sigstoreSigned`.

use serde::Deserialize;

use crate::image::digest::Digest;
use crate::image::reference::Reference;

/// The `critical.type` every cosign payload carries.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// Why a payload is not a usable simple-signing document.
#[derive(Debug, thiserror::Error)]
#[error("not a simple-signing payload: {reason}")]
pub struct PayloadError {
    /// What is wrong with it.
    pub reason: String,
}

/// What a payload claims: the manifest digest and the docker reference it was signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `critical.image.docker-manifest-digest`.
    pub digest: String,
    /// `critical.identity.docker-reference`.
    pub identity: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    critical: Critical,
    #[allow(dead_code)]
    optional: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The identity to sign a push to `dest` for: its full name with the tag
/// (`registry/repo:tag`), which containers/image's default `matchRepoDigestOrExact`
/// requires for tagged references; just the name when `dest` has no tag.
pub fn signing_identity(dest: &Reference) -> String {
    match dest.tag() {
        Some(tag) => format!("{}:{tag}", dest.name()),
        None => dest.name(),
    }
}

/// The payload for `digest` signed for `identity`, in the field order cosign writes.
pub fn simple_signing_payload(identity: &str, digest: &Digest) -> Vec<u8> {
    let payload = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": SIGNATURE_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&payload).expect("a JSON value serialises")
}

/// Parses a payload (after its signature was checked) into its claims.
pub fn parse_payload(bytes: &[u8]) -> Result<Claims, PayloadError> {
    let payload: Payload = serde_json::from_slice(bytes).map_err(|e| PayloadError {
        reason: e.to_string(),
    })?;
    if payload.critical.kind != SIGNATURE_TYPE {
        return Err(PayloadError {
            reason: format!("critical.type is {:?}", payload.critical.kind),
        });
    }
    Ok(Claims {
        digest: payload.critical.image.docker_manifest_digest,
        identity: payload.critical.identity.docker_reference,
    })
}

/// Whether a signature for `identity` covers `reference`: the same repository
/// (normalised, so `debian` is `docker.io/library/debian`), and the same tag when both
/// name one. cosign signs the bare repository name, containers/image the tagged one;
/// both are accepted.
pub fn identity_matches(identity: &str, reference: &Reference) -> bool {
    let without_digest = identity.split('@').next().unwrap_or(identity);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match without_digest[last_slash..].rfind(':') {
        Some(i) => (
            &without_digest[..last_slash + i],
            Some(&without_digest[last_slash + i + 1..]),
        ),
        None => (without_digest, None),
    };
    let Ok(signed) = Reference::parse(name) else {
        return false;
    };
    if signed.name() != reference.name() {
        return false;
    }
    match (tag, reference.tag()) {
        (Some(signed_tag), Some(wanted)) => signed_tag == wanted,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn payload_has_cosign_shape_and_parses_back() {
        let digest: Digest = DIGEST.parse().unwrap();
        let bytes = simple_signing_payload("127.0.0.1:5000/app:1", &digest);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/app:1"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        let claims = parse_payload(&bytes).unwrap();
        assert_eq!(claims.digest, DIGEST);
        assert_eq!(claims.identity, "127.0.0.1:5000/app:1");
    }

    #[test]
    fn refuses_other_payloads() {
        let other = br#"{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"d"},"type":"atomic container signature"},"optional":null}"#;
        assert!(parse_payload(other).is_err());
        assert!(parse_payload(b"{}").is_err());
        let extra = br#"{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"d"},"type":"cosign container image signature","more":1},"optional":null}"#;
        assert!(parse_payload(extra).is_err());
    }

    #[test]
    fn identities_match_by_repository_and_tag() {
        let tagged = Reference::parse("127.0.0.1:5000/app:1").unwrap();
        assert_eq!(signing_identity(&tagged), "127.0.0.1:5000/app:1");
        assert!(identity_matches("127.0.0.1:5000/app:1", &tagged));
        assert!(identity_matches("127.0.0.1:5000/app", &tagged));
        assert!(!identity_matches("127.0.0.1:5000/app:2", &tagged));
        assert!(!identity_matches("127.0.0.1:5000/other:1", &tagged));
        assert!(!identity_matches("127.0.0.1:5001/app:1", &tagged));
        let hub = Reference::parse("debian:bookworm").unwrap();
        assert!(identity_matches("docker.io/library/debian:bookworm", &hub));
        assert!(!identity_matches("not a reference", &hub));
    }
}
