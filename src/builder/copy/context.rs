//! The local build context: a snapshot of the context directory after `.dockerignore`
//! filtering, readable as an [`ImageView`] so copies from `local` and copies from other
//! images share one implementation ([`crate::builder::copy`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

#[derive(Debug, Clone)]
struct ContextEntry {
    meta: FileMeta,
    link: Option<PathBuf>,
    /// A regular file's stat, as the walk saw it.
    host: Option<HostStat>,
}

/// Patterns every context ignores before its `.dockerignore`: `flense pipeline`'s
/// default stage-log directory, which is written while stages build, so a `copies:
/// [local]` layer would otherwise change on every run.
pub const DEFAULT_IGNORES: &str = ".pipeline/logs";

/// A build context: the files of a directory that `.dockerignore` lets through.
#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    /// By relative path (hashed: a large context's paths are looked up once each).
    entries: HashMap<PathBuf, ContextEntry>,
    /// Each directory's children, sorted by name.
    children: HashMap<PathBuf, Vec<OsString>>,
    /// sha256 hex of every visible path's stat (see [`Self::fingerprint`]).
    fingerprint: String,
}

/// Each directory's children among `entries`, sorted by name.
fn children_of(entries: &HashMap<PathBuf, ContextEntry>) -> HashMap<PathBuf, Vec<OsString>> {
    let mut children: HashMap<PathBuf, Vec<OsString>> = HashMap::new();
    for path in entries.keys() {
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            children
                .entry(parent.to_path_buf())
                .or_default()
                .push(name.to_os_string());
        }
    }
    for names in children.values_mut() {
        names.sort_unstable();
    }
    children
}

/// Adds one visible path to a context's fingerprint.
fn fingerprint_entry(h: &mut Sha256, rel: &Path, meta: &fs::Metadata, link: Option<&Path>) {
    h.update(rel.as_os_str().as_bytes());
    h.update([0]);
    for n in [
        u64::from(meta.mode()),
        u64::from(meta.uid()),
        u64::from(meta.gid()),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ino(),
    ] {
        h.update(n.to_le_bytes());
    }
    if let Some(link) = link {
        h.update(link.as_os_str().as_bytes());
    }
    h.update([0]);
}

/// A path the walk found in the context (relative to its root), with its lstat and,
/// for a symlink, its target.
struct Found {
    rel: PathBuf,
    meta: fs::Metadata,
    link: Option<PathBuf>,
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
fn walk(root: &Path, ignore: &PatternMatcher) -> Result<Vec<Found>, ContextError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    let queue = WalkQueue::default();
    queue.lock().dirs.push(PathBuf::new());
    let found = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while let Some(dir) = queue.take() {
                        queue.done(read_dir_entries(root, &dir, ignore, &mut mine));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect::<Vec<_>>()
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
    out: &mut Vec<Found>,
) -> Result<Vec<PathBuf>, ContextError> {
    let host = root.join(dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextError::Io { path, source }
    };
    let mut subdirs = Vec::new();
    for item in fs::read_dir(&host).map_err(io(&host))? {
        let item = item.map_err(io(&host))?;
        let rel = dir.join(item.file_name());
        let meta = item.metadata().map_err(io(&item.path()))?;
        let rel_text = rel.to_string_lossy();
        let excluded = ignore.matches(&rel_text);
        if meta.is_dir() {
            if excluded && !ignore.may_include_below(&rel_text) {
                continue;
            }
            subdirs.push(rel.clone());
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
        out.push(Found { rel, meta, link });
    }
    Ok(subdirs)
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
        let mut entries = HashMap::new();
        let mut fingerprint = Sha256::new();
        fingerprint_entry(&mut fingerprint, Path::new(""), &root_meta, None);
        entries.insert(
            PathBuf::new(),
            ContextEntry {
                meta: FileMeta::from(&root_meta),
                link: None,
                host: None,
            },
        );
        let mut found = walk(root, ignore)?;
        // Byte order of the relative paths: the fingerprint must not depend on which
        // thread found what.
        found.sort_unstable_by(|a, b| {
            a.rel
                .as_os_str()
                .as_bytes()
                .cmp(b.rel.as_os_str().as_bytes())
        });
        for Found { rel, meta, link } in found {
            // Parents of an exception inside an excluded directory come along.
            for anc in rel.ancestors().skip(1) {
                if entries.contains_key(anc) {
                    break;
                }
                let m =
                    fs::symlink_metadata(root.join(anc)).map_err(|source| ContextError::Io {
                        path: root.join(anc),
                        source,
                    })?;
                fingerprint_entry(&mut fingerprint, anc, &m, None);
                entries.insert(
                    anc.to_path_buf(),
                    ContextEntry {
                        meta: FileMeta::from(&m),
                        link: None,
                        host: None,
                    },
                );
            }
            fingerprint_entry(&mut fingerprint, &rel, &meta, link.as_deref());
            entries.insert(
                rel,
                ContextEntry {
                    meta: FileMeta::from(&meta),
                    link,
                    host: meta.file_type().is_file().then(|| HostStat::of(&meta)),
                },
            );
        }
        Ok(Self {
            root: root.to_path_buf(),
            children: children_of(&entries),
            entries,
            fingerprint: hex::encode(fingerprint.finalize()),
        })
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

impl ImageView for BuildContext {
    fn stat(&self, path: &Path) -> Option<FileMeta> {
        self.entries.get(&image_relative(path)).map(|e| e.meta)
    }

    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let rel = image_relative(path);
        let e = self.entries.get(&rel)?;
        (e.meta.kind == FileKind::File)
            .then(|| fs::read(self.root.join(&rel)).ok())
            .flatten()
    }

    fn list(&self, path: &Path) -> Vec<String> {
        let rel = image_relative(path);
        if self.entries.get(&rel).map(|e| e.meta.kind) != Some(FileKind::Dir) {
            return Vec::new();
        }
        self.children
            .get(&rel)
            .map(|names| {
                names
                    .iter()
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn host_path(&self, path: &Path) -> Option<PathBuf> {
        let rel = image_relative(path);
        let e = self.entries.get(&rel)?;
        (e.meta.kind == FileKind::File).then(|| self.root.join(rel))
    }

    fn read_link(&self, path: &Path) -> Option<PathBuf> {
        self.entries.get(&image_relative(path))?.link.clone()
    }

    fn host_stat(&self, host_path: &Path) -> Option<HostStat> {
        self.entries
            .get(host_path.strip_prefix(&self.root).ok()?)?
            .host
    }
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
    fn bad_dockerignore_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(".dockerignore"), "!\n").unwrap();
        let err = BuildContext::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains(".dockerignore"), "{err}");
    }
}
