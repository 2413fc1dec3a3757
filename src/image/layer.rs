//! The reproducible layer writer: `Vec<LayerEntry>` -> tar -> gzip, with the diff-ID
//! (sha256 of the tar), the digest (sha256 of the gzip) and both sizes computed in the
//! same streaming pass.
//!
//! Reproducibility rules:
//! - entries are sorted by their tar path, component by component, so parents come
//!   before children; a hard link never precedes the file it links to (when it would,
//!   the first path in sorted order carries the content and the others link to it);
//! - mtimes are clamped to the epoch ([`source_date_epoch`]: `$SOURCE_DATE_EPOCH`, or 0
//!   when unset), atime/ctime are never written, user/group names are empty;
//! - headers are ustar; only paths or link names longer than ustar allows use a GNU
//!   long-name record, and PAX records are written only for xattrs (sorted by name);
//! - gzip is [`super::gzip`]'s fixed-block stream at [`super::gzip::DEFAULT_LEVEL`] (4, by
//!   measurement): same bytes for any thread count.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use super::digest::{Digest, HashingWriter};
use super::entry::{EntryKind, LayerEntry};
use super::gzip::{ParallelGzipWriter, DEFAULT_LEVEL};

pub mod index;
mod records;
pub mod splice;

use records::{RecordWriter, END_OF_ARCHIVE};

/// Errors of the layer writer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An entry path is absolute, contains `..` or is empty.
    #[error("invalid layer path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Two entries would write the same tar path.
    #[error("duplicate layer path {0:?}")]
    Duplicate(PathBuf),
    /// A hard link points at a path that is not a regular file of the same layer.
    #[error("hard link {path:?} points at {target:?}, which is not a file of this layer")]
    HardlinkTarget {
        /// The link.
        path: PathBuf,
        /// Its target.
        target: PathBuf,
    },
    /// A host file named by [`Content::File`] could not be read or changed size.
    #[error("cannot read {path}")]
    Read {
        /// The host file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing the output failed.
    #[error("writing layer")]
    Io(#[from] io::Error),
    /// An entry copied from an earlier layer ([`splice`]) does not hold what its index
    /// says: the layer must be written afresh.
    #[error("earlier layer: {path:?}: {reason}")]
    Splice {
        /// The entry's path in the layer (or the earlier blob's, when it cannot be read).
        path: PathBuf,
        /// What differs.
        reason: String,
    },
}

/// How to write a layer.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// mtimes later than this (seconds since the epoch) are clamped to it.
    pub epoch: u64,
    /// gzip level, 0-9 (default [`super::gzip::DEFAULT_LEVEL`], chosen by measurement).
    pub level: u32,
    /// Compression threads (the output does not depend on this).
    pub threads: usize,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            epoch: source_date_epoch(),
            level: DEFAULT_LEVEL,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The reproducibility epoch: `$SOURCE_DATE_EPOCH` when set to a number, else 0
/// (1970-01-01T00:00:00Z), so that a tree gives the same layer on every machine.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Digests and sizes of a written layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// `sha256:` of the compressed blob (the manifest's layer digest).
    pub digest: Digest,
    /// Size of the compressed blob in bytes.
    pub size: u64,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Size of the uncompressed tar in bytes.
    pub tar_size: u64,
}

/// Writes `entries` as a gzipped tar layer into `out` and returns `out` with the digests.
pub fn write_layer<W: Write>(
    entries: Vec<LayerEntry>,
    out: W,
    opts: &LayerOptions,
) -> Result<(W, LayerDigests), LayerError> {
    let compressed = HashingWriter::new(out);
    let gzip = ParallelGzipWriter::new(compressed, opts.level, opts.threads)?;
    let tar = HashingWriter::new(gzip);
    let tar = write_tar(entries, tar, opts.epoch)?;
    let (gzip, diff_id, tar_size) = tar.finish();
    let compressed = gzip.finish()?;
    let (out, digest, size) = compressed.finish();
    Ok((
        out,
        LayerDigests {
            digest,
            size,
            diff_id,
            tar_size,
        },
    ))
}

/// Writes `entries` as an uncompressed, normalised tar stream into `out`.
pub fn write_tar<W: Write>(
    entries: Vec<LayerEntry>,
    mut out: W,
    epoch: u64,
) -> Result<W, LayerError> {
    let entries = order_entries(entries)?;
    let mut records = RecordWriter::new(epoch);
    for (name, entry) in &entries {
        records.write(&mut out, name, entry, false)?;
    }
    out.write_all(&END_OF_ARCHIVE)?;
    Ok(out)
}

