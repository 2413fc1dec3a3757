//! Safe, streaming tar extraction into a directory.
//!
//! Nothing is ever written outside the target: entry paths are normalised (a leading
//! `/` is dropped) and `..` is refused; no parent component of an entry may be a
//! symlink (the whole layer is refused, as a symlink-then-write-through attack would
//! need one); files are created with `O_EXCL` after removing what was there, so a
//! symlink in the final component is replaced, not followed; hard links must name an
//! earlier, non-directory path inside the target and never follow a symlink target.
//!
//! OCI whiteouts become overlayfs whiteouts: `.wh.<name>` -> a char device 0/0 named
//! `<name>` (Linux >= 5.8 lets unprivileged users create exactly this device), and
//! `.wh..wh..opq` -> the `user.overlay.opaque=y` xattr on the directory (what overlayfs
//! reads with the `userxattr` mount option, i.e. in a user namespace), plus
//! `trusted.overlay.opaque=y` when running as root. Both are also returned as lists, so
//! a copy-based fallback can apply them without overlayfs.
//!
//! Device nodes are created when permitted (as root) and skipped with a warning
//! otherwise. Ownership is applied only when running as (namespace) root; as another
//! user the files belong to the caller (the runtime maps the caller to root in its user
//! namespace). To keep image ownership in subuid mode, run the extraction inside the
//! user namespace: owners it maps are applied, the others are counted in
//! [`ExtractReport::unmapped_owners`].
//!
//! Speed (DESIGN §1, issue #5): a path is cleared only when creating it fails with
//! `EEXIST`; regular files are opened with their final permission bits and get owner,
//! mode, xattrs and mtime through the open descriptor, skipping `fchown`/`fchmod` when
//! creation already gave the right ones (`create`); parents already verified are not
//! looked at again. Layer blobs are decompressed and hashed on another thread
//! (`stream`).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::writer_pool::WriterPool;
use crate::error_chain::ErrorChain;
use create::Creator;

pub(crate) mod create;
mod entry;

pub(crate) use entry::numeric_or_blank;
pub use stream::uncompressed;
pub(crate) mod stream;

/// Why an extraction stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The entry would escape the target or write through a symlink.
    #[error("refused entry {entry:?}: {reason}")]
    Unsafe {
        /// The entry path as found in the archive.
        entry: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The stream or a filesystem operation failed.
    #[error("entry {entry:?}")]
    Io {
        /// The entry being extracted (empty before the first).
        entry: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// What an extraction did besides writing files.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtractReport {
    /// Paths deleted from lower layers (from `.wh.<name>` entries).
    pub whiteouts: Vec<PathBuf>,
    /// Directories whose lower contents are hidden (from `.wh..wh..opq`).
    pub opaque: Vec<PathBuf>,
    /// Whether every whiteout was also created as a char 0/0 device in the tree.
    pub whiteout_devices: bool,
    /// Device nodes skipped because creating them was not permitted.
    pub skipped_devices: Vec<PathBuf>,
    /// Entries whose owner could not be set (running as root of a user namespace
    /// that does not map the owner): they belong to the extracting user instead.
    #[serde(default)]
    pub unmapped_owners: u64,
}

/// Extracts the tar `stream` into the existing directory `target`.
pub fn extract_tar<R: Read>(stream: R, target: &Path) -> Result<ExtractReport, ExtractError> {
    extract_tar_with_threads(stream, target, default_writer_threads())
}

/// File-writing threads for [`extract_tar`]: none on up to 2 cores, where one core
/// decompresses (see `stream`) and file creation runs inline on the other (measured on
/// 2 cores: inline creation took about half the system time of 2 writer threads, and
/// never more wall time); one per further core, at most 4, beyond.
pub fn default_writer_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores <= 2 {
        1
    } else {
        (cores - 1).min(4)
    }
}

/// [`extract_tar`] with `threads` file-writing threads (1: everything inline).
pub fn extract_tar_with_threads<R: Read>(
    stream: R,
    target: &Path,
    threads: usize,
) -> Result<ExtractReport, ExtractError> {
    let io_at = |entry: &Path| {
        let entry = entry.to_path_buf();
        move |source| ExtractError::Io { entry, source }
    };
    let pool_err = |(entry, source): (PathBuf, io::Error)| ExtractError::Io { entry, source };
    let creator = Creator::current();
    std::thread::scope(|scope| {
        let mut ex = Extractor {
            target: target.to_path_buf(),
            is_root: nix::unistd::geteuid().is_root(),
            verified_dirs: HashSet::new(),
            dirs: Vec::new(),
            report: ExtractReport {
                whiteout_devices: true,
                ..Default::default()
            },
            pool: (threads > 1).then(|| WriterPool::start(scope, threads, creator)),
            creator,
            buf: vec![0; COPY_BUFFER],
        };
        let mut archive = tar::Archive::new(stream);
        for item in archive.entries().map_err(io_at(Path::new("")))? {
            let mut item = item.map_err(io_at(Path::new("")))?;
            let raw = item.path().map_err(io_at(Path::new("")))?.into_owned();
            let regular_file = item.header().entry_type().is_file();
            ex.entry(&mut item, &raw).map_err(|e| match e {
                Failure::Unsafe(reason) => ExtractError::Unsafe {
                    entry: raw.clone(),
                    reason,
                },
                Failure::Io(source) => ExtractError::Io {
                    entry: raw.clone(),
                    source,
                },
            })?;
            if regular_file {
                crate::fault_point::pause_at(crate::fault_point::PausePoint::Unpack);
            }
        }
        if let Some(mut pool) = ex.pool.take() {
            pool.flush().map_err(pool_err)?;
            ex.report.unmapped_owners += pool.unmapped_owners;
        }
        // Directory modes and mtimes last, deepest first, so that read-only directories
        // and the children's writes do not interfere.
        ex.dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (dir, mode, mtime) in &ex.dirs {
            fs::set_permissions(dir, fs::Permissions::from_mode(*mode)).map_err(io_at(dir))?;
            set_mtime(dir, *mtime).map_err(io_at(dir))?;
        }
        Ok(ex.report)
    })
}

