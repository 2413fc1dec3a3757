//! The build cache: content-derived keys per instruction, a stat cache so unchanged files
//! are not re-hashed, and an index from key to the layer the instruction produced.
//!
//! In the store ([`crate::store`] documents the layout): the stat cache (`size mtime_ns
//! inode sha256 path` per line, like git's index) and one [`CacheRecord`] per key in the
//! index directory, written atomically, with a lock file per key being built.
//!
//! A key is `sha256(parent key, instruction, inputs)`, so a change anywhere upstream
//! changes every key below it, and an unchanged prefix of a plan hits the cache.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sorted_paths::SortedPaths;
use sha2::{Digest, Sha256};

use crate::builder::layers::view::HostStat;
pub use crate::image::cache_manifest::{CacheRecord, CachedLayer};
use crate::image::{Content, EntryKind, LayerEntry};
use crate::store::{CacheDir, Store};

/// Errors of the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing a cache file failed.
    #[error("build cache {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A cache record could not be encoded.
    #[error("build cache record")]
    Json(#[from] serde_json::Error),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A cache key: lower-case sha256 hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheKey(pub String);

impl CacheKey {
    /// The key of a stage's base: the resolved base (manifest digest, or `scratch`) and
    /// the build's SOURCE_DATE_EPOCH, which clamps every mtime of the layers below it
    /// (left out when 0, the default).
    pub fn root(base: &str, epoch: u64) -> Self {
        let epoch = epoch.to_string();
        let mut inputs = vec![base.as_bytes()];
        if epoch != "0" {
            inputs.push(epoch.as_bytes());
        }
        Self::derive(None, "base", &inputs)
    }

    /// The root key of a stage built for a foreign platform: `self` (a [`Self::root`])
    /// and the platform, so that emulated steps never share records with native
    /// ones. Host-platform builds leave it out: their keys are those of builds
    /// without a platform.
    pub fn for_platform(self, platform: Option<&crate::image::platform::Platform>) -> Self {
        match platform {
            Some(p) => Self::derive(Some(&self), "platform", &[p.to_string().as_bytes()]),
            None => self,
        }
    }

    /// The key of an instruction: hash of the parent key, the instruction's canonical
    /// text and the digests of its inputs.
    pub fn derive(parent: Option<&CacheKey>, instruction: &str, inputs: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(b"flense-cache-v1");
        field(parent.map(|p| p.0.as_bytes()).unwrap_or_default());
        field(instruction.as_bytes());
        for input in inputs {
            field(input);
        }
        CacheKey(hex::encode(h.finalize()))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the stat cache knows of one file: its stat when hashed, and the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatRecord {
    size: u64,
    /// Nanoseconds since the epoch (a line whose mtime does not fit is not read).
    mtime_ns: i64,
    inode: u64,
    sha256: [u8; 32],
}

impl StatRecord {
    fn matches(&self, stat: &HostStat) -> bool {
        self.size == stat.size
            && i128::from(self.mtime_ns) == stat.mtime_ns
            && self.inode == stat.inode
    }

    /// Parses one line of the cache file (`size mtime_ns inode sha256 path`): the
    /// record and the path's bytes.
    fn parse(line: &[u8]) -> Option<(Self, &[u8])> {
        let mut parts = line.splitn(5, |&b| b == b' ');
        let mut field = || std::str::from_utf8(parts.next()?).ok();
        let (size, mtime, inode, sha) = (field()?, field()?, field()?, field()?);
        let path = parts.next()?;
        let mtime_ns: i128 = mtime.parse().ok()?;
        let mut sha256 = [0u8; 32];
        // A torn line's hash is short (and upper-case hex reads like lower-case).
        hex::decode_to_slice(sha, &mut sha256).ok()?;
        let record = StatRecord {
            size: size.parse().ok()?,
            mtime_ns: i64::try_from(mtime_ns).ok()?,
            inode: inode.parse().ok()?,
            sha256,
        };
        Some((record, path))
    }
}

/// Maps (path, size, mtime, inode) to the file's sha256 so unchanged files are hashed once.
///
/// The records read from the file are kept compact (a large context has one per file,
/// see [`SortedPaths`]; a later line of the file replaces an earlier one), looked up by
/// binary search after a guess at the one following the last hit (files are asked for
/// in path order). Records added since are kept apart, by path.
#[derive(Debug, Default)]
pub struct StatCache {
    file: Option<PathBuf>,
    /// Whether `file` was read (on first use: a no-op rebuild never needs it).
    loaded: bool,
    /// The records of the file.
    read: SortedPaths<StatRecord>,
    /// The index in `read` after the last hit.
    next: usize,
    /// Records added or changed since the cache was read.
    changed: HashMap<PathBuf, StatRecord>,
    /// Lines in the file (records read plus records appended before): when they far
    /// exceed the records, the file is rewritten instead of appended to.
    lines_in_file: usize,
    /// Files hashed (cache misses) since this cache was loaded.
    pub hashed: u64,
    /// Files answered from the cache since it was loaded.
    pub reused: u64,
}

impl StatCache {
    /// An in-memory cache that is never saved.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The stat cache of a store (empty when missing or unreadable), read on first use.
    pub fn load(store: &Store) -> Self {
        Self {
            file: Some(store.stat_cache_file()),
            ..Self::default()
        }
    }

    /// Reads the records of the cache file, once, a line at a time (the file has a
    /// line per file of a large context: it is not held in memory as a whole).
    fn read_records(&mut self) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        let Some(file) = &self.file else {
            return;
        };
        let Ok(f) = fs::File::open(file) else {
            return;
        };
        let mut reader = io::BufReader::with_capacity(1 << 16, f);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            self.lines_in_file += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if let Some((record, path)) = StatRecord::parse(text) {
                self.read.push(path, record);
            }
        }
        self.read.sort();
    }

    /// The record of `path`, if any.
    fn record(&mut self, path: &Path) -> Option<StatRecord> {
        if !self.changed.is_empty() {
            if let Some(r) = self.changed.get(path) {
                return Some(*r);
            }
        }
        let i = self.read.find(path.as_os_str().as_bytes(), self.next)?;
        self.next = i + 1;
        Some(self.read.value(i))
    }

    /// The sha256 hex of the file at `path`, from the cache when its size, mtime and
    /// inode are unchanged.
    pub fn sha256(&mut self, path: &Path) -> io::Result<String> {
        self.sha256_seen(path, None)
    }

    /// [`Self::sha256`], with the file's stat when the caller has just taken it.
    pub fn sha256_seen(&mut self, path: &Path, seen: Option<HostStat>) -> io::Result<String> {
        Ok(hex::encode(self.sha256_bytes_seen(path, seen)?))
    }

    /// [`Self::sha256_seen`] as bytes.
    pub fn sha256_bytes_seen(
        &mut self,
        path: &Path,
        seen: Option<HostStat>,
    ) -> io::Result<[u8; 32]> {
        self.read_records();
        let stat = match seen {
            Some(stat) => stat,
            None => HostStat::of(&fs::metadata(path)?),
        };
        if let Some(r) = self.record(path).filter(|r| r.matches(&stat)) {
            self.reused += 1;
            return Ok(r.sha256);
        }
        let mut file = fs::File::open(path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let sha256: [u8; 32] = h.finalize().into();
        self.hashed += 1;
        let mtime_ns = i64::try_from(stat.mtime_ns).ok();
        if let (false, Some(mtime_ns)) = (path.to_string_lossy().contains('\n'), mtime_ns) {
            let record = StatRecord {
                size: stat.size,
                mtime_ns,
                inode: stat.inode,
                sha256,
            };
            self.changed.insert(path.to_path_buf(), record);
        }
        Ok(sha256)
    }

    /// How many paths have a record.
    fn records_len(&self) -> usize {
        let new = (self.changed.keys())
            .filter(|p| self.read.find(p.as_os_str().as_bytes(), 0).is_none())
            .count();
        self.read.len() + new
    }

    /// Writes the cache back when it changed: the changed records appended to the file
    /// (a later line wins when it is read; a one-file change of a large context must
    /// not rewrite every record), or the whole file rewritten atomically when it was
    /// not read or has grown to more than twice its records.
    pub fn save(&mut self) -> Result<(), CacheError> {
        let Some(file) = self.file.clone() else {
            return Ok(());
        };
        if self.changed.is_empty() {
            return Ok(());
        }
        let records = self.records_len();
        let appended = self.lines_in_file + self.changed.len();
        let mut changed: Vec<(&[u8], StatRecord)> = self
            .changed
            .iter()
            .map(|(p, r)| (p.as_os_str().as_bytes(), *r))
            .collect();
        changed.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let result = if self.loaded && self.lines_in_file > 0 && appended <= 2 * records {
            // On a line of its own even after a torn line of a killed build.
            let text = format!("\n{}", record_lines(changed));
            append(&file, text.as_bytes()).map(|()| appended)
        } else {
            let kept = self.read.iter().filter_map(|(path, record)| {
                let replaced = changed.binary_search_by(|c| c.0.cmp(path)).is_ok();
                (!replaced).then_some((path, record))
            });
            let mut all: Vec<(&[u8], StatRecord)> = kept.collect();
            all.extend(changed);
            all.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let text = record_lines(all);
            write_atomic(&file, text.as_bytes()).map(|()| records)
        };
        self.lines_in_file = result?;
        self.merge_changed();
        Ok(())
    }

    /// Moves the changed records among the records read (as if the file was read again).
    fn merge_changed(&mut self) {
        for (path, record) in std::mem::take(&mut self.changed) {
            self.read.push(path.as_os_str().as_bytes(), record);
        }
        self.read.sort();
    }
}

/// `(path, record)` pairs as lines of the cache file.
fn record_lines<'r>(records: impl IntoIterator<Item = (&'r [u8], StatRecord)>) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (path, r) in records {
        let _ = writeln!(
            text,
            "{} {} {} {} {}",
            r.size,
            r.mtime_ns,
            r.inode,
            hex::encode(r.sha256),
            String::from_utf8_lossy(path)
        );
    }
    text
}

