//! A set of layer entries being assembled against an image view: later writes of a path
//! replace earlier ones, and every entry's parent directories are included with the
//! metadata they have in the image (an overlay upper directory's attributes win, so a
//! parent written with default metadata would change the image).

use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};

use hashbrown::HashTable;

use crate::image::layer::path_order_key;
use crate::image::{Content, EntryKind, LayerEntry};

use crate::builder::layers::image_relative;
use crate::builder::layers::view::{FileKind, FileMeta, ImageView};

/// Collects layer entries by image path; later writes of a path replace earlier ones.
pub struct EntrySet<'a> {
    view: &'a dyn ImageView,
    /// In the order first written; `None` where an entry was removed. Sorted once at
    /// the end (ordering paths component by component as they come is what made
    /// assembling a large context's copy slow), which a copy's walk makes a check.
    entries: Vec<Option<LayerEntry>>,
    /// The index in `entries` of each path, hashed and compared as a `Path` (as a
    /// `HashMap<PathBuf, _>` would, without a second copy of every path).
    index: HashTable<usize>,
    hasher: RandomState,
    epoch: u64,
}

impl<'a> EntrySet<'a> {
    /// An empty set over `view`; `epoch` is the mtime of entries that did not exist.
    pub fn new(view: &'a dyn ImageView, epoch: u64) -> Self {
        Self {
            view,
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::new(),
            epoch,
        }
    }

    /// The index in `entries` of the entry at `rel`.
    fn find(&self, rel: &Path) -> Option<usize> {
        let entries = &self.entries;
        let is_at = |&i: &usize| entries[i].as_ref().is_some_and(|e| e.path == rel);
        self.index.find(self.hasher.hash_one(rel), is_at).copied()
    }

    /// The image view the set is assembled against.
    pub fn view(&self) -> &'a dyn ImageView {
        self.view
    }

    /// The mtime used for new entries.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The entries, sorted by path (component by component, see [`path_order_key`]).
    pub fn into_entries(self) -> Vec<LayerEntry> {
        drop(self.index);
        let mut entries: Vec<LayerEntry> = self.entries.into_iter().flatten().collect();
        let ordered = entries
            .windows(2)
            .all(|w| order_key_cmp(&w[0].path, &w[1].path).is_lt());
        if !ordered {
            entries.sort_by_cached_key(|e| path_order_key(&e.path));
        }
        // The vector grew by doubling (and lost removed entries): up to twice the size.
        entries.shrink_to_fit();
        entries
    }

    /// Metadata of `rel` as it will be after this layer: the set's entry, else the image's.
    pub fn stat(&self, rel: &Path) -> Option<FileMeta> {
        if let Some(e) = self.find(rel).and_then(|i| self.entries[i].as_ref()) {
            let kind = match e.kind {
                EntryKind::Dir => FileKind::Dir,
                EntryKind::File(_) => FileKind::File,
                EntryKind::Symlink(_) => FileKind::Symlink,
                _ => FileKind::Other,
            };
            return Some(FileMeta {
                kind,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                mtime: e.mtime,
            });
        }
        self.view.stat(rel)
    }

    /// Adds every missing ancestor of `rel` as it exists in the image, or as a new
    /// directory (0755, owned by `uid:gid`) when it does not exist.
    pub fn parents(&mut self, rel: &Path, uid: u32, gid: u32) {
        let ancestors: Vec<PathBuf> = rel
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .collect();
        for dir in ancestors.into_iter().rev() {
            if self.find(&dir).is_some() {
                continue;
            }
            match self.view.stat(&dir) {
                Some(meta) if meta.kind == FileKind::Dir => self.put(
                    dir,
                    EntryKind::Dir,
                    meta.mode,
                    meta.uid,
                    meta.gid,
                    meta.mtime,
                ),
                Some(_) => {} // a symlink or file in the way: leave the image as it is
                None => self.put(dir, EntryKind::Dir, 0o755, uid, gid, self.epoch),
            }
        }
    }

    /// Removes the entry at `rel` if the set has one.
    pub fn remove(&mut self, rel: &Path) {
        let entries = &self.entries;
        let is_at = |i: &usize| entries[*i].as_ref().is_some_and(|e| e.path == rel);
        if let Ok(found) = self.index.find_entry(self.hasher.hash_one(rel), is_at) {
            let (i, _) = found.remove();
            self.entries[i] = None;
        }
    }

    /// Adds (or replaces) one entry.
    pub fn put(
        &mut self,
        path: PathBuf,
        kind: EntryKind,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: u64,
    ) {
        let entry = LayerEntry {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
            xattrs: Vec::new(),
        };
        if let Some(i) = self.find(&entry.path) {
            self.entries[i] = Some(entry);
            return;
        }
        let hash = self.hasher.hash_one(&entry.path);
        self.entries.push(Some(entry));
        let (entries, hasher) = (&self.entries, &self.hasher);
        let rehash = |i: &usize| entries[*i].as_ref().map_or(0, |e| hasher.hash_one(&e.path));
        self.index.insert_unique(hash, entries.len() - 1, rehash);
    }

    /// Writes the file at absolute image path `abs`, keeping the mode and owner of the
    /// existing file (else `default_mode`, root-owned).
    pub fn file(&mut self, abs: &str, bytes: Vec<u8>, default_mode: u32) {
        let rel = image_relative(Path::new(abs));
        self.parents(&rel, 0, 0);
        let (mode, uid, gid) = self
            .view
            .stat(&rel)
            .map(|m| (m.mode, m.uid, m.gid))
            .unwrap_or((default_mode, 0, 0));
        let epoch = self.epoch;
        self.put(
            rel,
            EntryKind::File(Content::Bytes(bytes)),
            mode,
            uid,
            gid,
            epoch,
        );
    }

    /// `mkdir -p dir` (new parents root-owned 0755) and, when `chown` is given, the
    /// directory itself gets that owner (keeping its mode when it exists).
    pub fn mkdir_p(&mut self, dir: &Path, chown: Option<(u32, u32)>) {
        let rel = image_relative(dir);
        if rel.as_os_str().is_empty() {
            return;
        }
        self.parents(&rel, 0, 0);
        let existing = self.stat(&rel);
        let (mode, mut uid, mut gid, mtime) = match existing {
            Some(m) if m.kind == FileKind::Dir => (m.mode, m.uid, m.gid, m.mtime),
            _ => (0o755, 0, 0, self.epoch),
        };
        if let Some((u, g)) = chown {
            (uid, gid) = (u, g);
        }
        self.put(rel, EntryKind::Dir, mode, uid, gid, mtime);
    }

    /// Copies the tree at image path `src` (e.g. `/etc/skel`) to `dest`, owned by uid:gid.
    pub fn copy_tree(&mut self, src: &Path, dest: &Path, uid: u32, gid: u32) {
        for name in self.view.list(src) {
            let from = src.join(&name);
            let to = dest.join(&name);
            let Some(meta) = self.view.stat(&from) else {
                continue;
            };
            let epoch = self.epoch;
            match meta.kind {
                FileKind::Dir => {
                    self.put(to.clone(), EntryKind::Dir, meta.mode, uid, gid, epoch);
                    self.copy_tree(&from, &to, uid, gid);
                }
                FileKind::File => {
                    let content = match self.view.host_path(&from) {
                        Some(p) => Content::File(p),
                        None => Content::Bytes(self.view.read(&from).unwrap_or_default()),
                    };
                    self.put(to, EntryKind::File(content), meta.mode, uid, gid, epoch);
                }
                FileKind::Symlink => {
                    if let Some(target) = self.view.read_link(&from) {
                        self.put(to, EntryKind::Symlink(target), 0o777, uid, gid, epoch);
                    }
                }
                FileKind::Other => {}
            }
        }
    }
}

