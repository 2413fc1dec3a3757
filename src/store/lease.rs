//! Ownership of the entries under `tmp/`: every temp file and scratch directory a
//! process makes there is held with an exclusive `flock` by that process for as long as
//! it uses it. An entry nobody holds belongs to a process that is gone (a killed build,
//! an interrupted download), and [`Store::reclaim_leftovers`] deletes it. flock locks die
//! with their process, so a reused pid can never keep a leftover alive.
//!
//! Creating an entry and locking it are two steps; `tmp.lock` closes the gap between
//! them: creators hold it shared for those two steps, a reclaim holds it exclusively
//! while it looks for unheld entries.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use fs2::FileExt;

use super::{io_err, Store, StoreError};

/// A scratch directory under the store's `tmp/`, held by this process (see the module
/// docs) and removed when dropped unless [`ScratchDir::keep`] was called.
#[derive(Debug)]
pub struct ScratchDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    _held: File,
}

impl ScratchDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops removing the directory on drop (it stays held until dropped): for a
    /// directory renamed elsewhere, or removed by the caller.
    pub fn keep(mut self) -> Self {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        self
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if super::unpack::remove_tree(dir.path()).is_ok() {
                let _ = dir.keep();
            }
        }
    }
}

/// What [`Store::reclaim_leftovers`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// The entries of `tmp/` removed (file or directory names).
    pub entries: Vec<String>,
}

impl Store {
    fn tmp_lock(&self, exclusive: bool) -> Result<super::index::IndexLock, StoreError> {
        match exclusive {
            true => self.lock_file("tmp.lock"),
            false => self.lock_file_shared("tmp.lock"),
        }
    }

    /// A new temp file under `tmp/`, held by this process until it is persisted or
    /// dropped.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.tmp_dir();
        let _creating = self.tmp_lock(false)?;
        let file = tempfile::NamedTempFile::new_in(&dir)
            .map_err(io_err("creating a temp file in", &dir))?;
        file.as_file()
            .try_lock_exclusive()
            .map_err(io_err("locking", file.path()))?;
        Ok(file)
    }

    /// A new scratch directory `tmp/<prefix>XXXXXX`, held by this process.
    pub fn scratch_dir(&self, prefix: &str) -> Result<ScratchDir, StoreError> {
        let parent = self.tmp_dir();
        let _creating = self.tmp_lock(false)?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&parent)
            .map_err(io_err("creating a temp dir in", &parent))?;
        let held = File::open(dir.path()).map_err(io_err("opening", dir.path()))?;
        held.try_lock_exclusive()
            .map_err(io_err("locking", dir.path()))?;
        Ok(ScratchDir {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
            _held: held,
        })
    }

    /// The entries of `tmp/` no running process holds: leftovers of killed processes.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>, StoreError> {
        let _scan = self.tmp_lock(true)?;
        self.unheld_entries()
    }

    fn unheld_entries(&self) -> Result<Vec<PathBuf>, StoreError> {
        let tmp = self.tmp_dir();
        let mut out = Vec::new();
        let listing = match fs::read_dir(&tmp) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("listing", &tmp)(e)),
        };
        for item in listing {
            let path = item.map_err(io_err("listing", &tmp))?.path();
            // Unopenable entries (e.g. a directory without read permission) are left alone.
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if file.try_lock_exclusive().is_ok() {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes the leftovers of killed processes under `tmp/` (see the module docs);
    /// what builds do when they start and `flense prune` does.
    pub fn reclaim_leftovers(&self) -> Result<Reclaimed, StoreError> {
        let _scan = self.tmp_lock(true)?;
        let mut reclaimed = Reclaimed::default();
        for path in self.unheld_entries()? {
            if path.is_dir() {
                super::unpack::remove_tree(&path)?;
            } else {
                fs::remove_file(&path).map_err(io_err("removing", &path))?;
            }
            let name = path.file_name().unwrap_or_default();
            reclaimed.entries.push(name.to_string_lossy().into_owned());
        }
        Ok(reclaimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaim_removes_only_entries_no_process_holds() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let held_dir = store.scratch_dir("step-").unwrap();
        fs::write(held_dir.path().join("f"), "x").unwrap();
        let held_file = store.temp_file().unwrap();
        // What a killed process leaves: entries nobody holds.
        fs::create_dir_all(store.tmp_dir().join("step-dead/upper")).unwrap();
        fs::write(store.tmp_dir().join(".tmpdead"), "partial").unwrap();

        let gone = store.reclaim_leftovers().unwrap();
        assert_eq!(gone.entries, [".tmpdead", "step-dead"]);
        assert!(held_dir.path().join("f").is_file());
        assert!(held_file.path().is_file());
        assert!(store.leftovers().unwrap().is_empty());

        let path = held_dir.path().to_path_buf();
        drop(held_dir);
        drop(held_file);
        assert!(!path.exists());
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }
}