/// Appends `text` to `file` in one write (so concurrent builds do not interleave
/// within a line; a torn last line is skipped when read).
fn append(file: &Path, text: &[u8]) -> Result<(), CacheError> {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(file)
        .map_err(io_err(file))?;
    f.write_all(text).map_err(io_err(file))
}

/// How many context copy digests [`ContextDigests`] keeps (the most recent ones).
const CONTEXT_DIGESTS_KEPT: usize = 64;

/// The digests of recent copies from build contexts, by a memo key that covers the
/// request and the context's stat fingerprint (every path with its kind, mode, owner,
/// size, mtime and inode: what the stat cache trusts). A rebuild of an unchanged
/// context finds its copy's digest here after one stat walk, without listing, hashing
/// or loading the stat cache.
#[derive(Debug)]
pub struct ContextDigests {
    file: PathBuf,
}

impl ContextDigests {
    /// The record of `store`.
    pub fn open(store: &Store) -> Self {
        Self {
            file: store.context_digests_file(),
        }
    }

    fn lines(&self) -> Vec<(String, String)> {
        let text = fs::read_to_string(&self.file).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(m, d)| (m.to_string(), d.to_string()))
            .collect()
    }

    /// The digest recorded for `memo`, if any.
    pub fn get(&self, memo: &str) -> Option<String> {
        self.lines()
            .into_iter()
            .find(|(m, _)| m == memo)
            .map(|(_, d)| d)
    }

    /// Records `digest` for `memo`, dropping the oldest records beyond the limit.
    pub fn put(&self, memo: &str, digest: &str) -> Result<(), CacheError> {
        let mut lines = self.lines();
        lines.retain(|(m, _)| m != memo);
        let skip = (lines.len() + 1).saturating_sub(CONTEXT_DIGESTS_KEPT);
        let mut text = String::new();
        for (m, d) in lines.iter().skip(skip) {
            text.push_str(&format!("{m} {d}\n"));
        }
        text.push_str(&format!("{memo} {digest}\n"));
        write_atomic(&self.file, text.as_bytes())
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| CacheError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// A digest of layer entries as they would be written: path, kind, mode, owner, mtime
/// clamped to `epoch`, xattrs and file contents (hashed through `stats`). Two entry lists
/// with the same digest give the same layer.
pub fn entries_digest(
    entries: &[LayerEntry],
    stats: &mut StatCache,
    epoch: u64,
) -> Result<String, CacheError> {
    entries_digest_seen(entries, stats, epoch, &|_| None)
}

/// [`entries_digest`], with the stat `seen` gives for a file's host path (the view the
/// entries were read from), so the stat cache need not stat it again.
pub fn entries_digest_seen(
    entries: &[LayerEntry],
    stats: &mut StatCache,
    epoch: u64,
    seen: &dyn Fn(&Path) -> Option<HostStat>,
) -> Result<String, CacheError> {
    use std::fmt::Write as _;
    let mut h = Sha256::new();
    // One buffer for every entry's line (a context copy has tens of thousands).
    let mut line = String::new();
    for e in entries {
        line.clear();
        let _ = write!(line, "{}\0", e.path.display());
        let _ = match &e.kind {
            EntryKind::File(Content::File(p)) => {
                let sha = stats.sha256_seen(p, seen(p)).map_err(io_err(p))?;
                write!(line, "file:{sha}")
            }
            EntryKind::File(Content::Bytes(b)) => {
                write!(line, "file:{}", hex::encode(Sha256::digest(b)))
            }
            EntryKind::Dir => write!(line, "dir"),
            EntryKind::Symlink(t) => write!(line, "symlink:{}", t.display()),
            EntryKind::Hardlink(t) => write!(line, "hardlink:{}", t.display()),
            EntryKind::CharDevice(a, b) => write!(line, "char:{a}:{b}"),
            EntryKind::BlockDevice(a, b) => write!(line, "block:{a}:{b}"),
            EntryKind::Fifo => write!(line, "fifo"),
            EntryKind::Whiteout => write!(line, "whiteout"),
            EntryKind::Opaque => write!(line, "opaque"),
        };
        let _ = write!(
            line,
            "\0{:o}\0{}\0{}\0{}\0",
            e.mode,
            e.uid,
            e.gid,
            e.mtime.min(epoch)
        );
        h.update(line.as_bytes());
        for (name, value) in &e.xattrs {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(value);
            h.update([0]);
        }
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

/// The index of cached instruction results under a store root.
#[derive(Debug, Clone)]
pub struct CacheIndex {
    dir: PathBuf,
    locks: PathBuf,
}

impl CacheIndex {
    /// The index of `store`.
    pub fn open(store: &Store) -> Self {
        Self {
            dir: store.cache_dir(CacheDir::Index),
            locks: store.cache_dir(CacheDir::Locks),
        }
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.0))
    }

    /// The record for `key`, if any (an unreadable record counts as a miss).
    pub fn get(&self, key: &CacheKey) -> Option<CacheRecord> {
        let bytes = fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Remembers what `key` produced.
    pub fn put(&self, key: &CacheKey, record: &CacheRecord) -> Result<(), CacheError> {
        let bytes = serde_json::to_vec_pretty(record)?;
        write_atomic(&self.path(key), &bytes)
    }

    /// Takes the store-wide lock of `key` (blocking; released when the file is dropped),
    /// so that concurrent builds of one instruction (e.g. the parallel stages of a
    /// pipeline sharing a variant's base) produce it once and reuse it. Waiting for
    /// another build is announced as an activity naming `step`.
    pub fn lock(&self, key: &CacheKey, step: &str) -> Result<fs::File, CacheError> {
        fs::create_dir_all(&self.locks).map_err(io_err(&self.locks))?;
        let path = self.locks.join(format!("{}.lock", key.0));
        let file = fs::File::create(&path).map_err(io_err(&path))?;
        if fs2::FileExt::try_lock_exclusive(&file).is_err() {
            let _waiting = crate::activity::begin(
                || {
                    let mut shown: String = step.chars().take(60).collect();
                    if shown.len() < step.len() {
                        shown.push('…');
                    }
                    format!("waiting for the step `{shown}` that another build is running")
                },
                None,
            );
            fs2::FileExt::lock_exclusive(&file).map_err(io_err(&path))?;
        }
        Ok(file)
    }

    /// Forgets `key` (e.g. when its layer blob was pruned).
    pub fn remove(&self, key: &CacheKey) {
        let _ = fs::remove_file(self.path(key));
    }

    /// Drops records whose layer blob is gone (`has_blob` says which remain) and lock
    /// files nobody holds; what `flense prune` does after deleting blobs. Returns the
    /// number of records and lock files removed.
    pub fn prune(&self, has_blob: impl Fn(&str) -> bool) -> Result<(usize, usize), CacheError> {
        let mut records = 0;
        for path in list_dir(&self.dir)? {
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let stale = match fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<CacheRecord>(&b).ok())
            {
                Some(rec) => rec.layer.is_some_and(|l| !has_blob(&l.digest)),
                None => true,
            };
            if stale && fs::remove_file(&path).is_ok() {
                records += 1;
            }
        }
        let mut locks = 0;
        for path in list_dir(&self.locks)? {
            let Ok(file) = fs::File::open(&path) else {
                continue;
            };
            // A build holding the lock keeps its file; a build that opened it but has not
            // locked it yet may end up sharing the work with another, never corrupting it.
            if fs2::FileExt::try_lock_exclusive(&file).is_ok() && fs::remove_file(&path).is_ok() {
                locks += 1;
            }
        }
        Ok((records, locks))
    }
}

/// The entries of `dir` (none when it does not exist).
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, CacheError> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd.flatten().map(|e| e.path()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CacheError::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests;
