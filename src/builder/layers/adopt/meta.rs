//! The metadata operations of adoption: overlay attributes, owner, mode and times of
//! one path, as extraction leaves them.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, geteuid, Gid, Uid};

use super::{io_at, unsupported, AdoptError};

/// Whether `host` has any extended attribute.
pub(super) fn has_xattrs(host: &Path) -> bool {
    xattr::list(host).is_ok_and(|mut names| names.next().is_some())
}

/// Removes the overlay's attributes of `host`, keeping (or setting) only the opaque
/// marker of an `opaque` directory as extraction writes it. Any other attribute means
/// the capture saw something it did not record: refused.
pub(super) fn strip_overlay_xattrs(
    host: &Path,
    rel: &Path,
    opaque: bool,
    is_root: bool,
) -> Result<(), AdoptError> {
    let mut keep: Vec<&str> = Vec::new();
    if opaque {
        keep.push("user.overlay.opaque");
        if is_root {
            keep.push("trusted.overlay.opaque");
        }
    }
    let names = xattr::list(host).map_err(io_at(host))?;
    for name in names {
        let Some(name) = name.to_str() else {
            return Err(unsupported(rel, "extended attribute with a non-UTF-8 name"));
        };
        if !(name.starts_with("user.overlay.") || name.starts_with("trusted.overlay.")) {
            return Err(unsupported(rel, "extended attribute the capture left out"));
        }
        let value = xattr::get(host, name).map_err(io_at(host))?;
        if keep.contains(&name) && value.as_deref() == Some(b"y") {
            continue;
        }
        xattr::remove(host, name).map_err(io_at(host))?;
    }
    for name in keep {
        if xattr::get(host, name).map_err(io_at(host))?.as_deref() != Some(b"y") {
            xattr::set(host, name, b"y").map_err(io_at(host))?;
        }
    }
    Ok(())
}

/// Sets the owner extraction gives: the entry's as root; as another user the caller
/// owns every file (checked, as it cannot be changed). Returns whether it changed.
pub(super) fn set_owner(
    host: &Path,
    rel: &Path,
    meta: &fs::Metadata,
    (uid, gid): (u32, u32),
    is_root: bool,
) -> Result<bool, AdoptError> {
    if !is_root {
        return if meta.uid() == geteuid().as_raw() {
            Ok(false)
        } else {
            Err(unsupported(rel, "owned by another user"))
        };
    }
    if (meta.uid(), meta.gid()) == (uid, gid) {
        return Ok(false);
    }
    let flags = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
    fchownat(
        None,
        host,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        flags,
    )
    .map_err(|e| io_at(host)(e.into()))?;
    Ok(true)
}

/// Sets the permission bits of `host` (never a symlink).
pub(super) fn set_mode(host: &Path, mode: u32) -> Result<(), AdoptError> {
    fs::set_permissions(host, fs::Permissions::from_mode(mode & 0o7777)).map_err(io_at(host))
}

/// Sets atime and mtime like extraction does (a symlink itself, not its target).
pub(super) fn set_times(host: &Path, mtime: u64) -> Result<(), AdoptError> {
    let t = TimeSpec::new(mtime.min(i64::MAX as u64) as i64, 0);
    utimensat(None, host, &t, &t, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| io_at(host)(e.into()))
}
