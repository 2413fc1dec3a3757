//! Checking an image's cosign-style signatures against a public key: the signature must
//! verify over the payload, the payload must name the image's manifest digest, and its
//! identity must name the image's repository (and tag, when both have one).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};

use super::attach::{fetch_signatures, signature_tag, AttachError, StoredSignature};
use super::payload::{identity_matches, parse_payload, Claims};
use crate::image::digest::Digest;
use crate::image::reference::Reference;
use crate::registry::artifact::get_manifest;
use crate::registry::{Client, RegistryError};

/// Why one signature does not vouch for the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The annotation is not base64 of a DER ECDSA signature.
    #[error("the signature annotation is not a base64 DER ECDSA signature")]
    Malformed,
    /// The signature does not verify with the given key.
    #[error("not signed by this key")]
    WrongKey,
    /// The signed payload is not a simple-signing document.
    #[error("signed payload is unusable: {0}")]
    BadPayload(String),
    /// The payload signs another manifest.
    #[error("payload digest mismatch: it signs {signed}")]
    DigestMismatch {
        /// The digest the payload names.
        signed: String,
    },
    /// The payload was signed for another repository or tag.
    #[error("identity mismatch: signed for {signed}")]
    IdentityMismatch {
        /// The docker reference the payload names.
        signed: String,
    },
}

/// Why an image is not verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading the image or its signatures failed.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// Resolving the image's digest failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The registry holds no signature for the image.
    #[error("{reference} ({digest}) is not signed: no signatures under {tag}")]
    Unsigned {
        /// The image as given.
        reference: String,
        /// Its manifest digest.
        digest: Digest,
        /// The signature tag looked for.
        tag: String,
    },
    /// Signatures exist, none valid for the key.
    #[error("{reference} ({digest}): no valid signature for this key ({reasons})")]
    NoValidSignature {
        /// The image as given.
        reference: String,
        /// Its manifest digest.
        digest: Digest,
        /// Each signature's rejection, `; `-separated.
        reasons: String,
    },
}

/// A successful verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The manifest digest the signatures cover.
    pub digest: Digest,
    /// The identities of the valid signatures.
    pub identities: Vec<String>,
}

/// Checks one stored signature for `digest` and `reference` with `key`; returns the
/// payload's claims when it vouches for the image.
pub fn check_signature(
    stored: &StoredSignature,
    key: &VerifyingKey,
    digest: &Digest,
    reference: &Reference,
) -> Result<Claims, Rejection> {
    let der = BASE64
        .decode(stored.signature.trim())
        .map_err(|_| Rejection::Malformed)?;
    let signature = Signature::from_der(&der).map_err(|_| Rejection::Malformed)?;
    key.verify(&stored.payload, &signature)
        .map_err(|_| Rejection::WrongKey)?;
    let claims = parse_payload(&stored.payload).map_err(|e| Rejection::BadPayload(e.reason))?;
    if claims.digest != digest.to_string() {
        return Err(Rejection::DigestMismatch {
            signed: claims.digest,
        });
    }
    if !identity_matches(&claims.identity, reference) {
        return Err(Rejection::IdentityMismatch {
            signed: claims.identity,
        });
    }
    Ok(claims)
}

/// The manifest digest `reference` names: its digest, or what its tag points to now
/// (the top-level manifest, an index for a multi-platform image).
pub fn resolve_digest(client: &Client, reference: &Reference) -> Result<Digest, RegistryError> {
    if let Some(digest) = reference.digest() {
        return Ok(digest.clone());
    }
    let target = client.settings().rewrite(reference);
    let repo = client.repository(&target, false)?;
    let wanted = target.manifest_reference();
    match get_manifest(&repo, &wanted)? {
        Some(found) => Ok(found.digest),
        None => Err(RegistryError::NotFound {
            registry: repo.registry().into(),
            repository: repo.name().into(),
            what: format!("manifest {wanted}"),
        }),
    }
}

/// Verifies that the registry holds a signature by `key` for the manifest `reference`
/// names (resolved once, so the result's digest is what was verified).
pub fn verify_image(
    client: &Client,
    reference: &Reference,
    key: &VerifyingKey,
) -> Result<Verified, VerifyError> {
    let digest = resolve_digest(client, reference)?;
    let signatures = fetch_signatures(client, reference, &digest)?;
    if signatures.is_empty() {
        return Err(VerifyError::Unsigned {
            reference: reference.to_string(),
            tag: signature_tag(&digest),
            digest,
        });
    }
    let mut identities = Vec::new();
    let mut reasons = Vec::new();
    for (n, stored) in signatures.iter().enumerate() {
        match check_signature(stored, key, &digest, reference) {
            Ok(claims) => identities.push(claims.identity),
            Err(why) => reasons.push(format!("signature {}: {why}", n + 1)),
        }
    }
    if identities.is_empty() {
        return Err(VerifyError::NoValidSignature {
            reference: reference.to_string(),
            digest,
            reasons: reasons.join("; "),
        });
    }
    Ok(Verified { digest, identities })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{keys, payload::simple_signing_payload, sign_payload};

    #[test]
    fn rejections_name_the_reason() {
        let key = keys::generate();
        let digest: Digest =
            "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
                .parse()
                .unwrap();
        let other: Digest =
            "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
                .parse()
                .unwrap();
        let reference = Reference::parse("127.0.0.1:5000/app:1").unwrap();
        let signed = |identity: &str, digest: &Digest| {
            let payload = simple_signing_payload(identity, digest);
            StoredSignature {
                signature: sign_payload(&key, &payload),
                payload,
            }
        };
        let good = signed("127.0.0.1:5000/app:1", &digest);
        let vk = key.verifying_key();
        check_signature(&good, vk, &digest, &reference).unwrap();
        let stranger = keys::generate();
        assert_eq!(
            check_signature(&good, stranger.verifying_key(), &digest, &reference),
            Err(Rejection::WrongKey)
        );
        assert!(matches!(
            check_signature(
                &signed("127.0.0.1:5000/app:1", &other),
                vk,
                &digest,
                &reference
            ),
            Err(Rejection::DigestMismatch { .. })
        ));
        assert!(matches!(
            check_signature(
                &signed("127.0.0.1:5000/evil:1", &digest),
                vk,
                &digest,
                &reference
            ),
            Err(Rejection::IdentityMismatch { .. })
        ));
        let mut tampered = good.clone();
        tampered.signature = "bm90IGEgc2lnbmF0dXJl".into();
        assert_eq!(
            check_signature(&tampered, vk, &digest, &reference),
            Err(Rejection::Malformed)
        );
    }
}
