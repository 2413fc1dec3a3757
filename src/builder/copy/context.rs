//! The local build context: a snapshot of the context directory after `.dockerignore`
//! filtering, readable as an [`ImageView`] so copies from `local` and copies from other
//! images share one implementation ([`crate::builder::copy`]).

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::builder::copy::ignore::{IgnoreError, PatternMatcher};
use crate::builder::layers::image_relative;
use crate::builder::layers::view::{FileKind, FileMeta, HostStat, ImageView};

/// Errors reading the build context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context directory cannot be read.
    #[error("build context {}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A bad pattern in `.dockerignore`.
    #[error("{}", path.display())]
    Ignore {
        /// The `.dockerignore` file.
        path: PathBuf,
        /// The pattern error.
        source: IgnoreError,
    },
}

/// What the context keeps of a path's lstat: enough for its [`FileMeta`], its
/// [`HostStat`] and its part of the fingerprint (48 bytes, not a `fs::Metadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    /// `st_mode`, file type bits included.
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
}

impl Stat {
    fn of(meta: &fs::Metadata) -> Self {
        Stat {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ino: meta.ino(),
        }
    }

    fn kind(&self) -> FileKind {
        match self.mode & 0o170000 {
            0o040000 => FileKind::Dir,
            0o100000 => FileKind::File,
            0o120000 => FileKind::Symlink,
            _ => FileKind::Other,
        }
    }

    /// The same as `FileMeta::from(&metadata)`.
    fn meta(&self) -> FileMeta {
        FileMeta {
            kind: self.kind(),
            mode: self.mode & 0o7777,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime.max(0) as u64,
        }
    }

    /// The same as `HostStat::of(&metadata)`.
    fn host(&self) -> HostStat {
        HostStat {
            size: self.size,
            mtime_ns: i128::from(self.mtime) * 1_000_000_000 + i128::from(self.mtime_nsec),
            inode: self.ino,
        }
    }
}

/// `Entry::link` of a path that is not a symlink with a readable target.
const NO_LINK: u32 = u32::MAX;

/// One visible path of the context. Paths live in one byte arena; children and link
/// targets are indices, so a path costs its bytes once plus this record.
#[derive(Debug, Clone)]
struct Entry {
    /// The relative path is `paths[path..path + len]` (`/`-separated, no leading `/`).
    path: usize,
    len: u32,
    /// The children are `children[first..first + count]`, sorted by name.
    first: u32,
    count: u32,
    /// Index of the symlink target in `links`, or [`NO_LINK`].
    link: u32,
    stat: Stat,
}

impl Entry {
    fn new(path: usize, len: usize, stat: Stat, link: u32) -> Self {
        Entry {
            path,
            len: len as u32,
            first: 0,
            count: 0,
            link,
            stat,
        }
    }

    fn bytes<'p>(&self, paths: &'p [u8]) -> &'p [u8] {
        &paths[self.path..self.path + self.len as usize]
    }
}

/// Patterns every context ignores before its `.dockerignore`: `flense pipeline`'s
/// default stage-log directory, which is written while stages build, so a `copies:
/// [local]` layer would otherwise change on every run.
pub const DEFAULT_IGNORES: &str = ".pipeline/logs";

/// A build context: the files of a directory that `.dockerignore` lets through.
///
/// Compact for large contexts: every relative path is stored once in one byte arena,
/// the entries are a vector sorted by path bytes (looked up by binary search on the
/// bytes of a path, not by hashing its components) and each directory's children are
/// a range of one index vector.
#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    /// The bytes of every entry's relative path.
    paths: Vec<u8>,
    /// Sorted by path bytes; the first is the root (the empty path).
    entries: Vec<Entry>,
    /// Children of the directories, as indices into `entries`, grouped by parent.
    children: Vec<u32>,
    /// Targets of the symlinks.
    links: Vec<PathBuf>,
    /// sha256 hex of every visible path's stat (see [`Self::fingerprint`]).
    fingerprint: String,
    /// The index of the last entry looked up: a copy asks for each path a few times
    /// and for the paths in order, so the next lookup is mostly that entry or the next.
    last: LastLookup,
}

