//! Content-addressed blobs: written through a temp file and renamed into place; every
//! read verifies digest and size. Also the compressed-digest <-> diff-ID records.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::{io_err, Store, StoreError};
use crate::fault_point::{PauseAfterFirstWrite, PausePoint};
use crate::image::digest::{finish_digest, parse_sha256, AsDigest, Digest, HashingWriter};
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
    pub fn commit(self, expected: Option<(&Digest, u64)>) -> Result<(Digest, u64), StoreError> {
        let (buf, digest, size) = self.out.finish();
        let tmp = buf.into_inner().map_err(|e| StoreError::Io {
            action: "writing",
            path: PathBuf::from("blob temp file"),
            source: e.into_error(),
        })?;
        if let Some((want, want_size)) = expected {
            if *want != digest || want_size != size {
                return Err(StoreError::Corrupt {
                    digest: want.to_string(),
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
    digest: Digest,
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
            let got = finish_digest(self.hasher.clone());
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
    pub(super) fn open_blob_file(
        &self,
        digest: &(impl AsDigest + ?Sized),
    ) -> Result<(File, PathBuf), StoreError> {
        let path = self.blob_path(digest)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(digest.digest_str().to_owned()),
            _ => StoreError::Io {
                action: "opening",
                path: path.clone(),
                source: e,
            },
        })?;
        Ok((file, path))
    }

    /// Path of the blob with `digest` (which must be a SHA-256 digest).
    pub fn blob_path(&self, digest: &(impl AsDigest + ?Sized)) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("blobs/sha256").join(store_hex(digest)?))
    }

    /// Whether the blob is present (not verified).
    pub fn has_blob(&self, digest: &(impl AsDigest + ?Sized)) -> bool {
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
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
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
        digest: &(impl AsDigest + ?Sized),
        size: u64,
    ) -> Result<(), StoreError> {
        let want = typed(digest)?;
        let mut w = self.blob_writer()?;
        io::copy(reader, &mut w).map_err(|e| StoreError::Io {
            action: "receiving blob",
            path: digest.digest_str().into(),
            source: e,
        })?;
        w.commit(Some((&want, size)))?;
        Ok(())
    }

    /// Opens a blob for streaming; the reader fails at its end if the content does not
    /// match `digest` (and `size`, when given).
    pub fn open_blob(
        &self,
        digest: &(impl AsDigest + ?Sized),
        size: Option<u64>,
    ) -> Result<VerifiedBlobReader, StoreError> {
        let (file, _) = self.open_blob_file(digest)?;
        Ok(VerifiedBlobReader {
            file,
            digest: typed(digest)?,
            expected_size: size,
            hasher: Sha256::new(),
            count: 0,
            checked: false,
        })
    }

    /// Reads a whole (small) blob, verified.
    pub fn read_blob(&self, digest: &(impl AsDigest + ?Sized)) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        self.open_blob(digest, None)?
            .read_to_end(&mut out)
            .map_err(|e| corrupt_or_io(digest, e))?;
        Ok(out)
    }

    /// Checks a stored blob's content against its digest.
    pub fn verify_blob(&self, digest: &(impl AsDigest + ?Sized)) -> Result<(), StoreError> {
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
        let _activity = crate::activity::begin(
            || format!("writing a layer of {} files", entries.len()),
            None,
        );
        let out = PauseAfterFirstWrite::new(self.blob_writer()?, PausePoint::LayerWrite);
        let (writer, digests) = write_layer(entries, out, opts)?;
        writer
            .into_inner()
            .commit(Some((&digests.digest, digests.size)))?;
        self.record_layer(&digests.digest, &digests.diff_id)?;
        Ok(digests)
    }

    /// Remembers that the compressed blob `digest` unpacks to `diff_id` (both ways).
    pub fn record_layer(
        &self,
        digest: &(impl AsDigest + ?Sized),
        diff_id: &(impl AsDigest + ?Sized),
    ) -> Result<(), StoreError> {
        let blob_hex = store_hex(digest)?;
        let diff_hex = store_hex(diff_id)?;
        self.write_atomic(
            &self.root.join("diffids/sha256").join(blob_hex),
            diff_id.digest_str().as_bytes(),
        )?;
        self.write_atomic(
            &self.root.join("layer-blobs/sha256").join(diff_hex),
            digest.digest_str().as_bytes(),
        )?;
        Ok(())
    }

    /// The diff-ID recorded for a compressed layer blob.
    pub fn recorded_diff_id(
        &self,
        digest: &(impl AsDigest + ?Sized),
    ) -> Result<Option<Digest>, StoreError> {
        self.read_record(self.root.join("diffids/sha256").join(store_hex(digest)?))
    }

    /// The compressed blob recorded for a diff-ID, if that blob is still stored (so a
    /// layer made before is never compressed twice).
    pub fn blob_of_diff_id(
        &self,
        diff_id: &(impl AsDigest + ?Sized),
    ) -> Result<Option<Digest>, StoreError> {
        let path = self
            .root
            .join("layer-blobs/sha256")
            .join(store_hex(diff_id)?);
        Ok(self.read_record(path)?.filter(|d| self.has_blob(d)))
    }

    /// A digest recorded in the file at `path`; a malformed record counts as none.
    fn read_record(&self, path: PathBuf) -> Result<Option<Digest>, StoreError> {
        match fs::read_to_string(&path) {
            Ok(s) => Ok(parse_sha256(s.trim())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io {
                action: "reading",
                path,
                source: e,
            }),
        }
    }

    /// Digests of every stored blob.
    pub fn list_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for item in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let item = item.map_err(io_err("listing", &dir))?;
            if let Some(name) = item.file_name().to_str() {
                if let Some(digest) = parse_sha256(&format!("sha256:{name}")) {
                    out.push(digest);
                }
            }
        }
        out.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        Ok(out)
    }
}

/// `digest` typed, when the store can hold it (SHA-256 only), else
/// [`StoreError::BadDigest`].
fn typed(digest: &(impl AsDigest + ?Sized)) -> Result<Digest, StoreError> {
    parse_sha256(digest.digest_str())
        .ok_or_else(|| StoreError::BadDigest(digest.digest_str().to_owned()))
}

/// The hex of a digest the store can hold (SHA-256 only), else [`StoreError::BadDigest`].
pub(crate) fn store_hex(digest: &(impl AsDigest + ?Sized)) -> Result<&str, StoreError> {
    digest
        .sha256_hex()
        .ok_or_else(|| StoreError::BadDigest(digest.digest_str().to_owned()))
}

pub(crate) fn corrupt_or_io(digest: &(impl AsDigest + ?Sized), e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::InvalidData {
        StoreError::Corrupt {
            digest: digest.digest_str().to_owned(),
            detail: e.to_string(),
        }
    } else {
        StoreError::Io {
            action: "reading blob",
            path: digest.digest_str().into(),
            source: e,
        }
    }
}