enum Failure {
    Unsafe(String),
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<nix::Error> for Failure {
    fn from(e: nix::Error) -> Self {
        Failure::Io(e.into())
    }
}

struct Extractor {
    target: PathBuf,
    is_root: bool,
    verified_dirs: HashSet<PathBuf>,
    dirs: Vec<(PathBuf, u32, u64)>,
    report: ExtractReport,
    pool: Option<WriterPool>,
    creator: Creator,
    /// Reused for the content of files written inline.
    buf: Vec<u8>,
}

/// Size of the writes of files extracted inline.
const COPY_BUFFER: usize = 1 << 20;

/// `path` relative to the target, with a leading `/` and `.` dropped; `..` refused.
fn relative(path: &Path) -> Result<PathBuf, Failure> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(Failure::Unsafe("path contains `..`".into())),
            Component::Prefix(_) => return Err(Failure::Unsafe("path has a prefix".into())),
        }
    }
    Ok(out)
}

impl Extractor {
    /// Makes sure every parent of `rel` is a real directory inside the target (creating
    /// missing ones) and returns the host path of `rel`.
    fn prepare_parents(&mut self, rel: &Path) -> Result<PathBuf, Failure> {
        // A verified directory's ancestors are verified too (removing a directory
        // forgets everything below it), so a verified parent settles all of them.
        let full = self.target.join(rel);
        match full.parent() {
            Some(parent) if parent == self.target || self.verified_dirs.contains(parent) => {
                return Ok(full)
            }
            _ => {}
        }
        let mut host = self.target.clone();
        let parent_count = rel.components().count().saturating_sub(1);
        for c in rel.components().take(parent_count) {
            host.push(c);
            if self.verified_dirs.contains(&host) {
                continue;
            }
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Failure::Unsafe(format!(
                        "parent {:?} is a symlink",
                        host.strip_prefix(&self.target).unwrap_or(&host)
                    )))
                }
                Ok(_) => {
                    return Err(Failure::Unsafe(format!(
                        "parent {:?} is not a directory",
                        host.strip_prefix(&self.target).unwrap_or(&host)
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new().mode(0o755).create(&host)?;
                    if self.creator.needs_chmod(0o755) {
                        fs::set_permissions(&host, fs::Permissions::from_mode(0o755))?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            self.verified_dirs.insert(host.clone());
        }
        Ok(self.target.join(rel))
    }

    /// Waits for the file-writing threads (see [`WriterPool`]).
    fn flush(&mut self) -> Result<(), Failure> {
        if let Some(pool) = &mut self.pool {
            pool.flush().map_err(|(path, e)| {
                Failure::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            })?;
        }
        Ok(())
    }

    /// Waits for the file-writing threads if one of them may be writing `host`.
    fn settle(&mut self, host: &Path) -> Result<(), Failure> {
        if self.pool.as_ref().is_some_and(|p| p.is_pending(host)) {
            self.flush()?;
        }
        Ok(())
    }

    /// Removes whatever is at `host` (never following a symlink), unless it is a
    /// directory and `keep_dir` is set.
    fn clear(&mut self, host: &Path, keep_dir: bool) -> Result<(), Failure> {
        self.settle(host)?;
        match fs::symlink_metadata(host) {
            Ok(m) if m.is_dir() => {
                if !keep_dir {
                    // Workers may be writing below this directory.
                    self.flush()?;
                    crate::store::unpack::remove_tree(host)
                        .map_err(|e| Failure::Io(io::Error::other(ErrorChain(&e).to_string())))?;
                    self.verified_dirs.retain(|d| !d.starts_with(host));
                    self.dirs.retain(|(d, ..)| !d.starts_with(host));
                }
            }
            Ok(_) => fs::remove_file(host)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

/// Sets the access and modification times of `path` (a symlink itself, not its target).
pub(crate) fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let t = TimeSpec::new(mtime.min(i64::MAX as u64) as i64, 0);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(io::Error::from)
}
