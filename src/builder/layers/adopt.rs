//! Adopting a Run step's captured tree (the overlay upper directory) as the unpacked
//! directory of the layer just written from it, instead of extracting that blob again.
//!
//! The adopted tree must be indistinguishable from what `Store::unpack_layer` extracts
//! from the blob, because a later cached build uses the extracted one. So the tree is
//! brought to exactly the extracted state, in place (no bytes are copied):
//! - paths that are not layer entries (mount-point stubs, `/etc/hosts`, directories
//!   copied up only for a stub) are removed;
//! - mtimes (and atimes) are the layer's clamped mtimes; modes are the entries' modes;
//!   owners are the entries' owners as root, the caller otherwise (like extraction);
//! - whiteouts stay overlay char 0/0 devices (mode 0, mtime 0, the caller's); opaque
//!   directories keep `user.overlay.opaque=y` (and get `trusted.overlay.opaque=y` as
//!   root); every other overlay attribute (`origin`, `impure`, ...) is removed.
//!
//! Anything this cannot reproduce cheaply and exactly — device nodes, extended
//! attributes other than the overlay's, hard links to paths outside the capture, a
//! file that is not the capture's own, a parent directory missing from the entries —
//! makes [`prepare_tree`] fail, and the caller unpacks the blob as before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::unistd::{getegid, geteuid};

use crate::image::layer::{normalise_path, tar_name};
use crate::image::{Content, EntryKind, LayerEntry};
use crate::store::extract::ExtractReport;

use meta::{has_xattrs, set_mode, set_owner, set_times, strip_overlay_xattrs};

/// What a step produced for its layer.
#[derive(Debug)]
pub struct StepWrites {
    /// The layer's entries.
    pub entries: Vec<LayerEntry>,
    /// The directory the entries were captured from, when it may become the layer's
    /// unpacked directory (see [`prepare_tree`]); removed with the step's scratch
    /// directory otherwise.
    pub tree: Option<PathBuf>,
}

impl From<Vec<LayerEntry>> for StepWrites {
    fn from(entries: Vec<LayerEntry>) -> Self {
        StepWrites {
            entries,
            tree: None,
        }
    }
}

