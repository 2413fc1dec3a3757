//! What the client needs from its surroundings: a content-addressed blob store and a
//! progress reporter; and the verifying writer that guards the store's door.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Mutex;

use oci_spec::image::{Descriptor, Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256};

use crate::image::digest::digest_of;

/// A content-addressed blob store. `put_verified` must check digest and size itself
/// and make the blob visible atomically (temp file + rename), so a blob is either whole
/// and correct or absent.
pub trait BlobStore: Sync {
    /// Whether the store holds the blob.
    fn has_blob(&self, digest: &Digest) -> io::Result<bool>;
    /// Opens a blob for reading; returns the reader and the blob's size.
    fn open_blob(&self, digest: &Digest) -> io::Result<(Box<dyn Read + Send>, u64)>;
    /// Copies `reader` into the store if and only if it yields exactly `size` bytes
    /// with `digest`; a mismatch is an error of kind `InvalidData` and stores nothing.
    fn put_verified(&self, reader: &mut dyn Read, digest: &Digest, size: u64) -> io::Result<()>;
}

/// A [`BlobStore`] that also names images, so that a pull can be found by its name.
pub trait ImageStore: BlobStore {
    /// Gives the image whose manifest (or index) is `manifest` the full name `name`
    /// (`docker.io/library/debian:12`), taking it from the image that had it.
    fn tag_image(&self, name: &str, manifest: &Descriptor) -> io::Result<()>;
}

/// A [`BlobStore`] in memory, for small documents (such as a cache config) that travel
/// the same verified paths as layers.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: Mutex<HashMap<Digest, Vec<u8>>>,
}

impl MemoryBlobs {
    /// Holds `bytes`; returns their digest.
    pub fn insert(&self, bytes: Vec<u8>) -> Digest {
        let digest = digest_of(&bytes);
        self.lock().insert(digest.clone(), bytes);
        digest
    }

    /// The bytes of `digest`, if held.
    pub fn get(&self, digest: &Digest) -> Option<Vec<u8>> {
        self.lock().get(digest).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Vec<u8>>> {
        self.blobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BlobStore for MemoryBlobs {
    fn has_blob(&self, digest: &Digest) -> io::Result<bool> {
        Ok(self.lock().contains_key(digest))
    }

    fn open_blob(&self, digest: &Digest) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let bytes = self
            .get(digest)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no blob {digest}")))?;
        let size = bytes.len() as u64;
        Ok((Box::new(io::Cursor::new(bytes)), size))
    }

    fn put_verified(&self, reader: &mut dyn Read, digest: &Digest, size: u64) -> io::Result<()> {
        let mut writer = VerifyingWriter::new(Vec::new());
        io::copy(reader, &mut writer)?;
        let bytes = writer
            .finish(digest, size)
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))?;
        self.lock().insert(digest.clone(), bytes);
        Ok(())
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Pull: the store already had it.
    Cached,
    /// Pull: downloaded and verified.
    Downloaded,
    /// Push: the registry already had it.
    Exists,
    /// Push: mounted from another repository of the same registry.
    Mounted,
    /// Push: uploaded.
    Uploaded,
}

/// Receives progress events; called from several threads at once.
pub trait Progress: Sync {
    /// A blob transfer starts.
    fn blob_started(&self, _digest: &Digest, _size: u64) {}
    /// `bytes` more bytes of the blob were transferred.
    fn blob_advanced(&self, _digest: &Digest, _bytes: u64) {}
    /// A transfer restarts from `offset` after a failure.
    fn blob_restarted(&self, _digest: &Digest, _offset: u64) {}
    /// A blob is done.
    fn blob_finished(&self, _digest: &Digest, _outcome: BlobOutcome) {}
}

/// Ignores all progress.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Hashes and counts everything written through it.
pub struct VerifyingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> VerifyingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks the content against the expected digest and size; returns the inner writer
    /// only when both match, else a description of the mismatch.
    pub fn finish(self, expected: &Digest, size: u64) -> Result<W, String> {
        if self.written != size {
            return Err(format!(
                "blob {expected}: expected {size} bytes, received {}",
                self.written
            ));
        }
        let actual = hex::encode(self.hasher.finalize());
        if actual != expected.digest() {
            return Err(format!(
                "blob {expected}: content has digest sha256:{actual}"
            ));
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for VerifyingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether this client can verify the digest (only sha256 for now).
pub fn supported_digest(digest: &Digest) -> bool {
    *digest.algorithm() == DigestAlgorithm::Sha256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_digest_and_size() {
        let d = digest_of(b"hello");
        let mut w = VerifyingWriter::new(Vec::new());
        w.write_all(b"hello").unwrap();
        assert_eq!(w.finish(&d, 5).unwrap(), b"hello");
        let mut w = VerifyingWriter::new(Vec::new());
        w.write_all(b"hellO").unwrap();
        assert!(w.finish(&d, 5).unwrap_err().contains("content has digest"));
        let mut w = VerifyingWriter::new(Vec::new());
        w.write_all(b"hello!").unwrap();
        assert!(w.finish(&d, 5).unwrap_err().contains("expected 5 bytes"));
    }
}
