//! Turning a directory tree or a tar stream into [`LayerEntry`] lists for the layer
//! writer (used by `flense import`, rootfs tarballs and captured upper dirs).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::entry::{Content, EntryKind, LayerEntry};
use super::layer::{normalise_path, whiteout_marker, LayerError};

/// Errors while reading a tree or a tar stream into entries.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A file of the tree could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The tar stream is malformed.
    #[error("malformed tar stream{}", entry.as_ref().map(|e| format!(" at entry {e:?}")).unwrap_or_default())]
    Tar {
        /// The entry being read, when known.
        entry: Option<PathBuf>,
        /// The cause.
        source: io::Error,
    },
    /// An entry has a path the layer writer refuses.
    #[error(transparent)]
    Path(#[from] LayerError),
}

/// How to read a directory tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeOptions {
    /// Treat the tree as an overlayfs upper dir: char devices 0/0 become whiteouts and
    /// directories with `trusted.overlay.opaque` or `user.overlay.opaque` = `y` also
    /// get an opaque marker.
    pub overlay_upper: bool,
}

/// Lists every file below `root` (not `root` itself) as layer entries, with the
/// ownership, modes and mtimes found on disk. Files keep pointing at the tree
/// ([`Content::File`]), so the tree must stay unchanged until the layer is written.
pub fn entries_from_dir(root: &Path, opts: TreeOptions) -> Result<Vec<LayerEntry>, TreeError> {
    let mut entries = Vec::new();
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for item in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
    {
        let item = item.map_err(|e| TreeError::Read {
            path: e.path().unwrap_or(root).to_path_buf(),
            source: e.into(),
        })?;
        let host = item.path();
        let read_err = |source| TreeError::Read {
            path: host.to_path_buf(),
            source,
        };
        let meta = fs::symlink_metadata(host).map_err(read_err)?;
        let rel = host
            .strip_prefix(root)
            .expect("walkdir stays below root")
            .to_path_buf();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            if opts.overlay_upper && is_opaque(host) {
                entries.push(LayerEntry {
                    kind: EntryKind::Opaque,
                    ..base_entry(rel.clone(), &meta)
                });
            }
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink(fs::read_link(host).map_err(read_err)?)
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = inodes.get(&(meta.dev(), meta.ino())) {
                    entries.push(LayerEntry {
                        kind: EntryKind::Hardlink(first.clone()),
                        ..base_entry(rel, &meta)
                    });
                    continue;
                }
                inodes.insert((meta.dev(), meta.ino()), rel.clone());
            }
            EntryKind::File(Content::File(host.to_path_buf()))
        } else if ft.is_char_device() {
            let (major, minor) = device_numbers(meta.rdev());
            if opts.overlay_upper && major == 0 && minor == 0 {
                EntryKind::Whiteout
            } else {
                EntryKind::CharDevice(major, minor)
            }
        } else if ft.is_block_device() {
            let (major, minor) = device_numbers(meta.rdev());
            EntryKind::BlockDevice(major, minor)
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else {
            tracing::warn!("skipping socket {}", host.display());
            continue;
        };
        let mut entry = LayerEntry {
            kind,
            ..base_entry(rel, &meta)
        };
        if !matches!(entry.kind, EntryKind::Whiteout) {
            entry.xattrs = read_xattrs(host);
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn base_entry(path: PathBuf, meta: &fs::Metadata) -> LayerEntry {
    LayerEntry {
        path,
        kind: EntryKind::Dir,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime().max(0) as u64,
        xattrs: Vec::new(),
    }
}

fn device_numbers(rdev: u64) -> (u32, u32) {
    (
        nix::sys::stat::major(rdev) as u32,
        nix::sys::stat::minor(rdev) as u32,
    )
}

fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| matches!(xattr::get(dir, name), Ok(Some(v)) if v == b"y"))
}

/// Extended attributes worth keeping in a layer (overlay's own are internal).
fn read_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = names
        .filter_map(|n| n.into_string().ok())
        .filter(|n| !n.contains(".overlay."))
        .filter(|n| n.starts_with("security.") || n.starts_with("user."))
        .filter_map(|n| xattr::get(path, &n).ok().flatten().map(|v| (n, v)))
        .collect();
    out.sort();
    out
}

