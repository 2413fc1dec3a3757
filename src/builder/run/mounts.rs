//! Builder mounts and caches (spec §5.8): a read-write mount whose changes are discarded
//! is a scratch copy of the source filesystem (a variant, an image or the build
//! context); a cache is a persistent directory under the store, one per id.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::builder::layers::view::{FileKind, ImageView};
use crate::builder::{io_err, BuildError};

/// Copies the tree at image path `from` of `view` into the host directory `to` (which
/// must not exist): directories, files and symlinks, with their modes, and with their
/// owners when running as root.
pub fn materialize(view: &dyn ImageView, from: &Path, to: &Path) -> Result<u64, BuildError> {
    let as_root = nix::unistd::geteuid().is_root();
    let mut count = 0;
    let Some(meta) = view.stat(from) else {
        fs::create_dir_all(to).map_err(io_err(to))?;
        return Ok(0);
    };
    copy_one(view, from, to, meta.kind, as_root, &mut count)?;
    Ok(count)
}

fn copy_one(
    view: &dyn ImageView,
    from: &Path,
    to: &Path,
    kind: FileKind,
    as_root: bool,
    count: &mut u64,
) -> Result<(), BuildError> {
    let Some(meta) = view.stat(from) else {
        return Ok(());
    };
    *count += 1;
    match kind {
        FileKind::Dir => {
            fs::create_dir_all(to).map_err(io_err(to))?;
            for name in view.list(from) {
                let child = from.join(&name);
                if let Some(m) = view.stat(&child) {
                    copy_one(view, &child, &to.join(&name), m.kind, as_root, count)?;
                }
            }
            // Writable for the copy; the mount is discarded anyway.
            fs::set_permissions(to, fs::Permissions::from_mode(meta.mode | 0o700))
                .map_err(io_err(to))?;
        }
        FileKind::File => {
            match view.host_path(from) {
                Some(src) => {
                    fs::copy(&src, to).map_err(io_err(&src))?;
                }
                None => fs::write(to, view.read(from).unwrap_or_default()).map_err(io_err(to))?,
            }
            fs::set_permissions(to, fs::Permissions::from_mode(meta.mode)).map_err(io_err(to))?;
        }
        FileKind::Symlink => {
            let target = view.read_link(from).unwrap_or_default();
            symlink(&target, to).map_err(io_err(to))?;
        }
        FileKind::Other => return Ok(()),
    }
    if as_root {
        let _ = nix::unistd::fchownat(
            None,
            to,
            Some(nix::unistd::Uid::from_raw(meta.uid)),
            Some(nix::unistd::Gid::from_raw(meta.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}

/// The host directory of the cache `id` in `mounts` (the store's
/// [`crate::store::CacheDir::Mounts`]), created on first use with mode 0755 and, as root,
/// the given owner (so the builder user can write to it).
pub fn cache_dir(
    mounts: &Path,
    id: &str,
    owner: Option<(u32, u32)>,
) -> Result<PathBuf, BuildError> {
    let digest = crate::image::digest::sha256(id.as_bytes());
    let readable: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let dir = mounts.join(format!(
        "{}-{}",
        &digest[..16],
        readable.trim_start_matches('.')
    ));
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io_err(&dir))?;
        if let (Some((uid, gid)), true) = (owner, nix::unistd::geteuid().is_root()) {
            nix::unistd::chown(
                &dir,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|e| BuildError::Io {
                path: dir.clone(),
                source: e.into(),
            })?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::layers::view::LayerStackView;

    #[test]
    fn materialize_copies_a_merged_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("l");
        let upper = tmp.path().join("u");
        fs::create_dir_all(lower.join("src/app")).unwrap();
        fs::write(lower.join("src/app/a"), "old").unwrap();
        fs::write(lower.join("src/app/gone"), "x").unwrap();
        fs::create_dir_all(upper.join("src/app")).unwrap();
        fs::write(upper.join("src/app/a"), "new").unwrap();
        fs::write(upper.join("src/app/.wh.gone"), "").unwrap();
        symlink("a", upper.join("src/app/link")).unwrap();
        let view = LayerStackView::new(vec![lower, upper]);
        let out = tmp.path().join("out");
        materialize(&view, Path::new("/src/app"), &out).unwrap();
        assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "new");
        assert!(!out.join("gone").exists());
        assert_eq!(fs::read_link(out.join("link")).unwrap(), Path::new("a"));
    }

    #[test]
    fn cache_dirs_are_stable_per_id() {
        let tmp = tempfile::tempdir().unwrap();
        let a = cache_dir(tmp.path(), "/home/somebody/.npm", None).unwrap();
        let b = cache_dir(tmp.path(), "/home/somebody/.npm", None).unwrap();
        let c = cache_dir(tmp.path(), "pip", None).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.is_dir());
    }
}
