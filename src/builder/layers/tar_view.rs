//! A read-only view of layers read from their blobs' tar streams, without unpacking
//! them: what a build's preflight checks (the step users in `/etc/passwd`, a shell) on
//! a base image whose layers no step may ever need unpacked (every step hits the
//! cache), so that an all-hit build on a fresh runner unpacks nothing.
//!
//! It keeps every path's metadata and symlink target, with OCI whiteouts and opaque
//! directories applied layer by layer, and the bytes of the small regular files under
//! `/etc` only: [`ImageView::read`] of another file is `None`, and there are no host
//! paths. Use it for checks, never to copy from.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::builder::BuildError;
use crate::image::entry::EntryKind;
use crate::image::layer::{normalise_path, whiteout_marker};
use crate::store::StoreError;

use super::image_relative;
use super::stage::StageLayer;
use super::view::{FileKind, FileMeta, ImageView};

/// Largest file whose bytes are kept.
const MAX_KEPT: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
struct Node {
    meta: FileMeta,
    link: Option<PathBuf>,
    bytes: Option<Vec<u8>>,
}

/// Layers' filesystem as their tar headers (and small `/etc` files) describe it.
#[derive(Debug, Default)]
pub struct TarIndexView {
    nodes: BTreeMap<PathBuf, Node>,
}

impl TarIndexView {
    /// Reads `layers` (bottom first) from their blobs in the store.
    pub fn read_layers(layers: &[StageLayer]) -> Result<Self, BuildError> {
        let mut view = Self::default();
        for layer in layers {
            let d = &layer.digests;
            let stream = layer.store().layer_tar_stream(&d.digest, d.size)?;
            view.apply(stream).map_err(|e| StoreError::Corrupt {
                digest: d.digest.to_string(),
                detail: format!("reading its tar: {e}"),
            })?;
        }
        Ok(view)
    }

    /// Applies one layer's tar stream over what the layers below give.
    fn apply(&mut self, stream: impl Read) -> std::io::Result<()> {
        let mut added: Vec<(PathBuf, Node)> = Vec::new();
        let mut archive = tar::Archive::new(stream);
        for item in archive.entries()? {
            let mut item = item?;
            let Ok(path) = normalise_path(&item.path()?) else {
                continue;
            };
            match whiteout_marker(&path) {
                Some((dir, EntryKind::Opaque)) => {
                    self.remove_below(&dir);
                    continue;
                }
                Some((gone, _)) => {
                    self.nodes.remove(&gone);
                    self.remove_below(&gone);
                    continue;
                }
                None => {}
            }
            if let Some(node) = self.node(&mut item, &added)? {
                added.push((path, node));
            }
        }
        self.nodes.extend(added);
        Ok(())
    }

    /// The node of one tar entry (`None` for the root directory).
    fn node(
        &self,
        item: &mut tar::Entry<'_, impl Read>,
        added: &[(PathBuf, Node)],
    ) -> std::io::Result<Option<Node>> {
        let path = normalise_path(&item.path()?).unwrap_or_default();
        if path.as_os_str().is_empty() {
            return Ok(None);
        }
        let header = item.header().clone();
        let meta = |kind| FileMeta {
            kind,
            mode: header.mode().unwrap_or(0) & 0o7777,
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
            mtime: header.mtime().unwrap_or(0),
        };
        let entry_type = header.entry_type();
        let node = if entry_type.is_dir() {
            Node {
                meta: meta(FileKind::Dir),
                link: None,
                bytes: None,
            }
        } else if entry_type.is_symlink() {
            let link = item.link_name()?.map(|l| l.into_owned());
            Node {
                meta: meta(FileKind::Symlink),
                link,
                bytes: None,
            }
        } else if entry_type.is_hard_link() {
            let target = normalise_path(&item.link_name()?.unwrap_or_default()).unwrap_or_default();
            let earlier = added.iter().rev().find(|(p, _)| *p == target);
            match earlier.map(|(_, n)| n).or_else(|| self.nodes.get(&target)) {
                Some(node) => node.clone(),
                None => return Ok(None),
            }
        } else if entry_type.is_file() || entry_type == tar::EntryType::Continuous {
            let kept = path.starts_with("etc") && header.size().unwrap_or(u64::MAX) <= MAX_KEPT;
            let mut bytes = Vec::new();
            if kept {
                item.read_to_end(&mut bytes)?;
            }
            Node {
                meta: meta(FileKind::File),
                link: None,
                bytes: kept.then_some(bytes),
            }
        } else {
            Node {
                meta: meta(FileKind::Other),
                link: None,
                bytes: None,
            }
        };
        Ok(Some(node))
    }

