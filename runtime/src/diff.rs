//! Diff capture: what a sandboxed step changed in its root filesystem, as entries of a
//! new layer. From an overlay upper directory (whiteouts are char 0/0 devices, opaque
//! directories carry the overlay's opaque xattr) or, in the copy fallback, from a stat
//! walk against the snapshot taken before the step.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::copy::{is_whiteout, Meta, Snapshot};
use crate::error::RuntimeError;
use crate::idmap::IdMaps;
use crate::xattr;

/// The kind of a captured entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffKind {
    /// A regular file whose bytes are in this host file (valid until the state directory
    /// of the sandbox is removed).
    File(PathBuf),
    /// A directory.
    Dir,
    /// A symbolic link with this target.
    Symlink(PathBuf),
    /// A hard link to this earlier path of the same diff.
    Hardlink(PathBuf),
    /// A character device (major, minor).
    CharDevice(u32, u32),
    /// A block device (major, minor).
    BlockDevice(u32, u32),
    /// A named pipe.
    Fifo,
    /// The path was deleted.
    Whiteout,
    /// The directory at the path hides its lower contents (it was replaced).
    Opaque,
}

/// One changed path, relative to the root (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    /// Path inside the sandbox, relative.
    pub path: PathBuf,
    /// What it is.
    pub kind: DiffKind,
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    /// Owner inside the sandbox.
    pub uid: u32,
    /// Group inside the sandbox.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Extended attributes, without the overlay's own.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Where owners of captured entries come from.
#[derive(Debug, Clone)]
pub(crate) enum Ownership<'a> {
    /// The host owner, mapped back through the sandbox's ID maps.
    Mapped(&'a IdMaps),
    /// Always this uid and gid (single mode: the step's declared user).
    Fixed(u32, u32),
}

struct Capture<'a> {
    ignore: HashSet<PathBuf>,
    /// Subtrees left out entirely (chroot isolation's /dev, /proc, /sys and mounts).
    prune: HashSet<PathBuf>,
    ownership: &'a Ownership<'a>,
    links: HashMap<(u64, u64), PathBuf>,
    out: Vec<DiffEntry>,
}

impl Capture<'_> {
    fn new<'a>(ignore: &[PathBuf], ownership: &'a Ownership<'a>) -> Capture<'a> {
        Capture {
            ignore: ignore.iter().cloned().collect(),
            prune: HashSet::new(),
            ownership,
            links: HashMap::new(),
            out: Vec::new(),
        }
    }

    fn marker(&mut self, rel: &Path, kind: DiffKind) {
        self.out.push(DiffEntry {
            path: rel.to_path_buf(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        });
    }

    /// Adds the entry for `host` (at `rel`), a non-directory or a directory itself.
    fn entry(&mut self, host: &Path, rel: &Path, meta: &fs::Metadata) -> Result<(), RuntimeError> {
        let ft = meta.file_type();
        let (uid, gid) = match self.ownership {
            Ownership::Fixed(u, g) => (*u, *g),
            Ownership::Mapped(maps) => {
                let uid = maps.uid_inside(meta.uid());
                let gid = maps.gid_inside(meta.gid());
                match (uid, gid) {
                    (Some(u), Some(g)) => (u, g),
                    _ => {
                        return Err(RuntimeError::Capture {
                            path: host.display().to_string(),
                            reason: format!(
                                "owner {}:{} on the host is not mapped into the sandbox",
                                meta.uid(),
                                meta.gid()
                            ),
                        })
                    }
                }
            }
        };
        let kind = if ft.is_dir() {
            DiffKind::Dir
        } else if ft.is_symlink() {
            DiffKind::Symlink(fs::read_link(host).map_err(|e| capture_err(host, e))?)
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            match self.links.get(&key) {
                Some(first) if meta.nlink() > 1 => DiffKind::Hardlink(first.clone()),
                _ => {
                    if meta.nlink() > 1 {
                        self.links.insert(key, rel.to_path_buf());
                    }
                    DiffKind::File(host.to_path_buf())
                }
            }
        } else if ft.is_char_device() {
            DiffKind::CharDevice(dev_major(meta.rdev()), dev_minor(meta.rdev()))
        } else if ft.is_block_device() {
            DiffKind::BlockDevice(dev_major(meta.rdev()), dev_minor(meta.rdev()))
        } else if ft.is_fifo() {
            DiffKind::Fifo
        } else {
            tracing::debug!("skipping socket {}", host.display());
            return Ok(());
        };
        let xattrs = xattr::list(host)
            .into_iter()
            .filter(|(n, _)| !xattr::is_overlay_private(n))
            .collect();
        self.out.push(DiffEntry {
            path: rel.to_path_buf(),
            kind,
            mode: meta.mode() & 0o7777,
            uid,
            gid,
            mtime: meta.mtime().max(0) as u64,
            xattrs,
        });
        Ok(())
    }
}

