//! The tar records of one entry: its metadata records (PAX xattrs, GNU long-name and
//! long-link records, the ustar header), encoded by the `tar` crate into a scratch
//! buffer, then its content and zero padding written directly. Keeping the metadata
//! bytes apart is what lets [`super::splice`] compare an entry with an earlier layer's
//! without reading the entry's file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::LayerError;
use crate::image::entry::{Content, EntryKind, LayerEntry};

/// Size of a tar block: every record and every content is padded to it.
const TAR_BLOCK: u64 = 512;

/// The zero bytes that end a tar archive (two empty blocks, as `tar::Builder::finish`).
pub(super) const END_OF_ARCHIVE: [u8; 1024] = [0; 1024];

/// Padding after `size` content bytes.
pub(super) fn padding(size: u64) -> u64 {
    (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK
}

/// sha256 of no content: what non-file entries hash to.
pub(super) fn empty_sha256() -> [u8; 32] {
    Sha256::digest([]).into()
}

/// One entry as written: its metadata records and the sha256 of its content (when
/// asked for).
pub(super) struct Written {
    /// The metadata records.
    pub meta: Vec<u8>,
    /// sha256 of the content bytes written.
    pub content_sha256: Option<[u8; 32]>,
}

/// Encodes entries' metadata records with one scratch `tar::Builder`.
pub(super) struct RecordWriter {
    scratch: tar::Builder<Vec<u8>>,
    epoch: u64,
}

impl RecordWriter {
    /// A writer clamping mtimes to `epoch`.
    pub fn new(epoch: u64) -> Self {
        Self {
            scratch: tar::Builder::new(Vec::new()),
            epoch,
        }
    }

    /// The metadata records of `entry` at tar path `name`, with a content of `size`
    /// bytes for a regular file.
    pub fn meta(
        &mut self,
        name: &Path,
        entry: &LayerEntry,
        size: u64,
    ) -> Result<Vec<u8>, LayerError> {
        let builder = &mut self.scratch;
        if !entry.xattrs.is_empty() {
            let mut xattrs: Vec<(String, &[u8])> = entry
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            xattrs.sort();
            builder.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), *v)))?;
        }
        let mut header = tar::Header::new_ustar();
        header.set_mode(entry.mode & 0o7777);
        header.set_uid(entry.uid.into());
        header.set_gid(entry.gid.into());
        header.set_mtime(entry.mtime.min(self.epoch));
        header.set_size(0);
        // `append_data` with no data writes the records and the header only (it pads
        // what it copied: nothing).
        let none = io::empty();
        match &entry.kind {
            EntryKind::File(_) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                builder.append_data(&mut header, name, none)?;
            }
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, name, none)?;
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, name, target)?;
            }
            EntryKind::Hardlink(target) => {
                header.set_entry_type(tar::EntryType::Link);
                builder.append_link(&mut header, name, target)?;
            }
            EntryKind::CharDevice(major, minor) | EntryKind::BlockDevice(major, minor) => {
                let kind = if matches!(entry.kind, EntryKind::CharDevice(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                header.set_entry_type(kind);
                header.set_device_major(*major)?;
                header.set_device_minor(*minor)?;
                builder.append_data(&mut header, name, none)?;
            }
            EntryKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                builder.append_data(&mut header, name, none)?;
            }
            EntryKind::Whiteout | EntryKind::Opaque => {
                header.set_entry_type(tar::EntryType::Regular);
                builder.append_data(&mut header, name, none)?;
            }
        }
        // A copy, leaving the scratch buffer's capacity for the next entry.
        let meta = builder.get_ref().clone();
        builder.get_mut().clear();
        Ok(meta)
    }

    /// Writes the records, content and padding of `entry` to `out`, reading a host
    /// file's content now; with `hash`, also returns the sha256 of the content.
    pub fn write<W: Write>(
        &mut self,
        out: &mut W,
        name: &Path,
        entry: &LayerEntry,
        hash: bool,
    ) -> Result<Written, LayerError> {
        let (meta, content_sha256) = match &entry.kind {
            EntryKind::File(Content::Bytes(bytes)) => {
                let meta = self.meta(name, entry, bytes.len() as u64)?;
                out.write_all(&meta)?;
                out.write_all(bytes)?;
                pad(out, bytes.len() as u64)?;
                (meta, hash.then(|| Sha256::digest(bytes).into()))
            }
            EntryKind::File(Content::File(host)) => {
                self.write_host_file(out, name, entry, host, hash)?
            }
            _ => {
                let meta = self.meta(name, entry, 0)?;
                out.write_all(&meta)?;
                (meta, hash.then(empty_sha256))
            }
        };
        Ok(Written {
            meta,
            content_sha256,
        })
    }

    fn write_host_file<W: Write>(
        &mut self,
        out: &mut W,
        name: &Path,
        entry: &LayerEntry,
        host: &Path,
        hash: bool,
    ) -> Result<(Vec<u8>, Option<[u8; 32]>), LayerError> {
        let read_err = |source| LayerError::Read {
            path: host.to_path_buf(),
            source,
        };
        let file = File::open(host).map_err(read_err)?;
        let len = file.metadata().map_err(read_err)?.len();
        let meta = self.meta(name, entry, len)?;
        out.write_all(&meta)?;
        let mut reader = ExactReader {
            inner: file,
            left: len,
            hasher: hash.then(Sha256::new),
        };
        copy_content(&mut reader, out).map_err(|e| match e {
            CopyError::Read(e) => read_err(e),
            CopyError::Write(e) => LayerError::Io(e),
        })?;
        pad(out, len)?;
        Ok((meta, reader.hasher.map(|h| h.finalize().into())))
    }
}

fn pad<W: Write>(out: &mut W, size: u64) -> io::Result<()> {
    out.write_all(&END_OF_ARCHIVE[..padding(size) as usize])
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `reader` to its end into `out`, telling read and write failures apart.
fn copy_content<W: Write>(reader: &mut ExactReader<File>, out: &mut W) -> Result<(), CopyError> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// Reads exactly `left` bytes at most and fails if the file grew (more bytes remain);
/// hashes what it reads when it has a hasher.
struct ExactReader<R> {
    inner: R,
    left: u64,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(io::Error::other("file grew while being read"));
            }
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being read",
            ));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}
