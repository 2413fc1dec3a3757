//! A persistent cache directory of the store (`cache/mounts/<hash>-<id>/`: a builder
//! `caches` mount or a package manager's tool cache) as a layer and back, for
//! `--cache-mounts` (see `docs/cache.md`).
//!
//! - [`CacheMountDir::lock`]: steps that mount the directory hold a shared lock (an
//!   exclusive one for `sharing: locked` caches); restoring and exporting its contents
//!   hold the exclusive lock, so they never see another build's half-written files;
//! - [`CacheMountDir::entries`]: its contents as layer entries written reproducibly:
//!   sorted by the layer writer, every owner the cache's owner, every mtime 0, no
//!   xattrs, so the same files give the same [`content_digest`];
//! - [`CacheMountDir::restore`]: extracts such a layer into the (empty) directory; a
//!   failure leaves it empty (a cold cache).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fs2::FileExt;

use super::{io_err, Store, StoreError};
use crate::image::digest::{AsDigest, Digest, HashingWriter};
use crate::image::layer::write_tar;
use crate::image::{Content, EntryKind, LayerEntry};

/// A persistent cache directory of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMountDir {
    dir: PathBuf,
}

/// A lock on a cache directory, released when dropped.
#[derive(Debug)]
pub struct CacheMountLock(File);

impl Drop for CacheMountLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

impl CacheMountDir {
    /// The cache directory `dir` (under [`super::CacheDir::Mounts`]).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Locks the directory, shared (steps using it) or exclusive (one `sharing:
    /// locked` step, or a restore or export of its contents); waits for the lock.
    pub fn lock(&self, exclusive: bool) -> Result<CacheMountLock, StoreError> {
        let path = self.dir.with_extension("lock");
        let file = super::index::open_lock_file(&path)?;
        if exclusive {
            file.lock_exclusive()
        } else {
            file.lock_shared()
        }
        .map_err(io_err("locking", &path))?;
        Ok(CacheMountLock(file))
    }

    /// Whether the directory has no entries (or does not exist).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        match fs::read_dir(&self.dir) {
            Ok(mut entries) => Ok(entries.next().is_none()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(io_err("reading", &self.dir)(e)),
        }
    }

    /// The directory's contents as layer entries (paths relative to it): directories,
    /// regular files and symlinks, owned by `owner`, mtime 0; other kinds and the
    /// top-level names in `skip` (e.g. npm's `_logs`) are left out. Hold the exclusive
    /// lock until the entries are written.
    pub fn entries(&self, owner: (u32, u32), skip: &[&str]) -> Result<Vec<LayerEntry>, StoreError> {
        let mut entries = Vec::new();
        let walk = walkdir::WalkDir::new(&self.dir)
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| e.depth() > 1 || !skip.iter().any(|s| e.file_name() == *s));
        for item in walk {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(&self.dir).to_path_buf();
                io_err("reading", &path)(e.into())
            })?;
            let path = item.path();
            let meta = item.metadata().map_err(|e| {
                let path = path.to_path_buf();
                io_err("reading", &path)(e.into())
            })?;
            let kind = if meta.is_dir() {
                EntryKind::Dir
            } else if meta.is_file() {
                EntryKind::File(Content::File(path.to_path_buf()))
            } else if meta.file_type().is_symlink() {
                EntryKind::Symlink(fs::read_link(path).map_err(io_err("reading", path))?)
            } else {
                continue;
            };
            let rel = path.strip_prefix(&self.dir).unwrap_or(path);
            entries.push(LayerEntry {
                path: rel.to_path_buf(),
                kind,
                mode: meta.permissions().mode() & 0o7777,
                uid: owner.0,
                gid: owner.1,
                mtime: 0,
                xattrs: Vec::new(),
            });
        }
        Ok(entries)
    }

    /// Extracts the stored layer blob `digest` (of `size` bytes, verified while read)
    /// into the directory, which should be empty (a path already there is replaced).
    /// Owners are applied when running as root. On failure the directory is emptied
    /// again.
    pub fn restore(
        &self,
        store: &Store,
        digest: &(impl AsDigest + ?Sized),
        size: u64,
    ) -> Result<(), StoreError> {
        fs::create_dir_all(&self.dir).map_err(io_err("creating", &self.dir))?;
        let extracted = store.layer_tar_stream(digest, size).and_then(|stream| {
            super::extract::extract_tar(stream, &self.dir).map_err(|source| StoreError::Corrupt {
                digest: digest.digest_str().to_string(),
                detail: crate::error_chain::ErrorChain(&source).to_string(),
            })
        });
        if let Err(e) = extracted {
            self.clear()?;
            return Err(e);
        }
        Ok(())
    }

    /// Removes everything in the directory.
    pub fn clear(&self) -> Result<(), StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("reading", &self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("reading", &self.dir))?;
            super::unpack::remove_tree(&entry.path())?;
        }
        Ok(())
    }
}

/// The diff-ID the layer of `entries` has (what [`Store::write_layer`] would record
/// with epoch 0), computed without compressing or storing anything.
pub fn content_digest(entries: &[LayerEntry]) -> Result<Digest, StoreError> {
    let tar = write_tar(entries.to_vec(), HashingWriter::new(io::sink()), 0)?;
    Ok(tar.finish().1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::LayerOptions;
    use std::os::unix::fs::symlink;

    fn opts() -> LayerOptions {
        LayerOptions {
            epoch: 0,
            ..LayerOptions::default()
        }
    }

    #[test]
    fn contents_round_trip_reproducibly_without_the_skipped_names() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();
        let a = CacheMountDir::new(&tmp.path().join("a"));
        fs::create_dir_all(a.path().join("_cacache/content")).unwrap();
        fs::create_dir_all(a.path().join("_logs")).unwrap();
        fs::write(a.path().join("_cacache/content/blob"), "tarball").unwrap();
        fs::write(a.path().join("_logs/debug.log"), "noise").unwrap();
        symlink("content/blob", a.path().join("_cacache/link")).unwrap();
        let entries = a.entries((900, 901), &["_logs"]).unwrap();
        let paths: Vec<_> = entries.iter().map(|e| e.path.clone()).collect();
        assert!(!paths.iter().any(|p| p.starts_with("_logs")), "{paths:?}");
        assert!(entries
            .iter()
            .all(|e| (e.uid, e.gid, e.mtime) == (900, 901, 0)));
        let digest = content_digest(&entries).unwrap();
        let layer = store.write_layer(entries, &opts()).unwrap();
        assert_eq!(layer.diff_id, digest);

        let b = CacheMountDir::new(&tmp.path().join("b"));
        assert!(b.is_empty().unwrap());
        b.restore(&store, &layer.digest, layer.size).unwrap();
        assert_eq!(
            fs::read_to_string(b.path().join("_cacache/link")).unwrap(),
            "tarball"
        );
        // The same files in another directory, at another time: the same digest.
        let again = b.entries((900, 901), &["_logs"]).unwrap();
        assert_eq!(content_digest(&again).unwrap(), digest);
        fs::write(b.path().join("_cacache/content/blob"), "changed").unwrap();
        let changed = b.entries((900, 901), &[]).unwrap();
        assert_ne!(content_digest(&changed).unwrap(), digest);
    }

    #[test]
    fn a_failed_restore_leaves_the_directory_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();
        let digest = store.put_blob(b"not a gzip stream").unwrap();
        let dir = CacheMountDir::new(&tmp.path().join("c"));
        assert!(dir.restore(&store, &digest, 17).is_err());
        assert!(dir.is_empty().unwrap());
        let _shared = dir.lock(false).unwrap();
        let _again = dir.lock(false).unwrap();
    }
}