    /// Removes everything strictly below `dir`.
    fn remove_below(&mut self, dir: &Path) {
        let below: Vec<PathBuf> = self
            .nodes
            .range(dir.to_path_buf()..)
            .skip_while(|(p, _)| p.as_path() == dir)
            .take_while(|(p, _)| p.starts_with(dir))
            .map(|(p, _)| p.clone())
            .collect();
        for path in below {
            self.nodes.remove(&path);
        }
    }

    fn get(&self, path: &Path) -> Option<&Node> {
        self.nodes.get(&image_relative(path))
    }
}

impl ImageView for TarIndexView {
    fn stat(&self, path: &Path) -> Option<FileMeta> {
        let rel = image_relative(path);
        if rel.as_os_str().is_empty() {
            return Some(FileMeta {
                kind: FileKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 0,
            });
        }
        self.nodes.get(&rel).map(|n| n.meta)
    }

    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        self.get(path)?.bytes.clone()
    }

    fn list(&self, path: &Path) -> Vec<String> {
        let dir = image_relative(path);
        let mut names: Vec<String> = self
            .nodes
            .range(dir.clone()..)
            .take_while(|(p, _)| p.starts_with(&dir))
            .filter(|(p, _)| p.parent() == Some(dir.as_path()))
            .filter_map(|(p, _)| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names
    }

    fn host_path(&self, _path: &Path) -> Option<PathBuf> {
        None
    }

    fn read_link(&self, path: &Path) -> Option<PathBuf> {
        self.get(path)?.link.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o755);
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_size(0);
                builder.append_link(&mut header, path, data).unwrap();
            } else {
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, data.as_bytes())
                    .unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn layers_stack_with_whiteouts_and_keep_etc_files() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let mut view = TarIndexView::default();
        let lower = tar(&[
            ("etc/", Directory, ""),
            ("etc/passwd", Regular, "root:x:0:0::/root:/bin/sh\n"),
            ("usr/bin/dash", Regular, "ELF"),
            ("bin", Symlink, "usr/bin"),
            ("usr/bin/sh", Symlink, "dash"),
            ("opt/old/a", Regular, "a"),
            ("srv/gone", Regular, "x"),
        ]);
        view.apply(&lower[..]).unwrap();
        let upper = tar(&[
            (
                "etc/passwd",
                Regular,
                "root:x:0:0::/root:/bin/sh\nsomebody:x:65533:65533::/home/somebody:/bin/sh\n",
            ),
            ("opt/old/.wh..wh..opq", Regular, ""),
            ("opt/old/b", Regular, "b"),
            ("srv/.wh.gone", Regular, ""),
        ]);
        view.apply(&upper[..]).unwrap();
        let passwd = String::from_utf8(view.read(Path::new("/etc/passwd")).unwrap()).unwrap();
        assert!(passwd.contains("somebody:x:65533"), "{passwd}");
        assert_eq!(view.read_link(Path::new("/bin")), Some("usr/bin".into()));
        assert_eq!(
            view.read_link(Path::new("/usr/bin/sh")),
            Some("dash".into())
        );
        assert_eq!(view.list(Path::new("/opt/old")), ["b"]);
        assert!(view.stat(Path::new("/srv/gone")).is_none());
        assert_eq!(
            view.read(Path::new("/usr/bin/dash")),
            None,
            "only /etc bytes"
        );
        assert_eq!(
            view.stat(Path::new("/")).map(|m| m.kind),
            Some(FileKind::Dir)
        );
    }
}
