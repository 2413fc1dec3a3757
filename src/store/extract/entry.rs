//! Extraction of one tar entry: whiteouts, directories, files, links and devices, then
//! ownership, mode, xattrs and mtime.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use super::create::{copy_content, finish_file, open_new, FileMeta};
use super::{relative, set_mtime, Extractor, Failure};
use crate::store::writer_pool::{FileJob, MAX_POOLED_FILE};

/// An entry's header, with its permission bits and mtime read once.
struct Head {
    header: tar::Header,
    mode: u32,
    mtime: u64,
}

impl Extractor {
    /// Extracts one tar entry (path `raw` as written in the archive).
    pub(super) fn entry<R: Read>(
        &mut self,
        item: &mut tar::Entry<R>,
        raw: &Path,
    ) -> Result<(), Failure> {
        let rel = relative(raw)?;
        let header = item.header().clone();
        let head = Head {
            mode: header.mode()? & 0o7777,
            mtime: header.mtime()?,
            header,
        };
        let header = &head.header;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == ".wh..wh..opq" {
            return self.opaque_marker(&rel);
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            return self.whiteout(rel.with_file_name(hidden), head.mtime);
        }
        if rel.as_os_str().is_empty() {
            return Ok(()); // the root directory: its metadata belongs to the runtime
        }
        let host = self.prepare_parents(&rel)?;
        // Regular files, directories and symlinks are created first and the path is
        // cleared only when something is there (EEXIST): one lookup fewer per entry.
        match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous
                if self.pool.is_some() && header.size()? <= MAX_POOLED_FILE =>
            {
                self.pooled_file(item, &head, host)
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => self.file(item, &head, &host),
            tar::EntryType::Directory => self.directory(item, &head, host),
            tar::EntryType::Symlink => self.symlink(item, &head, &host),
            tar::EntryType::Link => self.hard_link(item, &host),
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.device(item, &head, rel, &host)
            }
            other => {
                tracing::warn!(
                    "skipping {} of unsupported tar type {other:?}",
                    rel.display()
                );
                Ok(())
            }
        }
    }

    /// `.wh..wh..opq`: marks its directory opaque (lower layers' contents hidden).
    fn opaque_marker(&mut self, rel: &Path) -> Result<(), Failure> {
        let dir_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let dir = self.prepare_parents(rel)?;
        let dir = dir.parent().unwrap_or(&self.target).to_path_buf();
        let _ = xattr::set(&dir, "user.overlay.opaque", b"y");
        if self.is_root {
            let _ = xattr::set(&dir, "trusted.overlay.opaque", b"y");
        }
        self.report.opaque.push(dir_rel);
        Ok(())
    }

    /// `.wh.<name>`: removes `hidden_rel` and leaves a whiteout device in its place (or
    /// only records it where device nodes cannot be made).
    fn whiteout(&mut self, hidden_rel: PathBuf, mtime: u64) -> Result<(), Failure> {
        let host = self.prepare_parents(&hidden_rel)?;
        self.clear(&host, false)?;
        if mknod(&host, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).is_ok() {
            set_mtime(&host, mtime)?;
        } else {
            self.report.whiteout_devices = false;
        }
        self.report.whiteouts.push(hidden_rel);
        Ok(())
    }

    /// A small regular file: read into memory and handed to the writer pool.
    fn pooled_file<R: Read>(
        &mut self,
        item: &mut tar::Entry<R>,
        head: &Head,
        host: PathBuf,
    ) -> Result<(), Failure> {
        self.clear(&host, false)?;
        let mut data = Vec::with_capacity(head.header.size()? as usize);
        item.read_to_end(&mut data)?;
        let meta = self.file_meta(item, head)?;
        let pool = self.pool.as_mut().expect("checked by the caller");
        pool.submit(FileJob { host, data, meta })
            .map_err(|(path, e)| {
                Failure::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            })
    }

    /// A regular file written here, streamed from the archive.
    fn file<R: Read>(
        &mut self,
        item: &mut tar::Entry<R>,
        head: &Head,
        host: &Path,
    ) -> Result<(), Failure> {
        self.settle(host)?;
        let meta = self.file_meta(item, head)?;
        let mut file = match open_new(host, head.mode) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.clear(host, false)?;
                open_new(host, head.mode)?
            }
            other => other?,
        };
        copy_content(item, head.header.size()?, &mut file, &mut self.buf)?;
        if finish_file(&mut file, host, &meta, &self.creator)? {
            self.report.unmapped_owners += 1;
        }
        Ok(())
    }

    /// A directory, owner-writable until the end of the extraction (so children can be
    /// created); its mode is set last.
    fn directory<R: Read>(
        &mut self,
        item: &mut tar::Entry<R>,
        head: &Head,
        host: PathBuf,
    ) -> Result<(), Failure> {
        self.settle(&host)?;
        match fs::DirBuilder::new().mode(0o700).create(&host) {
            Ok(()) if !self.creator.needs_chmod(0o700) => {}
            Ok(()) => fs::set_permissions(&host, fs::Permissions::from_mode(0o700))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.clear(&host, true)?;
                if !host.is_dir() {
                    fs::create_dir(&host)?;
                }
                fs::set_permissions(&host, fs::Permissions::from_mode(0o700))?;
            }
            Err(e) => return Err(e.into()),
        }
        self.verified_dirs.insert(host.clone());
        self.finish_entry(&host, &head.header, None, head.mtime, item)?;
        self.dirs.push((host, head.mode, head.mtime));
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        item: &mut tar::Entry<R>,
        head: &Head,
        host: &Path,
    ) -> Result<(), Failure> {
        self.settle(host)?;
        let target = item
            .link_name()?
            .ok_or_else(|| Failure::Unsafe("symlink without target".into()))?;
        match std::os::unix::fs::symlink(&*target, host) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.clear(host, false)?;
                std::os::unix::fs::symlink(&*target, host)?;
            }
            other => other?,
        }
        self.finish_entry(host, &head.header, None, head.mtime, item)
    }

    /// A hard link to a file extracted earlier from this layer (never to a directory).
    fn hard_link<R: Read>(&mut self, item: &mut tar::Entry<R>, host: &Path) -> Result<(), Failure> {
        self.clear(host, false)?;
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
        fs::hard_link(&target_host, host)?;
        Ok(())
    }

    /// A character or block device or a FIFO. Devices are skipped (and recorded) where
    /// creating them is not permitted.
    fn device<R: Read>(
        &mut self,
        item: &mut tar::Entry<R>,
        head: &Head,
        rel: PathBuf,
        host: &Path,
    ) -> Result<(), Failure> {
        self.clear(host, false)?;
        let header = &head.header;
        let kind = header.entry_type();
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
        match mknod(host, flag, Mode::from_bits_truncate(head.mode), dev) {
            Ok(()) => self.finish_entry(host, header, Some(head.mode), head.mtime, item)?,
            Err(nix::Error::EPERM) if flag != SFlag::S_IFIFO => {
                tracing::warn!("skipping device node {} (not permitted)", rel.display());
                self.report.skipped_devices.push(rel);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// The metadata a regular file gets once its content is written.
    fn file_meta<R: Read>(
        &self,
        item: &mut tar::Entry<R>,
        head: &Head,
    ) -> Result<FileMeta, Failure> {
        Ok(FileMeta {
            mode: head.mode,
            mtime: head.mtime,
            owner: self.owner_of(&head.header)?,
            xattrs: pax_xattrs(item)?,
        })
    }

    /// The owner to give an entry: its header's when extracting as (namespace) root.
    fn owner_of(&self, header: &tar::Header) -> Result<Option<(u32, u32)>, Failure> {
        if !self.is_root {
            return Ok(None);
        }
        let old = header.as_old();
        let uid = numeric_or_blank(header.uid(), &old.uid)?;
        let gid = numeric_or_blank(header.gid(), &old.gid)?;
        Ok(Some((uid as u32, gid as u32)))
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
        if let Some((uid, gid)) = self
            .owner_of(header)?
            .filter(|o| self.creator.needs_chown(*o))
        {
            let uid = nix::unistd::Uid::from_raw(uid);
            let gid = nix::unistd::Gid::from_raw(gid);
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

/// A numeric header field, where a blank one (all NULs or spaces, as some image
/// builders write the owner) means 0, as GNU tar and Go's archive/tar read it.
pub(crate) fn numeric_or_blank(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        other => other,
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
