//! Content-addressed blobs: written through a temp file and renamed into place; every
//! read verifies digest and size. Also the compressed-digest <-> diff-ID records.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::{io_err, Store, StoreError};
use crate::image::digest::{sha256_hex, HashingWriter};
use crate::image::{write_layer, LayerDigests, LayerEntry, LayerOptions};

/// A blob being written into the store; [`BlobWriter::commit`] makes it visible.
pub struct BlobWriter {
    store: Store,
    out: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl BlobWriter {
    /// Finishes the blob: checks it against `expected` (digest, size) when given, then
    /// renames it into `blobs/sha256/`. Returns its digest and size. A mismatch deletes
    /// the temp file and nothing lands in the store.
    pub fn commit(self, expected: Option<(&str, u64)>) -> Result<(String, u64), StoreError> {
        let (buf, digest, size) = self.out.finish();
        let tmp = buf.into_inner().map_err(|e| StoreError::Io {
            action: "writing",
            path: PathBuf::from("blob temp file"),
            source: e.into_error(),
        })?;
        if let Some((want, want_size)) = expected {
            if want != digest || want_size != size {
                return Err(StoreError::Corrupt {
                    digest: want.to_owned(),
                    detail: format!(
                        "received {size} bytes with digest {digest}, expected {want_size} bytes"
                    ),
                });
            }
        }
        let path = self.store.blob_path(&digest)?;
        if !path.exists() {
            tmp.as_file()
                .sync_all()
                .map_err(io_err("syncing", tmp.path()))?;
            let _ = fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644));
            tmp.persist(&path).map_err(|e| StoreError::Io {
                action: "renaming into",
                path: path.clone(),
                source: e.error,
            })?;
        }
        Ok((digest, size))
    }
}

/// A reader of a stored blob that fails at the end when the bytes do not match the
/// digest or size.
pub struct VerifiedBlobReader {
    file: File,
    digest: String,
    expected_size: Option<u64>,
    hasher: Sha256,
    count: u64,
    checked: bool,
}

impl Read for VerifiedBlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            let got = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
            let size_ok = self.expected_size.is_none_or(|s| s == self.count);
            if got != self.digest || !size_ok {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} is corrupt: content hashes to {got} ({} bytes)",
                        self.digest, self.count
                    ),
                ));
            }
        }
        Ok(n)
    }
}

