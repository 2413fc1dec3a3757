//! Removing what a sandbox left behind (upper, work and copy directories). In subuid
//! mode files belong to subordinate IDs the caller cannot delete directly, so the
//! removal runs in a user namespace with the same maps, where the caller is root.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::error::RuntimeError;
use crate::idmap::{IdMaps, IdMode};
use crate::sys;

/// Removes `path` and everything below it, also directories without write or search
/// permission (overlay leaves `work/work` at mode 000) and, in subuid mode, files owned
/// by subordinate IDs.
pub fn remove_tree(path: &Path, maps: &IdMaps) -> Result<(), RuntimeError> {
    if path.symlink_metadata().is_err() || force_remove(path).is_ok() {
        return Ok(());
    }
    if maps.mode != IdMode::Subuid {
        return force_remove(path)
            .map_err(|e| RuntimeError::io(format!("remove {}", path.display()), e));
    }
    remove_in_namespace(path, maps)
}

/// Makes directories searchable and writable on the way down, then removes.
fn force_remove(path: &Path) -> std::io::Result<()> {
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    open_up(path);
    fs::remove_dir_all(path)
}

fn open_up(dir: &Path) {
    let Ok(meta) = dir.symlink_metadata() else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            open_up(&entry.path());
        }
    }
}

fn remove_in_namespace(path: &Path, maps: &IdMaps) -> Result<(), RuntimeError> {
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| RuntimeError::io("create pipe", e.into()))
    };
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    // SAFETY: the child only unshares a user namespace, uses two pipes and removes files
    // (allocating, but taking no lock of another thread), then ends with `_exit`.
    let pid = match unsafe { sys::fork() }.map_err(|e| RuntimeError::io("fork", e))? {
        0 => {
            drop((ready_r, go_w));
            if nix::sched::unshare(CloneFlags::CLONE_NEWUSER).is_err() {
                sys::exit(2);
            }
            let _ = std::fs::File::from(ready_w).write_all(b"U");
            let mut go = [0u8; 1];
            if std::fs::File::from(go_r).read_exact(&mut go).is_err() {
                sys::exit(3);
            }
            sys::exit(if force_remove(path).is_ok() { 0 } else { 1 })
        }
        pid => Pid::from_raw(pid),
    };
    drop((ready_w, go_r));
    let mut byte = [0u8; 1];
    let ready = std::fs::File::from(ready_r).read_exact(&mut byte).is_ok();
    let applied = if ready {
        maps.apply(pid.as_raw())
    } else {
        Ok(())
    };
    let _ = std::fs::File::from(go_w).write_all(b"G");
    let status = waitpid(pid, None);
    applied?;
    match status {
        Ok(WaitStatus::Exited(_, 0)) => Ok(()),
        other => Err(RuntimeError::io(
            format!("remove {} in a user namespace ({other:?})", path.display()),
            std::io::Error::from_raw_os_error(libc::EPERM),
        )),
    }
}
