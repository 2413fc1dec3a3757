//! The true owners and modes of a layer's files. An unprivileged user cannot `chown`
//! while unpacking, so the files of an unpacked layer belong to that user on disk; the
//! layer tar still knows who owns what. Producers of new layers (users, copies) must
//! write parent directories with their real metadata, or rootless builds would give
//! different digests than root builds. This index is read from the tar headers once per
//! layer and kept under the store root (`cache/owners/<diff-id hex>.tsv`).

use std::ffi::OsStr;
use std::fs;
use std::io::{BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::sorted_paths::SortedPaths;
use crate::image::digest::Digest;
use crate::image::LayerEntry;
use crate::store::extract::numeric_or_blank;
use crate::store::{CacheDir, Store};

use crate::builder::layers::cache::write_atomic;
use crate::builder::layers::image_relative;
use crate::builder::{io_err, BuildError};

/// Mode and owner of one path of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// Path (relative, as unpacked) -> real mode and owner, for one layer.
///
/// Compact (a layer copying a large context has an entry per file): see
/// [`SortedPaths`].
#[derive(Debug, Clone, Default)]
pub struct OwnerIndex {
    records: SortedPaths<Owner>,
}

impl PartialEq for OwnerIndex {
    fn eq(&self, other: &Self) -> bool {
        self.records.len() == other.records.len() && self.iter().eq(other.iter())
    }
}

impl Eq for OwnerIndex {}

impl FromIterator<(PathBuf, Owner)> for OwnerIndex {
    /// The index of these records; a later record of a path replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (PathBuf, Owner)>>(records: I) -> Self {
        let records = records
            .into_iter()
            .map(|(path, owner)| (path.into_os_string().into_vec(), owner))
            .collect();
        OwnerIndex { records }
    }
}

impl OwnerIndex {
    /// The metadata of `rel`, if the layer has it.
    pub fn get(&self, rel: &Path) -> Option<Owner> {
        let i = self.records.find(rel.as_os_str().as_bytes(), 0)?;
        Some(self.records.value(i))
    }

    /// The records, by path.
    fn iter(&self) -> impl Iterator<Item = (&Path, Owner)> {
        (self.records.iter()).map(|(p, owner)| (Path::new(OsStr::from_bytes(p)), owner))
    }

    /// The index of layer entries this build wrote.
    pub fn from_entries(entries: &[LayerEntry]) -> Self {
        entries
            .iter()
            .map(|e| {
                (
                    image_relative(&e.path),
                    Owner {
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                    },
                )
            })
            .collect()
    }

    /// Reads the headers of a (gzip or zstd compressed, or plain) layer tar.
    pub fn from_tar<R: Read>(stream: R) -> std::io::Result<Self> {
        let reader =
            crate::store::extract::uncompressed(BufReader::with_capacity(1 << 20, stream))?;
        let mut archive = tar::Archive::new(reader);
        let mut records = Vec::new();
        for entry in archive.entries()? {
            let entry = entry?;
            let header = entry.header();
            let path = image_relative(&entry.path()?);
            if path.as_os_str().is_empty() {
                continue;
            }
            records.push((
                path,
                Owner {
                    mode: header.mode()? & 0o7777,
                    uid: numeric_or_blank(header.uid(), &header.as_old().uid)? as u32,
                    gid: numeric_or_blank(header.gid(), &header.as_old().gid)? as u32,
                },
            ));
        }
        Ok(records.into_iter().collect())
    }

    fn to_tsv(&self) -> String {
        let mut lines: Vec<String> = self
            .iter()
            .filter(|(p, _)| !p.to_string_lossy().contains('\n'))
            .map(|(p, o)| format!("{:o} {} {} {}", o.mode, o.uid, o.gid, p.display()))
            .collect();
        lines.sort();
        let mut s = lines.join("\n");
        s.push('\n');
        s
    }

    fn from_tsv(text: &str) -> Self {
        let mut records = Vec::new();
        for line in text.lines() {
            let mut parts = line.splitn(4, ' ');
            let (Some(mode), Some(uid), Some(gid), Some(path)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(mode), Ok(uid), Ok(gid)) =
                (u32::from_str_radix(mode, 8), uid.parse(), gid.parse())
            else {
                continue;
            };
            records.push((PathBuf::from(path), Owner { mode, uid, gid }));
        }
        records.into_iter().collect()
    }
}

