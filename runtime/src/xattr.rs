//! Extended attributes of paths (not following symlinks), and the overlay markers.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Names of the overlay's opaque-directory marker, privileged and user-namespace forms.
const OPAQUE_NAMES: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// The value of attribute `name` of `path`, or `None` when it is not set or unsupported.
pub(crate) fn get(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = c_path(path).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `p` and `n` are NUL-terminated; `buf` is writable for `buf.len()` bytes.
        let len =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if len >= 0 {
            buf.truncate(len as usize);
            return Some(buf);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) || buf.len() > 1 << 20 {
            return None;
        }
        buf.resize(buf.len() * 4, 0);
    }
}

/// All attributes of `path` as (name, value), sorted by name.
pub(crate) fn list(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(p) = c_path(path) else {
        return Vec::new();
    };
    // SAFETY: a null buffer of size 0 asks only for the needed size.
    let size = unsafe { libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
    if size <= 0 {
        return Vec::new();
    }
    let mut names = vec![0u8; size as usize];
    // SAFETY: `names` is writable for its full length.
    let size = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if size <= 0 {
        return Vec::new();
    }
    names.truncate(size as usize);
    let mut out: Vec<(String, Vec<u8>)> = names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| std::str::from_utf8(n).ok())
        .filter_map(|n| get(path, n).map(|v| (n.to_string(), v)))
        .collect();
    out.sort();
    out
}

/// True for a directory the overlay marked opaque (its lower contents are hidden).
pub(crate) fn is_opaque(path: &Path) -> bool {
    OPAQUE_NAMES
        .iter()
        .any(|name| get(path, name).is_some_and(|v| v == b"y"))
}

/// True for an attribute that belongs to the overlay's bookkeeping, not to the file.
pub(crate) fn is_overlay_private(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}
