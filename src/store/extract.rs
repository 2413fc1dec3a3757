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

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::writer_pool::{FileJob, WriterPool, MAX_POOLED_FILE};

/// Why an extraction stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The entry would escape the target or write through a symlink.
    #[error("unsafe entry {entry:?}: {reason}")]
    Unsafe {
        /// The entry path as found in the archive.
        entry: PathBuf,
        /// What makes it unsafe.
        reason: String,
    },
    /// The stream or a filesystem operation failed.
    #[error("entry {entry:?}: {source}")]
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
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    extract_tar_with_threads(stream, target, threads)
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
            pool: (threads > 1).then(|| WriterPool::start(scope, threads)),
        };
        let mut archive = tar::Archive::new(stream);
        for item in archive.entries().map_err(io_at(Path::new("")))? {
            let mut item = item.map_err(io_at(Path::new("")))?;
            let raw = item.path().map_err(io_at(Path::new("")))?.into_owned();
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
}

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
                    fs::create_dir(&host)?;
                    fs::set_permissions(&host, fs::Permissions::from_mode(0o755))?;
                }
                Err(e) => return Err(e.into()),
            }
            self.verified_dirs.insert(host.clone());
        }
        Ok(self.target.join(rel))
    }

    /// Removes whatever is at `host` (never following a symlink), unless it is a
    /// directory and `keep_dir` is set.
    /// Waits for the file-writing threads (see [`WriterPool`]).
    fn flush(&mut self) -> Result<(), Failure> {
        if let Some(pool) = &mut self.pool {
            pool.flush().map_err(|(path, e)| {
                Failure::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            })?;
        }
        Ok(())
    }

    fn clear(&mut self, host: &Path, keep_dir: bool) -> Result<(), Failure> {
        if self.pool.as_ref().is_some_and(|p| p.is_pending(host)) {
            self.flush()?;
        }
        match fs::symlink_metadata(host) {
            Ok(m) if m.is_dir() => {
                if !keep_dir {
                    // Workers may be writing below this directory.
                    self.flush()?;
                    crate::store::unpack::remove_tree(host)
                        .map_err(|e| Failure::Io(io::Error::other(e.to_string())))?;
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

    fn entry<R: Read>(&mut self, item: &mut tar::Entry<R>, raw: &Path) -> Result<(), Failure> {
        let rel = relative(raw)?;
        let header = item.header().clone();
        let mode = header.mode()? & 0o7777;
        let mtime = header.mtime()?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == ".wh..wh..opq" {
            let dir_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
            let dir = self.prepare_parents(&rel)?;
            let dir = dir.parent().unwrap_or(&self.target).to_path_buf();
            let _ = xattr::set(&dir, "user.overlay.opaque", b"y");
            if self.is_root {
                let _ = xattr::set(&dir, "trusted.overlay.opaque", b"y");
            }
            self.report.opaque.push(dir_rel);
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let hidden_rel = rel.with_file_name(hidden);
            let host = self.prepare_parents(&hidden_rel)?;
            self.clear(&host, false)?;
            if mknod(&host, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).is_ok() {
                set_mtime(&host, mtime)?;
            } else {
                self.report.whiteout_devices = false;
            }
            self.report.whiteouts.push(hidden_rel);
            return Ok(());
        }
        if rel.as_os_str().is_empty() {
            return Ok(()); // the root directory: its metadata belongs to the runtime
        }
        let host = self.prepare_parents(&rel)?;
        let kind = header.entry_type();
        self.clear(&host, kind.is_dir())?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous
                if self.pool.is_some() && header.size()? <= MAX_POOLED_FILE =>
            {
                let mut data = Vec::with_capacity(header.size()? as usize);
                item.read_to_end(&mut data)?;
                let owner = if self.is_root {
                    Some((header.uid()? as u32, header.gid()? as u32))
                } else {
                    None
                };
                let xattrs = pax_xattrs(item)?;
                let job = FileJob {
                    host,
                    data,
                    mode,
                    mtime,
                    owner,
                    xattrs,
                };
                let pool = self.pool.as_mut().expect("checked above");
                pool.submit(job).map_err(|(path, e)| {
                    Failure::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
                })?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&host)?;
                io::copy(item, &mut file)?;
                drop(file);
                self.finish_entry(&host, &header, Some(mode), mtime, item)?;
            }
            tar::EntryType::Directory => {
                if !host.is_dir() {
                    fs::create_dir(&host)?;
                }
                // Owner-writable until the end, so children can be created.
                fs::set_permissions(&host, fs::Permissions::from_mode(0o700))?;
                self.verified_dirs.insert(host.clone());
                self.finish_entry(&host, &header, None, mtime, item)?;
                self.dirs.push((host, mode, mtime));
            }
            tar::EntryType::Symlink => {
                let target = item
                    .link_name()?
                    .ok_or_else(|| Failure::Unsafe("symlink without target".into()))?;
                std::os::unix::fs::symlink(&*target, &host)?;
                self.finish_entry(&host, &header, None, mtime, item)?;
            }
            tar::EntryType::Link => {
                // The target may be a file a worker is still writing.
                self.flush()?;
                let target = item
                    .link_name()?
                    .ok_or_else(|| Failure::Unsafe("hard link without target".into()))?;
                let target_rel = relative(&target)?;
                let target_host = self.prepare_parents(&target_rel)?;
                match fs::symlink_metadata(&target_host) {
                    Ok(m) if !m.is_dir() => {}
                    Ok(_) => {
                        return Err(Failure::Unsafe(format!(
                            "hard link to directory {target:?}"
                        )))
                    }
                    Err(_) => {
                        return Err(Failure::Unsafe(format!(
                            "hard link to {target:?}, which is not in this layer"
                        )))
                    }
                }
                // linkat without AT_SYMLINK_FOLLOW: a symlink target is linked, not followed.
                fs::hard_link(&target_host, &host)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (flag, dev) = match kind {
                    tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let major = header.device_major()?.unwrap_or(0);
                        let minor = header.device_minor()?.unwrap_or(0);
                        let flag = if kind == tar::EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (flag, makedev(major.into(), minor.into()))
                    }
                };
                match mknod(&host, flag, Mode::from_bits_truncate(mode), dev) {
                    Ok(()) => self.finish_entry(&host, &header, Some(mode), mtime, item)?,
                    Err(nix::Error::EPERM) if flag != SFlag::S_IFIFO => {
                        tracing::warn!("skipping device node {} (not permitted)", rel.display());
                        self.report.skipped_devices.push(rel);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            other => tracing::warn!(
                "skipping {} of unsupported tar type {other:?}",
                rel.display()
            ),
        }
        Ok(())
    }

    /// Ownership (as root), mode, xattrs and mtime of a created entry.
    fn finish_entry<R: Read>(
        &mut self,
        host: &Path,
        header: &tar::Header,
        mode: Option<u32>,
        mtime: u64,
        item: &mut tar::Entry<R>,
    ) -> Result<(), Failure> {
        let is_link = header.entry_type().is_symlink();
        if self.is_root {
            let uid = nix::unistd::Uid::from_raw(header.uid()? as u32);
            let gid = nix::unistd::Gid::from_raw(header.gid()? as u32);
            let flags = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
            match nix::unistd::fchownat(None, host, Some(uid), Some(gid), flags) {
                Ok(()) => {}
                // Root of a user namespace without a mapping for this owner.
                Err(nix::Error::EINVAL | nix::Error::EPERM) => self.report.unmapped_owners += 1,
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(mode) = mode {
            fs::set_permissions(host, fs::Permissions::from_mode(mode))?;
        }
        if !is_link {
            for (name, value) in pax_xattrs(item)? {
                if let Err(e) = xattr::set(host, &name, &value) {
                    tracing::debug!("cannot set xattr {name} on {}: {e}", host.display());
                }
            }
        }
        if !header.entry_type().is_dir() {
            set_mtime(host, mtime)?;
        }
        Ok(())
    }
}

/// The `SCHILY.xattr.*` PAX records of an entry.
fn pax_xattrs<R: Read>(item: &mut tar::Entry<R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(pax) = item.pax_extensions()? {
        for ext in pax.flatten() {
            if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                out.push((name.to_owned(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

pub(crate) fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let t = TimeSpec::new(mtime.min(i64::MAX as u64) as i64, 0);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(io::Error::from)
}