fn index_path(store: &Store, diff_id: &Digest) -> PathBuf {
    let hex = diff_id.digest();
    store.cache_dir(CacheDir::Owners).join(format!("{hex}.tsv"))
}

/// Whether unpacked layers carry their real owners on disk (only root can chown).
pub fn disk_has_owners() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The owner index of a stored layer: from the cache file, else from the blob's tar
/// headers (and then cached).
pub fn layer_owners(
    store: &Store,
    digest: &Digest,
    diff_id: &Digest,
) -> Result<OwnerIndex, BuildError> {
    let path = index_path(store, diff_id);
    if let Ok(text) = fs::read_to_string(&path) {
        return Ok(OwnerIndex::from_tsv(&text));
    }
    let blob = store.blob_path(digest)?;
    let file = fs::File::open(&blob).map_err(io_err(&blob))?;
    let index = OwnerIndex::from_tar(file).map_err(io_err(&blob))?;
    write_atomic(&path, index.to_tsv().as_bytes())?;
    Ok(index)
}

/// Records the owner index of a layer this build wrote.
pub fn remember_owners(
    store: &Store,
    diff_id: &Digest,
    index: &OwnerIndex,
) -> Result<(), BuildError> {
    write_atomic(&index_path(store, diff_id), index.to_tsv().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::EntryKind;

    #[test]
    fn tsv_round_trip_and_tar_headers() {
        let entries = vec![
            LayerEntry {
                path: "srv/app".into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: 65533,
                gid: 65533,
                mtime: 0,
                xattrs: vec![],
            },
            LayerEntry {
                path: "srv/app/a b".into(),
                kind: EntryKind::File(crate::image::Content::Bytes(b"x".to_vec())),
                mode: 0o4755,
                uid: 900,
                gid: 901,
                mtime: 0,
                xattrs: vec![],
            },
        ];
        let idx = OwnerIndex::from_entries(&entries);
        assert_eq!(OwnerIndex::from_tsv(&idx.to_tsv()), idx);
        let tar = crate::image::layer::write_tar(entries, Vec::new(), 0).unwrap();
        let from_tar = OwnerIndex::from_tar(&tar[..]).unwrap();
        assert_eq!(
            from_tar.get(Path::new("srv/app/a b")),
            Some(Owner {
                mode: 0o4755,
                uid: 900,
                gid: 901
            })
        );
        assert_eq!(from_tar, idx);
    }

    #[test]
    fn blank_owner_fields_read_as_root() {
        let mut header = tar::Header::new_ustar();
        header.set_path("bin/busybox").unwrap();
        header.set_size(0);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Regular);
        header.as_old_mut().uid = [0; 8];
        header.as_old_mut().gid = [b' '; 8];
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &[][..]).unwrap();
        let tar = builder.into_inner().unwrap();
        let index = OwnerIndex::from_tar(&tar[..]).unwrap();
        assert_eq!(
            index.get(Path::new("bin/busybox")),
            Some(Owner {
                mode: 0o755,
                uid: 0,
                gid: 0
            })
        );
    }

    #[test]
    fn the_last_record_of_a_path_wins_and_lookups_are_exact() {
        let owner = |uid| Owner {
            mode: 0o755,
            uid,
            gid: 0,
        };
        let index: OwnerIndex = [("b", 1), ("a/b", 2), ("a", 3), ("b", 4), ("a-b", 5)]
            .into_iter()
            .map(|(p, uid)| (PathBuf::from(p), owner(uid)))
            .collect();
        assert_eq!(index.get(Path::new("b")), Some(owner(4)));
        assert_eq!(index.get(Path::new("a/b")), Some(owner(2)));
        assert_eq!(index.get(Path::new("a-b")), Some(owner(5)));
        assert_eq!(index.get(Path::new("c")), None);
        assert_eq!(index.get(Path::new("a/b/c")), None);
        let same: OwnerIndex = [("a-b", 5), ("a", 3), ("a/b", 2), ("b", 4)]
            .into_iter()
            .map(|(p, uid)| (PathBuf::from(p), owner(uid)))
            .collect();
        assert_eq!(index, same);
        assert_eq!(OwnerIndex::from_tsv(&index.to_tsv()), index);
    }
}