/// Compares two paths as their [`path_order_key`]s compare, without making the keys.
fn order_key_cmp(a: &Path, b: &Path) -> std::cmp::Ordering {
    use std::os::unix::ffi::OsStrExt;
    let key = |b: &u8| if *b == b'/' { 0 } else { *b };
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    a.iter().map(key).cmp(b.iter().map(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_key_sorts_like_paths_component_by_component() {
        let mut paths: Vec<PathBuf> = ["a-b", "a/b", "a", "a/b/c", "a.b", "b", "a/b-c", "a/b/"]
            .iter()
            .map(|p| image_relative(Path::new(p)))
            .collect();
        let mut by_key = paths.clone();
        paths.sort();
        by_key.sort_by_key(|p| path_order_key(p));
        assert_eq!(paths, by_key);
    }

    #[test]
    fn later_writes_replace_removals_forget_and_the_result_is_ordered() {
        let mut set = EntrySet::new(&crate::builder::layers::view::EmptyView, 7);
        let dir = |set: &mut EntrySet<'_>, p: &str, mode: u32| {
            set.put(PathBuf::from(p), EntryKind::Dir, mode, 0, 0, 1);
        };
        // Written out of order, one path twice (spelt two ways), one removed.
        for p in ["b", "a-b", "a/b", "a", "gone", "a/b/c"] {
            dir(&mut set, p, 0o755);
        }
        dir(&mut set, "a/b/", 0o700);
        set.remove(Path::new("gone"));
        set.remove(Path::new("never"));
        assert_eq!(set.stat(Path::new("a/b")).unwrap().mode, 0o700);
        assert!(set.stat(Path::new("gone")).is_none());
        dir(&mut set, "gone", 0o711);
        set.parents(Path::new("new/deep/file"), 5, 6);
        let entries = set.into_entries();
        let paths: Vec<_> = entries.iter().map(|e| e.path.to_str().unwrap()).collect();
        let want = ["a", "a/b/", "a/b/c", "a-b", "b", "gone", "new", "new/deep"];
        assert_eq!(paths, want);
        assert_eq!(entries[1].mode, 0o700);
        assert_eq!(entries[5].mode, 0o711);
        assert_eq!(
            (entries[7].uid, entries[7].gid, entries[7].mtime),
            (5, 6, 7)
        );
    }

    #[test]
    fn entries_written_in_order_stay_in_order() {
        let mut set = EntrySet::new(&crate::builder::layers::view::EmptyView, 0);
        let paths = ["a", "a/b", "a/b/c", "a/b-c", "a-b", "a.b", "b"];
        for p in paths {
            set.put(PathBuf::from(p), EntryKind::Dir, 0o755, 0, 0, 0);
        }
        let got: Vec<_> = set.into_entries().into_iter().map(|e| e.path).collect();
        let want: Vec<_> = paths.iter().map(PathBuf::from).collect();
        assert_eq!(got, want);
        for w in want.windows(2) {
            assert!(order_key_cmp(&w[0], &w[1]).is_lt());
            assert!(path_order_key(&w[0]) < path_order_key(&w[1]));
        }
    }
}
