//! The local store as the client's [`BlobStore`]: its blob writer verifies digest and
//! size and renames into place, so a mismatch never lands.

use std::io::{self, Read};

use oci_spec::image::Digest;

use super::blobs::{BlobStore, Progress};
use super::client::Client;
use super::error::{RegistryError, Result};
use super::platform::Platform;
use super::pull::{pull, PulledImage};
use super::reference::Reference;
use crate::error_chain::ErrorChain;
use crate::store::{parse_name, Store, StoreError};

/// Pulls `reference` into `store` and names the image in the store with its full name:
/// `docker.io/library/debian:bookworm` for a tag, `docker.io/library/debian@sha256:…` for
/// a digest-only reference (so that `prune` keeps it, as podman keeps digest pulls).
/// Returns the pull and the name set. What `flense pull` does; builds call it for
/// missing base images.
pub fn pull_to_store(
    client: &Client,
    store: &Store,
    reference: &Reference,
    platform: &Platform,
    progress: &dyn Progress,
) -> Result<(PulledImage, Option<String>)> {
    let pulled = pull(client, reference, platform, store, progress)?;
    let tagging = |e: StoreError| RegistryError::io(format!("tagging {reference}"), to_io(e));
    let name = match (reference.tag(), reference.digest()) {
        (Some(tag), _) => parse_name(&format!("{}:{tag}", reference.name()))
            .map_err(|e| tagging(StoreError::Reference(e)))?,
        (None, Some(digest)) => format!("{}@{digest}", reference.name()),
        (None, None) => return Ok((pulled, None)),
    };
    let descriptor = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::from(pulled.media_type.as_str()),
        pulled.manifest.len() as u64,
        pulled.digest.clone(),
    );
    store.set_tag(&name, &descriptor).map_err(tagging)?;
    Ok((pulled, Some(name)))
}

fn to_io(e: StoreError) -> io::Error {
    match e {
        StoreError::Corrupt { .. } => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        StoreError::MissingBlob(_) => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        StoreError::Io { source, .. } if source.kind() != io::ErrorKind::Other => {
            io::Error::new(source.kind(), source.to_string())
        }
        e => io::Error::other(ErrorChain(&e).to_string()),
    }
}

impl BlobStore for Store {
    fn has_blob(&self, digest: &Digest) -> io::Result<bool> {
        Ok(Store::has_blob(self, digest.as_ref()))
    }

    fn open_blob(&self, digest: &Digest) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let size = std::fs::metadata(self.blob_path(digest.as_ref()).map_err(to_io)?)?.len();
        let reader = Store::open_blob(self, digest.as_ref(), Some(size)).map_err(to_io)?;
        Ok((Box::new(reader), size))
    }

    fn put_verified(&self, reader: &mut dyn Read, digest: &Digest, size: u64) -> io::Result<()> {
        self.put_blob_verified(reader, digest.as_ref(), size)
            .map_err(|e| match e {
                // Keep the network's error kind visible to the caller's retry decision.
                StoreError::Io { source, .. } => source,
                e => to_io(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::blobs::sha256_digest;

    #[test]
    fn store_refuses_mismatched_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = sha256_digest(b"layer bytes");
        let err =
            BlobStore::put_verified(&store, &mut &b"layer bytez"[..], &digest, 11).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(!BlobStore::has_blob(&store, &digest).unwrap());
        BlobStore::put_verified(&store, &mut &b"layer bytes"[..], &digest, 11).unwrap();
        let (mut r, size) = BlobStore::open_blob(&store, &digest).unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!((back.as_slice(), size), (&b"layer bytes"[..], 11));
    }
}