/// Why a captured tree is not adopted (the layer is then unpacked from its blob).
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The tree or its entries hold something adoption does not reproduce exactly.
    #[error("{path:?}: {reason}")]
    Unsupported {
        /// The path concerned, relative to the tree.
        path: PathBuf,
        /// What is unusual about it.
        reason: &'static str,
    },
    /// A filesystem operation on the tree failed.
    #[error("{}", path.display())]
    Io {
        /// The host path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn unsupported(path: &Path, reason: &'static str) -> AdoptError {
    AdoptError::Unsupported {
        path: path.to_path_buf(),
        reason,
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AdoptError + '_ {
    move |source| AdoptError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The entries of a tree by relative path, checked before anything is changed.
struct Wanted<'a> {
    /// Every path that stays (markers excluded), in path order.
    paths: BTreeMap<PathBuf, &'a LayerEntry>,
    /// Directories whose lower contents are hidden.
    opaque: HashSet<PathBuf>,
    /// Number of hard-link entries naming each file.
    links: HashMap<PathBuf, u64>,
}

impl<'a> Wanted<'a> {
    fn new(tree: &Path, entries: &'a [LayerEntry]) -> Result<Self, AdoptError> {
        let mut wanted = Wanted {
            paths: BTreeMap::new(),
            opaque: HashSet::new(),
            links: HashMap::new(),
        };
        for e in entries {
            let rel = normalise_path(&e.path).map_err(|_| unsupported(&e.path, "bad path"))?;
            if !e.xattrs.is_empty() {
                return Err(unsupported(&rel, "extended attributes"));
            }
            match &e.kind {
                EntryKind::CharDevice(..) | EntryKind::BlockDevice(..) => {
                    return Err(unsupported(&rel, "device node"))
                }
                EntryKind::File(Content::File(host)) if *host == tree.join(&rel) => {}
                EntryKind::File(_) => return Err(unsupported(&rel, "content not in the tree")),
                EntryKind::Hardlink(target) => {
                    let target = normalise_path(target)
                        .map_err(|_| unsupported(&rel, "bad hard-link target"))?;
                    *wanted.links.entry(target).or_default() += 1;
                }
                EntryKind::Opaque => {
                    wanted.opaque.insert(rel);
                    continue;
                }
                _ => {}
            }
            if rel.as_os_str().is_empty() {
                return Err(unsupported(&rel, "entry for the root directory"));
            }
            if wanted.paths.insert(rel.clone(), e).is_some() {
                return Err(unsupported(&rel, "duplicate entry"));
            }
        }
        let is_dir = |p: &Path| {
            p.as_os_str().is_empty()
                || wanted
                    .paths
                    .get(p)
                    .is_some_and(|e| e.kind == EntryKind::Dir)
        };
        for rel in wanted.paths.keys() {
            if !is_dir(rel.parent().unwrap_or(Path::new(""))) {
                return Err(unsupported(rel, "parent directory is not an entry"));
            }
        }
        for rel in wanted.opaque.iter().chain(wanted.links.keys()) {
            let ok = match wanted.paths.get(rel).map(|e| &e.kind) {
                Some(EntryKind::Dir) => wanted.opaque.contains(rel),
                Some(EntryKind::File(_)) => wanted.links.contains_key(rel),
                _ => false,
            };
            if !ok {
                return Err(unsupported(rel, "marker or link without its entry"));
            }
        }
        Ok(wanted)
    }
}

/// Brings the captured `tree` of `entries` (the overlay upper directory of a step, on
/// the store's filesystem) to exactly the state extracting their layer gives, with
/// mtimes clamped to `epoch`, and returns the extraction record for it. On an error the
/// tree is left half-changed: the caller unpacks the blob instead and discards it.
pub fn prepare_tree(
    tree: &Path,
    entries: &[LayerEntry],
    epoch: u64,
) -> Result<ExtractReport, AdoptError> {
    let wanted = Wanted::new(tree, entries)?;
    let is_root = geteuid().is_root();
    prune(tree, Path::new(""), &wanted)?;
    strip_overlay_xattrs(tree, Path::new(""), false, is_root)?;
    let mut dirs = Vec::new();
    for (rel, e) in &wanted.paths {
        let host = tree.join(rel);
        let meta = fs::symlink_metadata(&host).map_err(io_at(&host))?;
        check_kind(tree, rel, e, &meta, &wanted)?;
        let mtime = e.mtime.min(epoch);
        match &e.kind {
            EntryKind::Hardlink(_) => continue, // the file's entry sets the inode
            EntryKind::Dir => {
                if !is_root && meta.mode() & 0o700 != 0o700 {
                    // Writable until the end, so its attributes can change.
                    set_mode(&host, meta.mode() | 0o700)?;
                }
                strip_overlay_xattrs(&host, rel, wanted.opaque.contains(rel), is_root)?;
                set_owner(&host, rel, &meta, (e.uid, e.gid), is_root)?;
                dirs.push((host, e.mode, mtime));
                continue;
            }
            EntryKind::Whiteout => {
                strip_overlay_xattrs(&host, rel, false, is_root)?;
                let me = (geteuid().as_raw(), getegid().as_raw());
                set_owner(&host, rel, &meta, me, is_root)?;
                if meta.mode() & 0o7777 != 0 {
                    set_mode(&host, 0)?;
                }
            }
            EntryKind::Symlink(_) => {
                strip_overlay_xattrs(&host, rel, false, is_root)?;
                set_owner(&host, rel, &meta, (e.uid, e.gid), is_root)?;
            }
            _ => {
                if !is_root && meta.mode() & 0o600 != 0o600 && has_xattrs(&host) {
                    set_mode(&host, meta.mode() | 0o600)?;
                }
                strip_overlay_xattrs(&host, rel, false, is_root)?;
                let chowned = set_owner(&host, rel, &meta, (e.uid, e.gid), is_root)?;
                // chown clears setuid/setgid: the mode always comes after it.
                if chowned || meta.mode() & 0o7777 != e.mode & 0o7777 {
                    set_mode(&host, e.mode & 0o7777)?;
                }
            }
        }
        set_times(&host, mtime)?;
    }
    // Deepest first, like extraction: a read-only directory is finished after its
    // children.
    for (host, mode, mtime) in dirs.iter().rev() {
        set_mode(host, mode & 0o7777)?;
        set_times(host, *mtime)?;
    }
    Ok(report_of(entries))
}

/// The record extraction writes for these entries: whiteouts and opaque directories in
/// tar order.
fn report_of(entries: &[LayerEntry]) -> ExtractReport {
    let mut markers: Vec<(PathBuf, bool, PathBuf)> = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Whiteout | EntryKind::Opaque))
        .filter_map(|e| {
            let name = tar_name(e).ok()??;
            let rel = normalise_path(&e.path).ok()?;
            Some((name, e.kind == EntryKind::Opaque, rel))
        })
        .collect();
    markers.sort();
    let mut report = ExtractReport {
        whiteout_devices: true,
        ..Default::default()
    };
    for (_, opaque, rel) in markers {
        if opaque {
            report.opaque.push(rel);
        } else {
            report.whiteouts.push(rel);
        }
    }
    report
}

