//! Signing pushed images and verifying them in the sigstore/cosign format that
//! containers/image (podman, skopeo, cri-o) checks with a `sigstoreSigned` policy:
//! [`keys`] reads and writes cosign's key files, [`payload`] builds the simple-signing
//! document, [`attach`] stores and fetches signatures in the registry, [`verify`]
//! checks them. Offline and key-based only: no Fulcio certificates, no Rekor log.

pub mod attach;
pub mod keys;
pub mod payload;
pub mod verify;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};

use crate::image::digest::Digest;
use crate::image::reference::Reference;
use crate::registry::Client;
use attach::{attach_signature, AttachError, StoredSignature};

/// The base64 ECDSA-P256-SHA256 signature (ASN.1 DER) of `payload`, as cosign's
/// signature annotation holds it.
pub fn sign_payload(key: &SigningKey, payload: &[u8]) -> String {
    let signature: Signature = key.sign(payload);
    BASE64.encode(signature.to_der().as_bytes())
}

/// Signs manifest `digest`, just pushed to `dest`, for `dest`'s identity
/// ([`payload::signing_identity`]) and stores the signature next to it. Returns the
/// signature manifest's tag.
pub fn sign_pushed_image(
    client: &Client,
    dest: &Reference,
    digest: &Digest,
    key: &SigningKey,
) -> Result<String, AttachError> {
    let payload = payload::simple_signing_payload(&payload::signing_identity(dest), digest);
    let signature = StoredSignature {
        signature: sign_payload(key, &payload),
        payload,
    };
    attach_signature(client, dest, digest, &signature)
}
