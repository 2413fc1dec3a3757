//! The merged filesystem of an image, read from the store's unpacked layers without
//! mounting anything: a path resolves to the topmost layer that has it, unless a layer
//! above deleted it (an OCI whiteout, an opaque directory, or a non-directory where a
//! parent directory was). Symlinks resolve inside the image, never on the host.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use crate::image::digest::Digest;
use crate::store::{Store, StoreError, StoredImage};

/// Symlink hops followed before a path is given up as a loop.
const MAX_LINKS: usize = 32;

/// One unpacked layer as the merged view reads it.
#[derive(Debug, Clone)]
struct Layer {
    diff_id: Digest,
    diff: PathBuf,
    whiteouts: HashSet<PathBuf>,
    opaque: HashSet<PathBuf>,
}

/// A file of the merged filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path inside the image, relative (no leading `/`).
    pub path: PathBuf,
    /// Index of the layer it comes from (0 = the base layer).
    pub layer: usize,
}

/// The read-only merged view of an image's unpacked layers.
#[derive(Debug, Clone)]
pub struct MergedRoot {
    layers: Vec<Layer>,
}

impl MergedRoot {
    /// Unpacks `image`'s layers when needed and opens their merged view.
    pub fn open(store: &Store, image: &StoredImage) -> Result<MergedRoot, StoreError> {
        let layers = store
            .unpack_image(image)?
            .into_iter()
            .map(|l| Layer {
                diff_id: l.diff_id,
                diff: l.diff,
                whiteouts: l.report.whiteouts.into_iter().collect(),
                opaque: l.report.opaque.into_iter().collect(),
            })
            .collect();
        Ok(MergedRoot { layers })
    }

    /// A view over plain directories (base first) with their whiteouts and opaque
    /// directories, for tests.
    #[cfg(test)]
    pub(crate) fn from_dirs(dirs: Vec<(PathBuf, Vec<PathBuf>, Vec<PathBuf>)>) -> MergedRoot {
        let layers = dirs
            .into_iter()
            .enumerate()
            .map(|(i, (diff, whiteouts, opaque))| Layer {
                diff_id: crate::image::digest::digest_of(format!("layer {i}").as_bytes()),
                diff,
                whiteouts: whiteouts.into_iter().collect(),
                opaque: opaque.into_iter().collect(),
            })
            .collect();
        MergedRoot { layers }
    }

    /// The diff-ID of layer `index`.
    pub fn diff_id(&self, index: usize) -> &Digest {
        &self.layers[index].diff_id
    }

    /// The topmost layer holding `rel` itself (a symlink is not followed), or `None`
    /// when no layer has it or a layer above deleted it.
    fn locate(&self, rel: &Path) -> Option<(usize, fs::Metadata)> {
        for (i, layer) in self.layers.iter().enumerate().rev() {
            // Never through a symlink of the layer: the host would resolve it.
            let meta = layer
                .real_parents(rel)
                .then(|| fs::symlink_metadata(layer.diff.join(rel)).ok())
                .flatten();
            if let Some(meta) = meta {
                let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
                return (!whiteout).then_some((i, meta));
            }
            if layer.hides(rel) {
                return None;
            }
        }
        None
    }