impl Store {
    /// Opens the file of the blob with `digest` (unverified), with its path; a missing
    /// blob is [`StoreError::MissingBlob`].
    pub(super) fn open_blob_file(&self, digest: &str) -> Result<(File, PathBuf), StoreError> {
        let path = self.blob_path(digest)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(digest.to_owned()),
            _ => StoreError::Io {
                action: "opening",
                path: path.clone(),
                source: e,
            },
        })?;
        Ok((file, path))
    }

    /// Path of the blob with `digest` (which must be `sha256:<64 hex>`).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let hex = sha256_hex(digest).ok_or_else(|| StoreError::BadDigest(digest.to_owned()))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Whether the blob is present (not verified).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Starts writing a blob whose digest is computed while writing.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        Ok(BlobWriter {
            store: self.clone(),
            out: HashingWriter::new(BufWriter::with_capacity(1 << 20, self.temp_file()?)),
        })
    }

    /// Stores `bytes` and returns their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let mut w = self.blob_writer()?;
        w.write_all(bytes)
            .map_err(io_err("writing", &self.tmp_dir()))?;
        Ok(w.commit(None)?.0)
    }

    /// Copies `reader` into the store, refusing it unless it has exactly `digest` and
    /// `size` (the registry client's entry point: a mismatch never lands).
    pub fn put_blob_verified(
        &self,
        reader: &mut dyn Read,
        digest: &str,
        size: u64,
    ) -> Result<(), StoreError> {
        sha256_hex(digest).ok_or_else(|| StoreError::BadDigest(digest.to_owned()))?;
        let mut w = self.blob_writer()?;
        io::copy(reader, &mut w).map_err(|e| StoreError::Io {
            action: "receiving blob",
            path: digest.into(),
            source: e,
        })?;
        w.commit(Some((digest, size)))?;
        Ok(())
    }

    /// Opens a blob for streaming; the reader fails at its end if the content does not
    /// match `digest` (and `size`, when given).
    pub fn open_blob(
        &self,
        digest: &str,
        size: Option<u64>,
    ) -> Result<VerifiedBlobReader, StoreError> {
        let (file, _) = self.open_blob_file(digest)?;
        Ok(VerifiedBlobReader {
            file,
            digest: digest.to_owned(),
            expected_size: size,
            hasher: Sha256::new(),
            count: 0,
            checked: false,
        })
    }

    /// Reads a whole (small) blob, verified.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        self.open_blob(digest, None)?
            .read_to_end(&mut out)
            .map_err(|e| corrupt_or_io(digest, e))?;
        Ok(out)
    }

    /// Checks a stored blob's content against its digest.
    pub fn verify_blob(&self, digest: &str) -> Result<(), StoreError> {
        io::copy(&mut self.open_blob(digest, None)?, &mut io::sink())
            .map_err(|e| corrupt_or_io(digest, e))?;
        Ok(())
    }

    /// Writes `entries` as a gzipped layer blob (reproducibly, see
    /// [`crate::image::layer`]) and records its diff-ID. Returns digests and sizes.
    pub fn write_layer(
        &self,
        entries: Vec<LayerEntry>,
        opts: &LayerOptions,
    ) -> Result<LayerDigests, StoreError> {
        let (writer, digests) = write_layer(entries, self.blob_writer()?, opts)?;
        writer.commit(Some((&digests.digest, digests.size)))?;
        self.record_layer(&digests.digest, &digests.diff_id)?;
        Ok(digests)
    }

    /// Remembers that the compressed blob `digest` unpacks to `diff_id` (both ways).
    pub fn record_layer(&self, digest: &str, diff_id: &str) -> Result<(), StoreError> {
        let blob_hex =
            sha256_hex(digest).ok_or_else(|| StoreError::BadDigest(digest.to_owned()))?;
        let diff_hex =
            sha256_hex(diff_id).ok_or_else(|| StoreError::BadDigest(diff_id.to_owned()))?;
        self.write_atomic(
            &self.root.join("diffids/sha256").join(blob_hex),
            diff_id.as_bytes(),
        )?;
        self.write_atomic(
            &self.root.join("layer-blobs/sha256").join(diff_hex),
            digest.as_bytes(),
        )?;
        Ok(())
    }

    /// The diff-ID recorded for a compressed layer blob.
    pub fn diff_id_of(&self, digest: &str) -> Result<Option<String>, StoreError> {
        let hex = sha256_hex(digest).ok_or_else(|| StoreError::BadDigest(digest.to_owned()))?;
        self.read_record(self.root.join("diffids/sha256").join(hex))
    }

    /// The compressed blob recorded for a diff-ID, if that blob is still stored (so a
    /// layer made before is never compressed twice).
    pub fn blob_of_diff_id(&self, diff_id: &str) -> Result<Option<String>, StoreError> {
        let hex = sha256_hex(diff_id).ok_or_else(|| StoreError::BadDigest(diff_id.to_owned()))?;
        Ok(self
            .read_record(self.root.join("layer-blobs/sha256").join(hex))?
            .filter(|d| self.has_blob(d)))
    }

    fn read_record(&self, path: PathBuf) -> Result<Option<String>, StoreError> {
        match fs::read_to_string(&path) {
            Ok(s) if sha256_hex(s.trim()).is_some() => Ok(Some(s.trim().to_owned())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io {
                action: "reading",
                path,
                source: e,
            }),
        }
    }

    /// Digests of every stored blob.
    pub fn list_blobs(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for item in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let item = item.map_err(io_err("listing", &dir))?;
            if let Some(name) = item.file_name().to_str() {
                let digest = format!("sha256:{name}");
                if sha256_hex(&digest).is_some() {
                    out.push(digest);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

pub(crate) fn corrupt_or_io(digest: &str, e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::InvalidData {
        StoreError::Corrupt {
            digest: digest.to_owned(),
            detail: e.to_string(),
        }
    } else {
        StoreError::Io {
            action: "reading blob",
            path: digest.into(),
            source: e,
        }
    }
}