/// Normalises a layer path: strips a leading `/` and `.` components; refuses `..`.
pub fn normalise_path(path: &Path) -> Result<PathBuf, LayerError> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                return Err(LayerError::InvalidPath {
                    path: path.into(),
                    reason: "contains `..`",
                })
            }
            Component::Prefix(_) => {
                return Err(LayerError::InvalidPath {
                    path: path.into(),
                    reason: "has a prefix",
                })
            }
        }
    }
    Ok(out)
}

/// The tar path of an entry (whiteouts and opaque markers get their `.wh.` names), or
/// `None` for the root directory, which is not written. Layer entries appear in the tar
/// sorted by this path, component by component.
pub fn tar_name(entry: &LayerEntry) -> Result<Option<PathBuf>, LayerError> {
    let path = normalise_path(&entry.path)?;
    Ok(match entry.kind {
        EntryKind::Whiteout => {
            let name = path.file_name().ok_or(LayerError::InvalidPath {
                path: entry.path.clone(),
                reason: "a whiteout needs a file name",
            })?;
            let mut wh = std::ffi::OsString::from(".wh.");
            wh.push(name);
            Some(path.with_file_name(wh))
        }
        EntryKind::Opaque => Some(path.join(".wh..wh..opq")),
        // The root directory itself is not written (its metadata is the runtime's).
        _ if path.as_os_str().is_empty() => None,
        _ => Some(path),
    })
}

/// What a tar path's OCI whiteout name marks (the inverse of [`tar_name`]): a whiteout
/// of the path it hides (`dir/.wh.name`), an opaque directory (`dir/.wh..wh..opq`), or
/// `None` for an ordinary entry.
pub fn whiteout_marker(path: &Path) -> Option<(PathBuf, EntryKind)> {
    let name = path.file_name().and_then(|n| n.to_str())?;
    if name == ".wh..wh..opq" {
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        return Some((dir, EntryKind::Opaque));
    }
    let hidden = name.strip_prefix(".wh.")?;
    Some((path.with_file_name(hidden), EntryKind::Whiteout))
}

/// A byte string whose order is `Path`'s component-by-component order for normalised
/// relative paths (`a` < `a/b` < `a-b`): each separator becomes a 0 byte, which sorts
/// below every byte a file name can hold.
pub fn path_order_key(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| if b == b'/' { 0 } else { b })
        .collect()
}

/// Sorts entries by tar path and rewrites hard links so that the content comes first.
fn order_entries(entries: Vec<LayerEntry>) -> Result<Vec<(PathBuf, LayerEntry)>, LayerError> {
    let mut named = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(name) = tar_name(&entry)? else {
            continue;
        };
        named.push((path_order_key(&name), name, entry));
    }
    // Sorted component-wise ("a" < "a/b" < "a-b") through byte keys: comparing paths
    // component by component is what made large layers slow to order.
    named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = named.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(LayerError::Duplicate(pair[1].1.clone()));
    }
    let mut ordered: Vec<(PathBuf, LayerEntry)> =
        named.into_iter().map(|(_, name, e)| (name, e)).collect();

    let has_links = ordered
        .iter()
        .any(|(_, e)| matches!(e.kind, EntryKind::Hardlink(_)));
    let index: HashMap<PathBuf, usize> = match has_links {
        false => HashMap::new(),
        true => ordered
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), i))
            .collect(),
    };
    // Group every hard link with the file it (transitively) names.
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, (name, entry)) in ordered.iter().enumerate() {
        if let EntryKind::Hardlink(target) = &entry.kind {
            let mut target_name = normalise_path(target)?;
            let mut seen = 0;
            let root = loop {
                let Some(&t) = index.get(&target_name) else {
                    return Err(LayerError::HardlinkTarget {
                        path: name.clone(),
                        target: target.clone(),
                    });
                };
                match &ordered[t].1.kind {
                    EntryKind::File(_) => break t,
                    EntryKind::Hardlink(next) if seen < ordered.len() => {
                        target_name = normalise_path(next)?;
                        seen += 1;
                    }
                    _ => {
                        return Err(LayerError::HardlinkTarget {
                            path: name.clone(),
                            target: target.clone(),
                        })
                    }
                }
            };
            groups.entry(root).or_default().push(i);
        }
    }
    for (file, links) in groups {
        let first = *links.iter().min().expect("non-empty group").min(&file);
        if first != file {
            // The earliest path in tar order becomes the file; the others link to it.
            let content = ordered[file].1.clone();
            ordered[first].1.kind = content.kind;
            ordered[first].1.mode = content.mode;
            ordered[first].1.uid = content.uid;
            ordered[first].1.gid = content.gid;
            ordered[first].1.mtime = content.mtime;
            ordered[first].1.xattrs = content.xattrs;
            ordered[file].1.kind = EntryKind::Hardlink(ordered[first].0.clone());
        }
        for &link in &links {
            if link != first {
                ordered[link].1.kind = EntryKind::Hardlink(ordered[first].0.clone());
            }
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests;