fn dev_major(rdev: u64) -> u32 {
    ((rdev >> 32) & 0xffff_f000 | (rdev >> 8) & 0xfff) as u32
}

fn dev_minor(rdev: u64) -> u32 {
    ((rdev >> 12) & 0xffff_ff00 | rdev & 0xff) as u32
}

fn capture_err(path: &Path, e: std::io::Error) -> RuntimeError {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        return RuntimeError::CaptureDenied {
            path: path.display().to_string(),
        };
    }
    RuntimeError::Capture {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn sorted_children(dir: &Path) -> Result<Vec<(PathBuf, std::ffi::OsString)>, RuntimeError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(|e| capture_err(dir, e))?
        .map(|e| e.map(|e| (e.path(), e.file_name())))
        .collect::<Result<_, _>>()
        .map_err(|e| capture_err(dir, e))?;
    names.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(names)
}

/// The entries of an overlay upper directory.
///
/// A directory that the overlay copied up only because a mount-point stub was created
/// in it (same mode and owner as in the top lower layer, nothing else changed below it)
/// is left out.
pub(crate) fn from_upper(
    upper: &Path,
    lowers: &[PathBuf],
    ignore: &[PathBuf],
    ownership: &Ownership<'_>,
) -> Result<Vec<DiffEntry>, RuntimeError> {
    let mut cap = Capture::new(ignore, ownership);
    walk_upper(&mut cap, upper, lowers, Path::new(""))?;
    Ok(cap.out)
}

/// The directory at `rel` in the topmost lower layer that has it.
fn lower_dir_meta(lowers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    lowers
        .iter()
        .rev()
        .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())
        .filter(|m| m.is_dir())
}

fn holds_stub(cap: &Capture<'_>, dir: &Path, rel: &Path) -> bool {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| cap.ignore.contains(&rel.join(e.file_name())))
        })
        .unwrap_or(false)
}

fn walk_upper(
    cap: &mut Capture<'_>,
    dir: &Path,
    lowers: &[PathBuf],
    rel: &Path,
) -> Result<(), RuntimeError> {
    for (host, name) in sorted_children(dir)? {
        let rel_child = rel.join(&name);
        let meta = fs::symlink_metadata(&host).map_err(|e| capture_err(&host, e))?;
        let ignored = cap.ignore.contains(&rel_child);
        if meta.is_dir() {
            let at = cap.out.len();
            if !ignored {
                cap.entry(&host, &rel_child, &meta)?;
                if xattr::is_opaque(&host) {
                    cap.marker(&rel_child, DiffKind::Opaque);
                }
            }
            let before = cap.out.len();
            walk_upper(cap, &host, lowers, &rel_child)?;
            let only_stubs = !ignored
                && cap.out.len() == at + 1
                && holds_stub(cap, &host, &rel_child)
                && lower_dir_meta(lowers, &rel_child).is_some_and(|l| {
                    (l.mode(), l.uid(), l.gid()) == (meta.mode(), meta.uid(), meta.gid())
                });
            if only_stubs {
                cap.out.truncate(at);
            }
            if ignored && cap.out.len() > before {
                // A stub directory that now holds real changes is part of the diff.
                let mut parent = Capture::new(&[], cap.ownership);
                parent.entry(&host, &rel_child, &meta)?;
                cap.out.splice(at..at, parent.out);
            }
        } else if ignored {
            continue;
        } else if is_whiteout(&meta) {
            cap.marker(&rel_child, DiffKind::Whiteout);
        } else {
            cap.entry(&host, &rel_child, &meta)?;
        }
    }
    Ok(())
}

/// The entries that differ between a copied tree and its snapshot (copy fallback). The
/// result matches what an overlay upper directory gives for the same changes: changed
/// paths with their parent directories, whiteouts for deletions, opaque markers for
/// replaced directories.
///
/// The relative paths of `prune` and everything below them are left out.
pub(crate) fn from_snapshot(
    tree: &Path,
    snap: &Snapshot,
    ignore: &[PathBuf],
    prune: &[PathBuf],
    ownership: &Ownership<'_>,
) -> Result<Vec<DiffEntry>, RuntimeError> {
    let mut cap = Capture::new(ignore, ownership);
    cap.prune = prune.iter().cloned().collect();
    compare_dir(&mut cap, snap, tree, Path::new(""))?;
    Ok(cap.out)
}