/// [`BuildContext::last`]: a guess, shared by threads without a lock.
#[derive(Debug, Default)]
struct LastLookup(AtomicUsize);

impl Clone for LastLookup {
    fn clone(&self) -> Self {
        LastLookup(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

/// Adds one visible path to a context's fingerprint.
fn fingerprint_entry(h: &mut Sha256, rel: &[u8], stat: &Stat, link: Option<&Path>) {
    h.update(rel);
    h.update([0]);
    for n in [
        u64::from(stat.mode),
        u64::from(stat.uid),
        u64::from(stat.gid),
        stat.size,
        stat.mtime as u64,
        stat.mtime_nsec as u64,
        stat.ino,
    ] {
        h.update(n.to_le_bytes());
    }
    if let Some(link) = link {
        h.update(link.as_os_str().as_bytes());
    }
    h.update([0]);
}

/// What (part of) a walk found: paths in one arena, their stats, symlink targets.
#[derive(Default)]
struct Walked {
    paths: Vec<u8>,
    found: Vec<Entry>,
    links: Vec<PathBuf>,
}

impl Walked {
    fn push(&mut self, rel: &[u8], stat: Stat, link: Option<PathBuf>) {
        let link = match link {
            Some(target) => {
                self.links.push(target);
                (self.links.len() - 1) as u32
            }
            None => NO_LINK,
        };
        self.found
            .push(Entry::new(self.paths.len(), rel.len(), stat, link));
        self.paths.extend_from_slice(rel);
    }

    /// Takes in what another thread found.
    fn append(&mut self, other: Walked) {
        let (base, links) = (self.paths.len(), self.links.len() as u32);
        self.paths.extend_from_slice(&other.paths);
        self.links.extend(other.links);
        self.found.extend(other.found.into_iter().map(|mut e| {
            e.path += base;
            if e.link != NO_LINK {
                e.link += links;
            }
            e
        }));
    }
}

/// Directories waiting to be read, how many are being read, and the first failure.
#[derive(Default)]
struct WalkState {
    dirs: Vec<PathBuf>,
    busy: usize,
    failed: Option<ContextError>,
}

/// The directories of a walk shared by its threads.
#[derive(Default)]
struct WalkQueue {
    state: std::sync::Mutex<WalkState>,
    wake: std::sync::Condvar,
}

impl WalkQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, WalkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next directory to read; `None` once every directory is read or one failed.
    fn take(&self) -> Option<PathBuf> {
        let mut state = self.lock();
        loop {
            if state.failed.is_some() {
                return None;
            }
            if let Some(dir) = state.dirs.pop() {
                state.busy += 1;
                return Some(dir);
            }
            if state.busy == 0 {
                return None;
            }
            state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A taken directory is read: its subdirectories are queued (or the walk failed).
    fn done(&self, result: Result<Vec<PathBuf>, ContextError>) {
        let mut state = self.lock();
        state.busy -= 1;
        match result {
            Ok(subdirs) => state.dirs.extend(subdirs),
            Err(e) => state.failed = Some(e),
        }
        self.wake.notify_all();
    }
}

/// Every path below `root` that `ignore` lets through (and the excluded directories
/// walked only for their exceptions, which are not listed), unordered. Directories are
/// read by a few threads: a large context's walk is one stat per path, which is what a
/// no-op rebuild costs.
fn walk(root: &Path, ignore: &PatternMatcher) -> Result<Walked, ContextError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    let queue = WalkQueue::default();
    queue.lock().dirs.push(PathBuf::new());
    let found = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Walked::default();
                    while let Some(dir) = queue.take() {
                        queue.done(read_dir_entries(root, &dir, ignore, &mut mine));
                    }
                    mine
                })
            })
            .collect();
        let parts: Vec<Walked> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect();
        // Sized once: a large context's vectors grown by doubling would be up to twice
        // what they hold (and the root and a few parents are added to them later).
        let mut all = Walked {
            paths: Vec::with_capacity(parts.iter().map(|w| w.paths.len()).sum()),
            found: Vec::with_capacity(parts.iter().map(|w| w.found.len()).sum::<usize>() + 8),
            links: Vec::new(),
        };
        for w in parts {
            all.append(w);
        }
        all
    });
    match queue
        .state
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .failed
    {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// Reads the context directory `dir` (relative to `root`): adds what `ignore` lets
/// through to `out` and returns the subdirectories to read.
fn read_dir_entries(
    root: &Path,
    dir: &Path,
    ignore: &PatternMatcher,
    out: &mut Walked,
) -> Result<Vec<PathBuf>, ContextError> {
    let host = root.join(dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextError::Io { path, source }
    };
    let mut subdirs = Vec::new();
    let mut rel = Vec::new();
    for item in fs::read_dir(&host).map_err(io(&host))? {
        let item = item.map_err(io(&host))?;
        rel.clear();
        if !dir.as_os_str().is_empty() {
            rel.extend_from_slice(dir.as_os_str().as_bytes());
            rel.push(b'/');
        }
        rel.extend_from_slice(item.file_name().as_bytes());
        let meta = item.metadata().map_err(io(&item.path()))?;
        let rel_text = String::from_utf8_lossy(&rel);
        let excluded = ignore.matches(&rel_text);
        if meta.is_dir() {
            if excluded && !ignore.may_include_below(&rel_text) {
                continue;
            }
            subdirs.push(PathBuf::from(OsStr::from_bytes(&rel)));
            if excluded {
                continue; // walked only for its exceptions
            }
        } else if excluded {
            continue;
        }
        let link = meta
            .file_type()
            .is_symlink()
            .then(|| fs::read_link(item.path()).ok())
            .flatten();
        out.push(&rel, Stat::of(&meta), link);
    }
    Ok(subdirs)
}

/// The parent of a relative path's bytes (`""` for a top-level name).
fn parent_of(rel: &[u8]) -> &[u8] {
    rel.iter()
        .rposition(|&b| b == b'/')
        .map_or(&rel[..0], |i| &rel[..i])
}

/// The bytes of `path` relative to the image root, normalised as
/// [`image_relative`] does (borrowed when `path` already is in that form).
fn relative_bytes(path: &Path) -> Cow<'_, [u8]> {
    let bytes = path.as_os_str().as_bytes();
    let start = bytes.iter().position(|&b| b != b'/').unwrap_or(bytes.len());
    let rel = &bytes[start..];
    let plain = rel.is_empty()
        || rel
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..");
    if plain {
        Cow::Borrowed(rel)
    } else {
        Cow::Owned(image_relative(path).into_os_string().into_vec())
    }
}

