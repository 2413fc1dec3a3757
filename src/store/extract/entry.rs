//! Extraction of one tar entry: whiteouts, directories, files, links and devices, then
//! ownership, mode, xattrs and mtime.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use super::{relative, set_mtime, Extractor, Failure};
use crate::store::writer_pool::{FileJob, MAX_POOLED_FILE};

impl Extractor {
    /// Extracts one tar entry (path `raw` as written in the archive).
    pub(super) fn entry<R: Read>(
        &mut self,
        item: &mut tar::Entry<R>,
        raw: &Path,
    ) -> Result<(), Failure> {
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
