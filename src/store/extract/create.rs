//! Creating one regular file with its metadata in as few system calls as the kernel
//! allows: `open(O_CREAT|O_EXCL)` with the final permission bits, the content, then
//! `fchown`/`fchmod` only when creation did not already give the right owner and mode,
//! `fsetxattr` per xattr and `futimens`, all on the open descriptor (no path lookups).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sys::stat::{fchmod, futimens, Mode};
use nix::sys::time::TimeSpec;
use xattr::FileExt;

/// What a file gets besides its content.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileMeta {
    /// Permission bits (including setuid, setgid and sticky).
    pub mode: u32,
    /// Modification (and access) time, seconds since the epoch.
    pub mtime: u64,
    /// Owner to set (when extracting as namespace root).
    pub owner: Option<(u32, u32)>,
    /// Extended attributes (from `SCHILY.xattr.*` records).
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// The process's identity and umask, read once per extraction: they decide which
/// `fchown`/`fchmod` calls creation already made unnecessary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Creator {
    uid: u32,
    gid: u32,
    umask: u32,
}

impl Creator {
    /// The current process. The umask comes from `/proc/self/status` (setting and
    /// restoring it would race with other threads creating files); when unreadable,
    /// every mode is set explicitly.
    pub fn current() -> Creator {
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o777);
        Creator {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            umask,
        }
    }

    /// Whether a file created with `mode & 0o777` needs an explicit chmod to get `mode`.
    pub fn needs_chmod(&self, mode: u32) -> bool {
        mode & !0o777 != 0 || mode & self.umask != 0
    }

    /// Whether a new file, owned by the creator, needs a chown to belong to `owner`.
    pub fn needs_chown(&self, owner: (u32, u32)) -> bool {
        owner != (self.uid, self.gid)
    }
}

/// Creates `host` (which must not exist: `EEXIST` is returned as is, for the caller to
/// clear the path and retry), lets `write` fill it, then applies `meta`. Returns whether
/// the owner could not be set (not mapped in this user namespace).
pub(crate) fn create_file(
    host: &Path,
    meta: &FileMeta,
    creator: &Creator,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<bool> {
    let mut file = open_new(host, meta.mode)?;
    write(&mut file)?;
    finish_file(&mut file, host, meta, creator)
}

/// Creates `host` for writing with the permission bits of `mode` (`O_EXCL`: never
/// follows or reuses what is there).
pub(crate) fn open_new(host: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(host)
}

/// Copies `size` bytes of `content` into `file` through `buf` (reused between files,
/// so it is zeroed once, not per file), in writes of up to `buf.len()` bytes.
pub(crate) fn copy_content(
    content: &mut dyn Read,
    size: u64,
    file: &mut File,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        content.read_exact(&mut buf[..n])?;
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Applies `meta` to a file [`open_new`] created. Returns whether the owner could not
/// be set (not mapped in this user namespace).
pub(crate) fn finish_file(
    file: &mut File,
    host: &Path,
    meta: &FileMeta,
    creator: &Creator,
) -> io::Result<bool> {
    let fd = file.as_raw_fd();
    let mut unmapped = false;
    if let Some(owner) = meta.owner.filter(|o| creator.needs_chown(*o)) {
        let (uid, gid) = (
            nix::unistd::Uid::from_raw(owner.0),
            nix::unistd::Gid::from_raw(owner.1),
        );
        match nix::unistd::fchown(fd, Some(uid), Some(gid)) {
            Ok(()) => {}
            Err(nix::Error::EINVAL | nix::Error::EPERM) => unmapped = true,
            Err(e) => return Err(e.into()),
        }
    }
    // After the chown, which clears setuid/setgid bits (always set explicitly).
    if creator.needs_chmod(meta.mode) {
        fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(io::Error::from)?;
    }
    for (name, value) in &meta.xattrs {
        if let Err(e) = file.set_xattr(name, value) {
            tracing::debug!("cannot set xattr {name} on {}: {e}", host.display());
        }
    }
    let t = TimeSpec::new(meta.mtime.min(i64::MAX as u64) as i64, 0);
    futimens(fd, &t, &t).map_err(io::Error::from)?;
    Ok(unmapped)
}
