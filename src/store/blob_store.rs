//! The store as the registry client's [`BlobStore`] and [`ImageStore`]: its blob writer
//! verifies digest and size and renames into place, so a mismatch never lands.

use std::io::{self, Read};

use oci_spec::image::{Descriptor, Digest};

use super::{Store, StoreError};
use crate::registry::{BlobStore, ImageStore};

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

impl ImageStore for Store {
    fn tag_image(&self, name: &str, manifest: &Descriptor) -> io::Result<()> {
        self.set_tag(name, manifest).map_err(to_io)
    }
}

/// A store error as the `io::Error` the client expects, keeping the kind it decides
/// retries by.
fn to_io(e: StoreError) -> io::Error {
    match e {
        StoreError::Corrupt { .. } => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        StoreError::MissingBlob(_) => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        StoreError::Io { source, .. } if source.kind() != io::ErrorKind::Other => {
            io::Error::new(source.kind(), source.to_string())
        }
        e => io::Error::other(crate::error_chain::ErrorChain(&e).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::digest::digest_of;

    #[test]
    fn store_refuses_mismatched_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = digest_of(b"layer bytes");
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