/// Compares one directory that existed before as the same object; returns whether any
/// entry was emitted below it.
fn compare_dir(
    cap: &mut Capture<'_>,
    snap: &Snapshot,
    dir: &Path,
    rel: &Path,
) -> Result<bool, RuntimeError> {
    let start = cap.out.len();
    let children = sorted_children(dir)?;
    let mut present = HashSet::new();
    let mut deleted: Vec<PathBuf> = snap
        .children
        .get(rel)
        .map(|names| names.iter().map(|n| rel.join(n)).collect())
        .unwrap_or_default();
    for (_, name) in &children {
        present.insert(rel.join(name));
    }
    deleted.retain(|p| !present.contains(p) && !cap.ignore.contains(p) && !cap.prune.contains(p));
    let mut deleted = deleted.into_iter().peekable();
    for (host, name) in children {
        let rel_child = rel.join(&name);
        if cap.prune.contains(&rel_child) {
            continue;
        }
        while let Some(d) = deleted.next_if(|d| *d < rel_child) {
            cap.marker(&d, DiffKind::Whiteout);
        }
        let meta = fs::symlink_metadata(&host).map_err(|e| capture_err(&host, e))?;
        let now = Meta::of(&meta);
        let before = snap.entries.get(&rel_child);
        let ignored = cap.ignore.contains(&rel_child);
        let same = before.is_some_and(|b| b.same_object(&now));
        if meta.is_dir() {
            let at = cap.out.len();
            if same {
                let inner = compare_dir(cap, snap, &host, &rel_child)?;
                let changed = before.is_some_and(|b| {
                    if !inner && holds_stub(cap, &host, &rel_child) {
                        (b.mode, b.uid, b.gid) != (now.mode, now.uid, now.gid)
                    } else {
                        !same_meta(b, &now, true)
                    }
                });
                if inner || (changed && !ignored) {
                    let mut one = Capture::new(&[], cap.ownership);
                    one.entry(&host, &rel_child, &meta)?;
                    cap.out.splice(at..at, one.out);
                }
            } else {
                let before_len = cap.out.len();
                if !ignored {
                    cap.entry(&host, &rel_child, &meta)?;
                    if before.is_some() {
                        cap.marker(&rel_child, DiffKind::Opaque);
                    }
                }
                let inner = add_all(cap, &host, &rel_child)?;
                if ignored && inner {
                    let mut one = Capture::new(&[], cap.ownership);
                    one.entry(&host, &rel_child, &meta)?;
                    cap.out.splice(before_len..before_len, one.out);
                }
            }
        } else if ignored {
            continue;
        } else if !same || before.is_some_and(|b| !same_meta(b, &now, false)) {
            cap.entry(&host, &rel_child, &meta)?;
        }
    }
    for d in deleted {
        cap.marker(&d, DiffKind::Whiteout);
    }
    Ok(cap.out.len() > start)
}

fn same_meta(a: &Meta, b: &Meta, dir: bool) -> bool {
    let common = a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.mtime == b.mtime;
    if dir {
        common
    } else {
        common && a.size == b.size && a.ctime == b.ctime && a.rdev == b.rdev
    }
}

/// Adds everything below a new directory; returns whether anything was added.
fn add_all(cap: &mut Capture<'_>, dir: &Path, rel: &Path) -> Result<bool, RuntimeError> {
    let start = cap.out.len();
    for (host, name) in sorted_children(dir)? {
        let rel_child = rel.join(&name);
        if cap.ignore.contains(&rel_child) || cap.prune.contains(&rel_child) {
            continue;
        }
        let meta = fs::symlink_metadata(&host).map_err(|e| capture_err(&host, e))?;
        cap.entry(&host, &rel_child, &meta)?;
        if meta.is_dir() {
            add_all(cap, &host, &rel_child)?;
        }
    }
    Ok(cap.out.len() > start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_split_like_glibc() {
        let rdev = libc::makedev(259, 70000);
        assert_eq!((dev_major(rdev), dev_minor(rdev)), (259, 70000));
        assert_eq!((dev_major(0), dev_minor(0)), (0, 0));
    }
}