    /// Resolves `path` (relative or absolute inside the image) through symlinks, in
    /// every component; returns the resolved relative path and its layer.
    pub fn resolve(&self, path: &Path) -> Option<(PathBuf, usize, fs::Metadata)> {
        let mut pending: Vec<PathBuf> = components(path).into_iter().rev().collect();
        let mut done = PathBuf::new();
        let mut hops = 0;
        let mut last = None;
        while let Some(name) = pending.pop() {
            if name.as_os_str() == ".." {
                done.pop();
                continue;
            }
            let candidate = done.join(&name);
            let (layer, meta) = self.locate(&candidate)?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_LINKS {
                    return None;
                }
                let target = fs::read_link(self.layers[layer].diff.join(&candidate)).ok()?;
                if target.is_absolute() {
                    done = PathBuf::new();
                }
                pending.extend(components(&target).into_iter().rev());
                continue;
            }
            done = candidate;
            last = Some((layer, meta));
        }
        last.map(|(layer, meta)| (done, layer, meta))
    }

    /// The contents of the regular file at `path` (symlinks followed) and its layer.
    pub fn read(&self, path: &Path) -> Option<(Vec<u8>, usize)> {
        let (rel, layer, meta) = self.resolve(path)?;
        if !meta.is_file() {
            return None;
        }
        let bytes = fs::read(self.layers[layer].diff.join(rel)).ok()?;
        Some((bytes, layer))
    }

    /// The names in the directory `path` of the merged filesystem.
    pub fn list_dir(&self, path: &Path) -> Vec<String> {
        let Some((rel, _, meta)) = self.resolve(path) else {
            return Vec::new();
        };
        if !meta.is_dir() {
            return Vec::new();
        }
        let mut names = BTreeMap::new();
        for layer in &self.layers {
            let Ok(entries) = fs::read_dir(layer.diff.join(&rel)) else {
                continue;
            };
            for entry in entries.flatten() {
                names.insert(entry.file_name().to_string_lossy().into_owned(), ());
            }
        }
        names
            .into_keys()
            .filter(|n| self.locate(&rel.join(n)).is_some())
            .collect()
    }

    /// Every regular file of the merged filesystem whose path `wanted` accepts (the
    /// paths are walked without following symlinks), sorted by path.
    pub fn find(&self, wanted: impl Fn(&Path) -> bool) -> Vec<Found> {
        let mut candidates = BTreeMap::new();
        for layer in &self.layers {
            let walk = walkdir::WalkDir::new(&layer.diff).follow_links(false);
            for entry in walk.into_iter().flatten() {
                if !entry.file_type().is_file() {
                    continue;
                }
                if let Ok(rel) = entry.path().strip_prefix(&layer.diff) {
                    if wanted(rel) {
                        candidates.insert(rel.to_path_buf(), ());
                    }
                }
            }
        }
        candidates
            .into_keys()
            .filter_map(|path| match self.locate(&path) {
                Some((layer, meta)) if meta.is_file() && self.parents_visible(&path) => {
                    Some(Found { path, layer })
                }
                _ => None,
            })
            .collect()
    }

    /// Whether every parent directory of `rel` is a directory in the merged view (a
    /// layer may replace a directory by a file or symlink, hiding what was below).
    fn parents_visible(&self, rel: &Path) -> bool {
        let mut parent = PathBuf::new();
        let parts = components(rel);
        for part in &parts[..parts.len().saturating_sub(1)] {
            parent.push(part);
            match self.locate(&parent) {
                Some((_, meta)) if meta.is_dir() => {}
                _ => return false,
            }
        }
        true
    }
}

impl Layer {
    /// Whether every parent of `rel` is a real directory in this layer.
    fn real_parents(&self, rel: &Path) -> bool {
        let mut dir = self.diff.clone();
        let parts = components(rel);
        for part in &parts[..parts.len().saturating_sub(1)] {
            dir.push(part);
            if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                return false;
            }
        }
        true
    }

    /// Whether this layer deletes `rel` from the layers below it.
    fn hides(&self, rel: &Path) -> bool {
        let mut ancestor = Some(rel);
        let mut first = true;
        while let Some(path) = ancestor {
            if path.as_os_str().is_empty() {
                break;
            }
            if self.whiteouts.contains(path) || (!first && self.opaque.contains(path)) {
                return true;
            }
            if !first {
                let meta = fs::symlink_metadata(self.diff.join(path));
                // A non-directory here replaces the directory of the layers below.
                if meta.is_ok_and(|m| !m.is_dir()) {
                    return true;
                }
            }
            first = false;
            ancestor = path.parent();
        }
        false
    }
}

/// The normal components of a path inside the image (`.` dropped, `..` kept).
fn components(path: &Path) -> Vec<PathBuf> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn whiteouts_opaque_dirs_and_symlinks_resolve_like_overlayfs() {
        let tmp = tempfile::tempdir().unwrap();
        let (base, top) = (tmp.path().join("0"), tmp.path().join("1"));
        write(&base, "a/gone.txt", "x");
        write(&base, "a/kept.txt", "base");
        write(&base, "o/old.txt", "x");
        write(&base, "usr/lib/os-release", "ID=debian");
        fs::create_dir_all(base.join("etc")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", base.join("etc/os-release")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("hostetc")).unwrap();
        write(&top, "a/kept.txt", "top");
        write(&top, "o/new.txt", "x");
        write(&base, "o/sub/old.txt", "x");
        write(&top, "o/sub/new.txt", "x");
        let root = MergedRoot::from_dirs(vec![
            (base, vec![], vec![]),
            (top, vec!["a/gone.txt".into()], vec!["o".into()]),
        ]);
        assert_eq!(
            root.read(Path::new("a/kept.txt")),
            Some((b"top".to_vec(), 1))
        );
        assert_eq!(root.read(Path::new("a/gone.txt")), None);
        // A symlink to an absolute path resolves inside the image, never on the host.
        assert_eq!(root.read(Path::new("hostetc/os-release")).unwrap().1, 0);
        assert_eq!(root.read(Path::new("hostetc/passwd")), None);
        assert!(root.find(|p| p.ends_with("passwd")).is_empty());
        assert_eq!(root.read(Path::new("/etc/os-release")).unwrap().1, 0);
        let found: Vec<_> = root
            .find(|p| p.extension().is_some_and(|e| e == "txt"))
            .into_iter()
            .map(|f| f.path.to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, ["a/kept.txt", "o/new.txt", "o/sub/new.txt"]);
        assert_eq!(root.list_dir(Path::new("o")), ["new.txt", "sub"]);
        assert_eq!(
            root.read(Path::new("o/sub/old.txt")),
            None,
            "hidden by the opaque o"
        );
    }
}
