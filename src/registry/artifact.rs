//! Small documents read and written whole, without the local store: signature
//! manifests and their payloads (see `crate::sign::attach`). Blobs go through the same
//! upload path as images (HEAD, then upload), manifests through the same PUT.

use oci_spec::image::{Descriptor, Digest, MediaType};

use super::blobs::{MemoryBlobs, NoProgress};
use super::client::Repository;
use super::error::{RegistryError, Result};
use super::manifest::MAX_MANIFEST_SIZE;
use super::pull::{fetch_manifest, pull_blob};
pub use super::push::put_manifest;
use super::push::{push_blob, PushOptions};

/// A manifest fetched whole.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Media type from `Content-Type`.
    pub media_type: String,
    /// The bytes as the registry sent them.
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
}

/// GETs the manifest `reference` (tag or digest); `None` when the registry has none.
pub fn get_manifest(repo: &Repository<'_>, reference: &str) -> Result<Option<FetchedManifest>> {
    match fetch_manifest(repo, reference, None) {
        Ok((media_type, bytes, digest)) => Ok(Some(FetchedManifest {
            media_type,
            bytes,
            digest,
        })),
        Err(RegistryError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// GETs a small blob (at most the manifest size limit) into memory, verified.
pub fn get_small_blob(repo: &Repository<'_>, blob: &Descriptor) -> Result<Vec<u8>> {
    let digest = blob.digest();
    if blob.size() > MAX_MANIFEST_SIZE {
        return Err(repo.bad(format!(
            "blob {digest} has {} bytes, more than the 4 MiB expected",
            blob.size()
        )));
    }
    let blobs = MemoryBlobs::default();
    pull_blob(repo, blob, &blobs, &NoProgress)?;
    Ok(blobs
        .get(digest)
        .expect("a pulled blob is in the memory store"))
}

/// Uploads `bytes` as a blob (unless the repository has it); returns its descriptor.
pub fn put_small_blob(
    repo: &Repository<'_>,
    media_type: &str,
    bytes: Vec<u8>,
) -> Result<Descriptor> {
    let size = bytes.len() as u64;
    let blobs = MemoryBlobs::default();
    let digest = blobs.insert(bytes);
    let descriptor = Descriptor::new(MediaType::from(media_type), size, digest);
    push_blob(
        repo,
        &descriptor,
        &blobs,
        &PushOptions::default(),
        &NoProgress,
    )?;
    Ok(descriptor)
}