/// Removes every path below `dir` (at `rel`) that is not an entry.
fn prune(dir: &Path, rel: &Path, wanted: &Wanted<'_>) -> Result<(), AdoptError> {
    for child in fs::read_dir(dir).map_err(io_at(dir))? {
        let child = child.map_err(io_at(dir))?;
        let child_rel = rel.join(child.file_name());
        let host = child.path();
        let is_dir = child.file_type().map_err(io_at(&host))?.is_dir();
        if wanted.paths.contains_key(&child_rel) {
            if is_dir {
                prune(&host, &child_rel, wanted)?;
            }
            continue;
        }
        let remove = |host: &Path| -> io::Result<()> {
            if is_dir {
                crate::store::unpack::remove_tree(host).map_err(io::Error::other)
            } else {
                fs::remove_file(host)
            }
        };
        if let Err(e) = remove(&host) {
            if e.kind() != io::ErrorKind::PermissionDenied {
                return Err(io_at(&host)(e));
            }
            // A read-only directory of the caller's: its final mode is set later.
            let mode = fs::symlink_metadata(dir).map_err(io_at(dir))?.mode();
            set_mode(dir, mode | 0o700)?;
            remove(&host).map_err(io_at(&host))?;
        }
    }
    Ok(())
}

/// Checks that the tree holds what the entry says, and that a file's hard links are
/// all entries.
fn check_kind(
    tree: &Path,
    rel: &Path,
    e: &LayerEntry,
    meta: &fs::Metadata,
    wanted: &Wanted<'_>,
) -> Result<(), AdoptError> {
    let ft = meta.file_type();
    let ok = match &e.kind {
        EntryKind::Dir => ft.is_dir(),
        EntryKind::File(_) => {
            let links = wanted.links.get(rel).copied().unwrap_or(0);
            if ft.is_file() && meta.nlink() != 1 + links {
                return Err(unsupported(rel, "hard link to a path outside the layer"));
            }
            ft.is_file()
        }
        EntryKind::Hardlink(target) => {
            let target = tree.join(normalise_path(target).unwrap_or_default());
            let target_meta = fs::symlink_metadata(&target).map_err(io_at(&target))?;
            ft.is_file() && (target_meta.dev(), target_meta.ino()) == (meta.dev(), meta.ino())
        }
        EntryKind::Symlink(target) => {
            ft.is_symlink() && fs::read_link(tree.join(rel)).ok().as_ref() == Some(target)
        }
        EntryKind::Fifo => ft.is_fifo(),
        EntryKind::Whiteout => ft.is_char_device() && meta.rdev() == 0,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(unsupported(rel, "differs from its captured entry"))
    }
}

mod meta;
#[cfg(test)]
mod tests;