/// Reads a tar stream into layer entries. Regular files are copied into `spool` (a
/// directory the caller owns and removes after writing the layer), so the stream is
/// read once and never held in memory. `.wh.` names become whiteout/opaque entries;
/// later entries for the same path replace earlier ones, as when extracting.
pub fn entries_from_tar<R: Read>(stream: R, spool: &Path) -> Result<Vec<LayerEntry>, TreeError> {
    let mut archive = tar::Archive::new(stream);
    let mut entries: Vec<LayerEntry> = Vec::new();
    let mut by_path: HashMap<PathBuf, usize> = HashMap::new();
    let tar_err = |entry: Option<PathBuf>| move |source| TreeError::Tar { entry, source };
    for (n, item) in archive.entries().map_err(tar_err(None))?.enumerate() {
        let mut item = item.map_err(tar_err(None))?;
        let raw_path = item.path().map_err(tar_err(None))?.into_owned();
        let header = item.header().clone();
        let at = tar_err(Some(raw_path.clone()));
        let path = normalise_path(&raw_path)?;
        let mut xattrs = Vec::new();
        if let Some(pax) = item.pax_extensions().map_err(at.clone())? {
            for ext in pax {
                let ext = ext.map_err(at.clone())?;
                if let Ok(key) = ext.key() {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        let (path, kind) = if let Some(marked) = whiteout_marker(&path) {
            marked
        } else {
            let kind = match header.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let spooled = spool.join(n.to_string());
                    let mut out = fs::File::create(&spooled).map_err(|source| TreeError::Read {
                        path: spooled.clone(),
                        source,
                    })?;
                    io::copy(&mut item, &mut out).map_err(at.clone())?;
                    EntryKind::File(Content::File(spooled))
                }
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => {
                    EntryKind::Symlink(link_name(&item).map_err(at.clone())?)
                }
                tar::EntryType::Link => {
                    EntryKind::Hardlink(normalise_path(&link_name(&item).map_err(at.clone())?)?)
                }
                tar::EntryType::Char | tar::EntryType::Block => {
                    let major = header.device_major().map_err(at.clone())?.unwrap_or(0);
                    let minor = header.device_minor().map_err(at.clone())?.unwrap_or(0);
                    if header.entry_type() == tar::EntryType::Char {
                        EntryKind::CharDevice(major, minor)
                    } else {
                        EntryKind::BlockDevice(major, minor)
                    }
                }
                tar::EntryType::Fifo => EntryKind::Fifo,
                other => {
                    tracing::warn!(
                        "skipping tar entry {} of type {other:?}",
                        raw_path.display()
                    );
                    continue;
                }
            };
            (path, kind)
        };
        if path.as_os_str().is_empty() && !matches!(kind, EntryKind::Opaque) {
            continue; // the root directory itself
        }
        let entry = LayerEntry {
            path: path.clone(),
            kind,
            mode: header.mode().map_err(at.clone())? & 0o7777,
            uid: header.uid().map_err(at.clone())? as u32,
            gid: header.gid().map_err(at.clone())? as u32,
            mtime: header.mtime().map_err(at)?,
            xattrs,
        };
        let key = match entry.kind {
            EntryKind::Whiteout => path.with_file_name(format!(
                ".wh.{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            )),
            EntryKind::Opaque => path.join(".wh..wh..opq"),
            _ => path,
        };
        match by_path.get(&key) {
            Some(&i) => entries[i] = entry,
            None => {
                by_path.insert(key, entries.len());
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

fn link_name<R: Read>(item: &tar::Entry<R>) -> io::Result<PathBuf> {
    item.link_name()?
        .map(|l| l.into_owned())
        .ok_or_else(|| io::Error::other("link entry without a target"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layer::write_tar;

    #[test]
    fn a_directory_round_trips_through_entries_and_tar() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/alias")).unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        let entries = entries_from_dir(root, TreeOptions::default()).unwrap();
        let tar = write_tar(entries, Vec::new(), 0).unwrap();

        let spool = tempfile::tempdir().unwrap();
        let back = entries_from_tar(&tar[..], spool.path()).unwrap();
        let mut kinds: Vec<(String, String)> = back
            .iter()
            .map(|e| {
                let kind = match &e.kind {
                    EntryKind::File(_) => "file".to_string(),
                    EntryKind::Hardlink(t) => format!("link {}", t.display()),
                    EntryKind::Symlink(t) => format!("symlink {}", t.display()),
                    EntryKind::Dir => "dir".into(),
                    other => format!("{other:?}"),
                };
                (e.path.display().to_string(), kind)
            })
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            vec![
                ("bin".into(), "symlink usr/bin".into()),
                ("usr".into(), "dir".into()),
                ("usr/bin".into(), "dir".into()),
                ("usr/bin/alias".into(), "file".into()),
                ("usr/bin/tool".into(), "link usr/bin/alias".into()),
            ]
        );
        // Re-writing the read-back entries gives the same tar (a fixed point).
        assert_eq!(write_tar(back, Vec::new(), 0).unwrap(), tar);
    }
}