impl BuildContext {
    /// Reads the context at `root`, applying [`DEFAULT_IGNORES`] and then
    /// `root/.dockerignore` when it exists (so `!.pipeline/logs` there re-includes).
    pub fn open(root: &Path) -> Result<Self, ContextError> {
        let ignore_path = root.join(".dockerignore");
        let ignore = match fs::read_to_string(&ignore_path) {
            Ok(text) => PatternMatcher::from_dockerignore(&format!("{DEFAULT_IGNORES}\n{text}"))
                .map_err(|source| ContextError::Ignore {
                    path: ignore_path.clone(),
                    source,
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                PatternMatcher::from_dockerignore(DEFAULT_IGNORES)
                    .expect("the default ignore patterns are valid")
            }
            Err(source) => {
                return Err(ContextError::Io {
                    path: ignore_path,
                    source,
                })
            }
        };
        Self::open_with(root, &ignore)
    }

    /// Reads the context at `root` with the given ignore patterns.
    pub fn open_with(root: &Path, ignore: &PatternMatcher) -> Result<Self, ContextError> {
        let root_meta = fs::metadata(root).map_err(|source| ContextError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let Walked {
            mut paths,
            found: mut entries,
            links,
        } = walk(root, ignore)?;
        // Byte order of the relative paths: the fingerprint must not depend on which
        // thread found what.
        entries.sort_unstable_by(|a, b| a.bytes(&paths).cmp(b.bytes(&paths)));
        let (fingerprint, parents) = fingerprint(root, &root_meta, &paths, &entries, &links)?;
        entries.push(Entry::new(0, 0, Stat::of(&root_meta), NO_LINK));
        for (rel, stat) in parents {
            entries.push(Entry::new(paths.len(), rel.len(), stat, NO_LINK));
            paths.extend_from_slice(&rel);
        }
        entries.sort_unstable_by(|a, b| a.bytes(&paths).cmp(b.bytes(&paths)));
        entries.shrink_to_fit();
        paths.shrink_to_fit();
        let mut ctx = Self {
            root: root.to_path_buf(),
            paths,
            entries,
            children: Vec::new(),
            links,
            fingerprint,
            last: LastLookup::default(),
        };
        ctx.link_children();
        Ok(ctx)
    }

    /// Fills in every directory's children (the entries are sorted by path bytes, so
    /// each directory's children come in name order).
    fn link_children(&mut self) {
        let parents: Vec<u32> = self.entries[1..]
            .iter()
            .map(|e| {
                let parent = parent_of(e.bytes(&self.paths));
                self.index_of(parent).unwrap_or(0) as u32
            })
            .collect();
        for &p in &parents {
            self.entries[p as usize].count += 1;
        }
        let mut next = 0u32;
        for e in &mut self.entries {
            e.first = next;
            next += e.count;
        }
        let mut filled: Vec<u32> = self.entries.iter().map(|e| e.first).collect();
        self.children = vec![0; parents.len()];
        for (i, &p) in parents.iter().enumerate() {
            let slot = &mut filled[p as usize];
            self.children[*slot as usize] = i as u32 + 1;
            *slot += 1;
        }
    }

    /// The index of the entry whose relative path is `rel`.
    fn index_of(&self, rel: &[u8]) -> Option<usize> {
        let last = self.last.0.load(Ordering::Relaxed);
        let at = |i: usize| {
            self.entries
                .get(i)
                .is_some_and(|e| e.bytes(&self.paths) == rel)
        };
        let i = match (at(last), at(last + 1)) {
            (true, _) => last,
            (false, true) => last + 1,
            (false, false) => self
                .entries
                .binary_search_by(|e| e.bytes(&self.paths).cmp(rel))
                .ok()?,
        };
        self.last.0.store(i, Ordering::Relaxed);
        Some(i)
    }

    /// The entry of image path `path`.
    fn entry(&self, path: &Path) -> Option<&Entry> {
        self.index_of(&relative_bytes(path))
            .map(|i| &self.entries[i])
    }

    /// The host path of an entry.
    fn host_of(&self, e: &Entry) -> PathBuf {
        self.root.join(OsStr::from_bytes(e.bytes(&self.paths)))
    }

    /// A digest of what the context holds as far as a stat walk sees: every visible
    /// path with its kind, mode, owner, size, mtime, inode and link target. Equal
    /// fingerprints mean equal contents under the stat cache's assumption (a file whose
    /// size, mtime and inode are unchanged has unchanged content).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of paths visible in the context (directories included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the context has nothing but its root.
    pub fn is_empty(&self) -> bool {
        self.entries.len() <= 1
    }
}

/// The fingerprint of a walk's `found` entries (sorted by path bytes) and the parents
/// that must come along with them: the directories of an exception inside an excluded
/// directory, which the walk does not list. Each missing parent is hashed right before
/// the first entry below it, nearest first (the order the fingerprint always had).
#[allow(clippy::type_complexity)]
fn fingerprint(
    root: &Path,
    root_meta: &fs::Metadata,
    paths: &[u8],
    found: &[Entry],
    links: &[PathBuf],
) -> Result<(String, Vec<(Vec<u8>, Stat)>), ContextError> {
    let mut h = Sha256::new();
    fingerprint_entry(&mut h, b"", &Stat::of(root_meta), None);
    let mut added: Vec<(Vec<u8>, Stat)> = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let known = |rel: &[u8], seen: &HashSet<Vec<u8>>| {
        rel.is_empty()
            || seen.contains(rel)
            || found.binary_search_by(|e| e.bytes(paths).cmp(rel)).is_ok()
    };
    for e in found {
        let rel = e.bytes(paths);
        let mut anc = parent_of(rel);
        while !known(anc, &seen) {
            let host = root.join(OsStr::from_bytes(anc));
            let m = fs::symlink_metadata(&host)
                .map_err(|source| ContextError::Io { path: host, source })?;
            let stat = Stat::of(&m);
            fingerprint_entry(&mut h, anc, &stat, None);
            seen.insert(anc.to_vec());
            added.push((anc.to_vec(), stat));
            anc = parent_of(anc);
        }
        let link = (e.link != NO_LINK).then(|| links[e.link as usize].as_path());
        fingerprint_entry(&mut h, rel, &e.stat, link);
    }
    Ok((hex::encode(h.finalize()), added))
}

impl ImageView for BuildContext {
    fn stat(&self, path: &Path) -> Option<FileMeta> {
        self.entry(path).map(|e| e.stat.meta())
    }

    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let e = self.entry(path)?;
        (e.stat.kind() == FileKind::File)
            .then(|| fs::read(self.host_of(e)).ok())
            .flatten()
    }

    fn list(&self, path: &Path) -> Vec<String> {
        let Some(e) = self.entry(path).filter(|e| e.stat.kind() == FileKind::Dir) else {
            return Vec::new();
        };
        let (first, count) = (e.first as usize, e.count as usize);
        self.children[first..first + count]
            .iter()
            .map(|&c| {
                let child = self.entries[c as usize].bytes(&self.paths);
                let name = &child[child.len() - child_name_len(child)..];
                String::from_utf8_lossy(name).into_owned()
            })
            .collect()
    }

    fn host_path(&self, path: &Path) -> Option<PathBuf> {
        let e = self.entry(path)?;
        (e.stat.kind() == FileKind::File).then(|| self.host_of(e))
    }

    fn read_link(&self, path: &Path) -> Option<PathBuf> {
        let e = self.entry(path)?;
        (e.link != NO_LINK).then(|| self.links[e.link as usize].clone())
    }

    fn host_stat(&self, host_path: &Path) -> Option<HostStat> {
        let (root, host) = (
            self.root.as_os_str().as_bytes(),
            host_path.as_os_str().as_bytes(),
        );
        let e = match host.strip_prefix(root).and_then(|r| r.strip_prefix(b"/")) {
            Some(rel) if !root.ends_with(b"/") => self.entry(Path::new(OsStr::from_bytes(rel))),
            _ => self.entry(host_path.strip_prefix(&self.root).ok()?),
        }?;
        (e.stat.kind() == FileKind::File).then(|| e.stat.host())
    }
}

/// The length of the last component of a relative path's bytes.
fn child_name_len(rel: &[u8]) -> usize {
    rel.len() - rel.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn dockerignore_filters_and_exceptions_keep_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("node_modules/x")).unwrap();
        fs::create_dir_all(r.join("docs/sub")).unwrap();
        fs::create_dir_all(r.join("src")).unwrap();
        fs::write(r.join("node_modules/x/i.js"), "x").unwrap();
        fs::write(r.join("docs/a.md"), "a").unwrap();
        fs::write(r.join("docs/sub/keep.md"), "k").unwrap();
        fs::write(r.join("src/index.js"), "i").unwrap();
        fs::write(
            r.join(".dockerignore"),
            "node_modules\ndocs\n!docs/sub/keep.md\n",
        )
        .unwrap();
        let ctx = BuildContext::open(r).unwrap();
        assert!(ctx.stat(Path::new("node_modules")).is_none());
        assert!(ctx.stat(Path::new("docs/a.md")).is_none());
        assert!(ctx.stat(Path::new("docs/sub/keep.md")).is_some());
        assert_eq!(ctx.list(Path::new("docs")), vec!["sub"]);
        assert_eq!(
            ctx.list(Path::new("/")),
            vec![".dockerignore", "docs", "src"]
        );
        assert_eq!(ctx.read(Path::new("src/index.js")).unwrap(), b"i");
    }

    #[test]
    fn pipeline_logs_are_ignored_unless_re_included() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join(".pipeline/logs")).unwrap();
        fs::write(r.join(".pipeline/blubber.yaml"), "v").unwrap();
        fs::write(r.join(".pipeline/logs/p.test.log"), "l").unwrap();
        let ctx = BuildContext::open(r).unwrap();
        assert_eq!(ctx.list(Path::new(".pipeline")), vec!["blubber.yaml"]);
        fs::write(r.join(".dockerignore"), "node_modules\n").unwrap();
        let ctx = BuildContext::open(r).unwrap();
        assert!(ctx.stat(Path::new(".pipeline/logs")).is_none());
        fs::write(r.join(".dockerignore"), "!.pipeline/logs\n").unwrap();
        let ctx = BuildContext::open(r).unwrap();
        assert!(ctx.stat(Path::new(".pipeline/logs/p.test.log")).is_some());
    }

    #[test]
    fn the_fingerprint_follows_what_a_stat_walk_sees() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::write(r.join("a.txt"), "a").unwrap();
        fs::write(r.join("x.log"), "x").unwrap();
        fs::write(r.join(".dockerignore"), "*.log\n").unwrap();
        let first = BuildContext::open(r).unwrap().fingerprint().to_string();
        assert_eq!(BuildContext::open(r).unwrap().fingerprint(), first);
        fs::write(r.join("x.log"), "ignored change").unwrap();
        assert_eq!(BuildContext::open(r).unwrap().fingerprint(), first);
        fs::write(r.join("a.txt"), "b").unwrap();
        let second = BuildContext::open(r).unwrap().fingerprint().to_string();
        assert_ne!(second, first, "a same-size rewrite changes the mtime");
        fs::set_permissions(r.join("a.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(BuildContext::open(r).unwrap().fingerprint(), second);
    }

    #[test]
    fn lookups_take_any_spelling_of_an_image_path() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::write(r.join("a/b/f"), "f").unwrap();
        let ctx = BuildContext::open(r).unwrap();
        for p in [
            "a/b/f",
            "/a/b/f",
            "//a//b/f",
            "a/./b/f",
            "a/b/../b/f",
            "/../a/b/f",
        ] {
            assert_eq!(ctx.stat(Path::new(p)).unwrap().kind, FileKind::File, "{p}");
            assert_eq!(ctx.read(Path::new(p)).unwrap(), b"f", "{p}");
        }
        for p in ["a/b/", "a/b/.", "/a/b"] {
            assert_eq!(ctx.stat(Path::new(p)).unwrap().kind, FileKind::Dir, "{p}");
            assert_eq!(ctx.list(Path::new(p)), vec!["f"], "{p}");
        }
        for p in ["", "/", ".", "a/.."] {
            assert_eq!(ctx.stat(Path::new(p)).unwrap().kind, FileKind::Dir, "{p}");
        }
        assert!(ctx.stat(Path::new("a/b/g")).is_none());
        assert!(ctx.stat(Path::new("a/bf")).is_none());
        assert!(
            ctx.list(Path::new("a/b/f")).is_empty(),
            "a file has no children"
        );
        let host = ctx.host_path(Path::new("/a/b/f")).unwrap();
        assert_eq!(host, r.join("a/b/f"));
        let meta = fs::metadata(&host).unwrap();
        assert_eq!(ctx.host_stat(&host), Some(HostStat::of(&meta)));
        assert_eq!(
            ctx.host_stat(&r.join("a/b")),
            None,
            "directories have no host stat"
        );
        assert_eq!(ctx.host_stat(Path::new("/elsewhere/a/b/f")), None);
        assert!(ctx.host_path(Path::new("a/b")).is_none());
    }

    #[test]
    fn children_are_listed_in_byte_order_of_their_names() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        // Byte order of whole paths puts "a-b" and "a.b" between "a" and "a/…":
        // each directory's children must still come out sorted, and complete.
        for d in ["a/b", "a-b", "a.b", "B", "a0"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "a/b/z", "a/b/y", "a/c", "a/C", "a-b/x", "a.b/w", "a/b-c", "a/b.c",
        ] {
            fs::write(r.join(f), "x").unwrap();
        }
        let ctx = BuildContext::open(r).unwrap();
        assert_eq!(ctx.list(Path::new("/")), vec!["B", "a", "a-b", "a.b", "a0"]);
        assert_eq!(ctx.list(Path::new("a")), vec!["C", "b", "b-c", "b.c", "c"]);
        assert_eq!(ctx.list(Path::new("a/b")), vec!["y", "z"]);
        assert_eq!(ctx.list(Path::new("a-b")), vec!["x"]);
        assert_eq!(ctx.list(Path::new("a0")), Vec::<String>::new());
        assert_eq!(ctx.len(), 1 + 6 + 8);
        assert!(!ctx.is_empty());
    }

    #[test]
    fn exceptions_bring_every_missing_parent_once() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("x/y/z")).unwrap();
        fs::write(r.join("x/y/z/k1"), "1").unwrap();
        fs::write(r.join("x/y/z/k2"), "2").unwrap();
        fs::write(r.join("x/y/other"), "o").unwrap();
        fs::write(r.join(".dockerignore"), "x\n!x/y/z/k*\n").unwrap();
        let ctx = BuildContext::open(r).unwrap();
        assert_eq!(ctx.list(Path::new("/")), vec![".dockerignore", "x"]);
        assert_eq!(ctx.list(Path::new("x")), vec!["y"]);
        assert_eq!(ctx.list(Path::new("x/y")), vec!["z"]);
        assert_eq!(ctx.list(Path::new("x/y/z")), vec!["k1", "k2"]);
        assert_eq!(ctx.stat(Path::new("x/y")).unwrap().kind, FileKind::Dir);
        assert!(ctx.stat(Path::new("x/y/other")).is_none());
        // Root, .dockerignore, x, x/y, x/y/z and the two exceptions.
        assert_eq!(ctx.len(), 7);
    }

    #[test]
    fn names_with_any_bytes_and_symlinks() {
        use std::ffi::OsStr;
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let odd = OsStr::from_bytes(b"d\xff");
        fs::create_dir_all(r.join(odd)).unwrap();
        fs::write(r.join(odd).join("in"), "i").unwrap();
        fs::write(r.join("new\nline"), "n").unwrap();
        std::os::unix::fs::symlink("new\nline", r.join("link")).unwrap();
        let ctx = BuildContext::open(r).unwrap();
        // Names are listed as text (lossily): the raw bytes still find the entries.
        assert_eq!(
            ctx.list(Path::new("/")),
            vec!["d\u{fffd}", "link", "new\nline"]
        );
        assert_eq!(ctx.list(Path::new(odd)), vec!["in"]);
        assert_eq!(ctx.read(&Path::new(odd).join("in")).unwrap(), b"i");
        assert_eq!(ctx.read(Path::new("/new\nline")).unwrap(), b"n");
        assert_eq!(ctx.stat(Path::new("link")).unwrap().kind, FileKind::Symlink);
        assert_eq!(
            ctx.read_link(Path::new("link")).unwrap(),
            Path::new("new\nline")
        );
        assert!(ctx.read_link(Path::new("new\nline")).is_none());
        assert!(ctx.host_path(Path::new("link")).is_none());
    }

    #[test]
    fn lookups_in_any_order_find_each_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        for i in 0..5 {
            fs::create_dir_all(r.join(format!("d{i}"))).unwrap();
            for j in 0..5 {
                fs::write(r.join(format!("d{i}/f{j}")), format!("{i}{j}")).unwrap();
            }
        }
        let ctx = BuildContext::open(r).unwrap();
        let mut all: Vec<String> = Vec::new();
        for d in ctx.list(Path::new("/")) {
            all.push(d.clone());
            all.extend(ctx.list(Path::new(&d)).iter().map(|f| format!("{d}/{f}")));
        }
        assert_eq!(all.len(), 30);
        let order: Vec<&String> = all
            .iter()
            .chain(all.iter().rev())
            .chain(all.iter().step_by(7))
            .collect();
        for p in order {
            let kind = ctx.stat(Path::new(p)).unwrap().kind;
            assert_eq!(kind == FileKind::Dir, !p.contains('/'), "{p}");
            assert!(ctx.stat(Path::new(&format!("{p}x"))).is_none(), "{p}x");
            if kind == FileKind::File {
                let want = p.replace(['d', 'f', '/'], "");
                assert_eq!(ctx.read(Path::new(p)).unwrap(), want.as_bytes(), "{p}");
            }
        }
    }

    #[test]
    fn bad_dockerignore_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(".dockerignore"), "!\n").unwrap();
        let err = BuildContext::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains(".dockerignore"), "{err}");
    }
}
