//! The copy fallback for kernels (or file systems) where overlay cannot be mounted:
//! the layers are copied into one tree, whose state is recorded so that a stat walk
//! after the command finds what changed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::error::RuntimeError;
use crate::xattr;

/// What the stat walk compares for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub ino: u64,
    pub born: Option<SystemTime>,
    pub rdev: u64,
}

impl Meta {
    pub fn of(m: &fs::Metadata) -> Meta {
        Meta {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
            born: m.created().ok(),
            rdev: m.rdev(),
        }
    }

    /// The file type bits (`S_IFMT`).
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    /// Same object: same type and inode, born at the same time where the file system
    /// records birth (inode numbers are reused right after a delete).
    pub fn same_object(&self, other: &Meta) -> bool {
        self.kind() == other.kind() && self.ino == other.ino && self.born == other.born
    }
}

/// The state of a copied tree before the command ran: metadata by relative path and
/// the names in each directory.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub entries: HashMap<PathBuf, Meta>,
    pub children: HashMap<PathBuf, Vec<OsString>>,
}

/// Copies `lowers` (bottom first) into a fresh `tree`, applying whiteouts and opaque
/// markers as overlay would, and records the result.
pub(crate) fn build_tree(lowers: &[PathBuf], tree: &Path) -> Result<Snapshot, RuntimeError> {
    copy_layers(lowers, tree)?;
    snapshot(tree, &[])
}

/// Copies `lowers` (bottom first) into a fresh `tree`, as [`build_tree`] does, without
/// recording it.
pub(crate) fn copy_layers(lowers: &[PathBuf], tree: &Path) -> Result<(), RuntimeError> {
    if tree.symlink_metadata().is_ok() {
        fs::remove_dir_all(tree)
            .map_err(|e| RuntimeError::io(format!("remove {}", tree.display()), e))?;
    }
    fs::create_dir_all(tree)
        .map_err(|e| RuntimeError::io(format!("create {}", tree.display()), e))?;
    for lower in lowers {
        let mut links = HashMap::new();
        apply_layer(lower, tree, &mut links)?;
        copy_meta(&fs::symlink_metadata(lower).map_err(io_at(lower))?, tree)?;
    }
    Ok(())
}

/// Copies the directory `src` into the directory `dst` (created when missing) with
/// modes, owners and times, as a layer would be.
pub(crate) fn copy_dir(src: &Path, dst: &Path) -> Result<(), RuntimeError> {
    fs::create_dir_all(dst).map_err(io_at(dst))?;
    apply_layer(src, dst, &mut HashMap::new())?;
    copy_meta(&fs::symlink_metadata(src).map_err(io_at(src))?, dst)
}

/// Records the state of `tree`, without descending into the relative paths of `prune`
/// (which the diff leaves out).
pub(crate) fn snapshot(tree: &Path, prune: &[PathBuf]) -> Result<Snapshot, RuntimeError> {
    let mut snap = Snapshot::default();
    walk(tree, Path::new(""), prune, &mut snap)?;
    Ok(snap)
}

fn walk(
    dir: &Path,
    rel: &Path,
    prune: &[PathBuf],
    snap: &mut Snapshot,
) -> Result<(), RuntimeError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(io_at(&path))?;
        let rel_child = rel.join(entry.file_name());
        if meta.is_dir() && !prune.contains(&rel_child) {
            walk(&path, &rel_child, prune, snap)?;
        }
        snap.entries.insert(rel_child, Meta::of(&meta));
        names.push(entry.file_name());
    }
    snap.children.insert(rel.to_path_buf(), names);
    Ok(())
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> RuntimeError + '_ {
    move |e| RuntimeError::io(format!("copy fallback at {}", path.display()), e)
}

/// True for an overlay whiteout: a character device 0/0.
pub(crate) fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn remove_any(path: &Path) -> Result<(), RuntimeError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_at(path)),
        Ok(_) => fs::remove_file(path).map_err(io_at(path)),
        Err(_) => Ok(()),
    }
}

fn apply_layer(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), RuntimeError> {
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(io_at(src))?
        .collect::<Result<_, _>>()
        .map_err(io_at(src))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from).map_err(io_at(&from))?;
        if is_whiteout(&meta) {
            remove_any(&to)?;
            continue;
        }
        if meta.is_dir() {
            let existing = fs::symlink_metadata(&to).ok();
            if existing.as_ref().is_some_and(|m| !m.is_dir()) || xattr::is_opaque(&from) {
                remove_any(&to)?;
            }
            if fs::symlink_metadata(&to).is_err() {
                fs::create_dir(&to).map_err(io_at(&to))?;
            }
            apply_layer(&from, &to, links)?;
            copy_meta(&meta, &to)?;
            continue;
        }
        remove_any(&to)?;
        let ft = meta.file_type();
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                fs::hard_link(first, &to).map_err(io_at(&to))?;
                continue;
            }
            links.insert((meta.dev(), meta.ino()), to.clone());
        }
        if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(io_at(&from))?;
            std::os::unix::fs::symlink(target, &to).map_err(io_at(&to))?;
        } else if ft.is_file() {
            fs::copy(&from, &to).map_err(io_at(&to))?;
        } else {
            let kind = nix::sys::stat::SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
            let perm = nix::sys::stat::Mode::from_bits_truncate(meta.mode() & 0o7777);
            nix::sys::stat::mknod(&to, kind, perm, meta.rdev())
                .map_err(|e| io_at(&to)(e.into()))?;
        }
        copy_meta(&meta, &to)?;
    }
    Ok(())
}

/// Owner (when permitted), mode and times of `meta` onto `to` (not following links).
fn copy_meta(meta: &fs::Metadata, to: &Path) -> Result<(), RuntimeError> {
    let _ = std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()));
    if !meta.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_at(to))?;
    }
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(None, to, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| io_at(to)(e.into()))
}
