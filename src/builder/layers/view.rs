//! Read-only views of an image's root filesystem as the build sees it between steps:
//! nothing (scratch), or a stack of unpacked layer directories with overlay semantics
//! (upper layers win; whiteouts and opaque directories hide lower content).
//!
//! Producers of layer entries (users, copies) need this to know what already exists, so
//! that parent directories are written with the metadata they already have.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::image_relative;
use super::owners::OwnerIndex;

/// What kind of file a path is in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, fifo or socket.
    Other,
}

/// What a stat cache trusts of a host file: a file whose size, mtime and inode are
/// unchanged has unchanged content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
}

impl HostStat {
    /// The stat of `meta`.
    pub fn of(meta: &fs::Metadata) -> Self {
        HostStat {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
        }
    }
}

/// Metadata of one path in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// File kind.
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// A read-only view of an image root filesystem. Paths are image paths, absolute or
/// relative to the image root.
pub trait ImageView {
    /// Metadata of `path` (not following a final symlink), or `None` when absent.
    fn stat(&self, path: &Path) -> Option<FileMeta>;
    /// Contents of the regular file at `path`, or `None` when absent or not a file.
    fn read(&self, path: &Path) -> Option<Vec<u8>>;
    /// Names in the directory at `path`, sorted; empty when absent.
    fn list(&self, path: &Path) -> Vec<String>;
    /// The host path holding the bytes of the regular file at `path`, if any.
    fn host_path(&self, path: &Path) -> Option<PathBuf>;
    /// The target of the symlink at `path`, or `None` when it is not a symlink.
    fn read_link(&self, path: &Path) -> Option<PathBuf>;
    /// The stat of the host file `host_path` (one of [`Self::host_path`]'s answers) as
    /// the view saw it, when it keeps one (spares the stat cache a second stat).
    fn host_stat(&self, _host_path: &Path) -> Option<HostStat> {
        None
    }
}

/// A borrowed view is a view (so a boxed view may borrow the build context).
impl<T: ImageView + ?Sized> ImageView for &T {
    fn stat(&self, path: &Path) -> Option<FileMeta> {
        (**self).stat(path)
    }
    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        (**self).read(path)
    }
    fn list(&self, path: &Path) -> Vec<String> {
        (**self).list(path)
    }
    fn host_path(&self, path: &Path) -> Option<PathBuf> {
        (**self).host_path(path)
    }
    fn read_link(&self, path: &Path) -> Option<PathBuf> {
        (**self).read_link(path)
    }
    fn host_stat(&self, host_path: &Path) -> Option<HostStat> {
        (**self).host_stat(host_path)
    }
}

/// The empty root filesystem of a `scratch` image.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyView;

impl ImageView for EmptyView {
    fn stat(&self, _path: &Path) -> Option<FileMeta> {
        None
    }
    fn read(&self, _path: &Path) -> Option<Vec<u8>> {
        None
    }
    fn list(&self, _path: &Path) -> Vec<String> {
        Vec::new()
    }
    fn host_path(&self, _path: &Path) -> Option<PathBuf> {
        None
    }
    fn read_link(&self, _path: &Path) -> Option<PathBuf> {
        None
    }
}

/// A stack of unpacked layer directories, bottom first, read with overlay semantics.
/// Whiteouts are recognised in both forms: overlay (a char device 0/0) and OCI
/// (`.wh.<name>` files); opaque directories by the overlay xattrs or `.wh..wh..opq`.
#[derive(Debug, Clone, Default)]
pub struct LayerStackView {
    layers: Vec<PathBuf>,
    owners: Vec<Option<std::sync::Arc<OwnerIndex>>>,
}

/// Outcome of looking a path up in one layer directory.
enum LayerLookup {
    Found(PathBuf, fs::Metadata),
    Deleted,
    NotHere { opaque_above: bool },
}

impl LayerStackView {
    /// A view over these layer directories, bottom (base) first.
    pub fn new(layers: Vec<PathBuf>) -> Self {
        Self {
            owners: vec![None; layers.len()],
            layers,
        }
    }

    /// A view whose layers' real modes and owners come from owner indexes (for layers
    /// unpacked without the privilege to chown); `None` trusts the disk.
    pub fn with_owners(
        layers: Vec<PathBuf>,
        owners: Vec<Option<std::sync::Arc<OwnerIndex>>>,
    ) -> Self {
        Self { layers, owners }
    }

    /// The layer directories, bottom first.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    fn lookup_in(layer: &Path, rel: &Path) -> LayerLookup {
        let comps: Vec<_> = rel.components().collect();
        let mut dir = layer.to_path_buf();
        let mut opaque_above = false;
        for (i, comp) in comps.iter().enumerate() {
            let name = comp.as_os_str();
            let wh = dir.join(format!(".wh.{}", name.to_string_lossy()));
            if wh.symlink_metadata().is_ok() {
                return LayerLookup::Deleted;
            }
            let next = dir.join(name);
            match next.symlink_metadata() {
                Ok(meta) => {
                    if meta.file_type().is_char_device() && meta.rdev() == 0 {
                        return LayerLookup::Deleted;
                    }
                    if i + 1 == comps.len() {
                        return LayerLookup::Found(next, meta);
                    }
                    if !meta.is_dir() {
                        // A non-directory hides everything below it in lower layers.
                        return LayerLookup::Deleted;
                    }
                    if is_opaque(&next) {
                        opaque_above = true;
                    }
                    dir = next;
                }
                Err(_) => return LayerLookup::NotHere { opaque_above },
            }
        }
        // The root itself.
        match layer.symlink_metadata() {
            Ok(meta) => LayerLookup::Found(layer.to_path_buf(), meta),
            Err(_) => LayerLookup::NotHere { opaque_above },
        }
    }

    /// The host path and metadata of `path`, searching from the top layer down.
    pub fn resolve(&self, path: &Path) -> Option<(PathBuf, fs::Metadata)> {
        self.resolve_in_layer(path).map(|(p, m, _)| (p, m))
    }

    fn resolve_in_layer(&self, path: &Path) -> Option<(PathBuf, fs::Metadata, usize)> {
        let rel = image_relative(path);
        for (i, layer) in self.layers.iter().enumerate().rev() {
            match Self::lookup_in(layer, &rel) {
                LayerLookup::Found(p, m) => return Some((p, m, i)),
                LayerLookup::Deleted => return None,
                LayerLookup::NotHere { opaque_above } => {
                    if opaque_above {
                        return None;
                    }
                }
            }
        }
        None
    }
}

fn is_opaque(dir: &Path) -> bool {
    if dir.join(".wh..wh..opq").symlink_metadata().is_ok() {
        return true;
    }
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        if let Ok(Some(v)) = xattr::get(dir, name) {
            if v == b"y" {
                return true;
            }
        }
    }
    false
}

impl From<&fs::Metadata> for FileMeta {
    /// The metadata of a host file as the copy code sees it.
    fn from(meta: &fs::Metadata) -> FileMeta {
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        };
        FileMeta {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime().max(0) as u64,
        }
    }
}

impl ImageView for LayerStackView {
    fn stat(&self, path: &Path) -> Option<FileMeta> {
        let (_, m, i) = self.resolve_in_layer(path)?;
        let mut meta = FileMeta::from(&m);
        if let Some(Some(index)) = self.owners.get(i) {
            if let Some(o) = index.get(&image_relative(path)) {
                meta.mode = o.mode;
                meta.uid = o.uid;
                meta.gid = o.gid;
            }
        }
        Some(meta)
    }

    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let (p, m) = self.resolve(path)?;
        if !m.is_file() {
            return None;
        }
        fs::read(p).ok()
    }

    fn list(&self, path: &Path) -> Vec<String> {
        let rel = image_relative(path);
        let mut names = std::collections::BTreeSet::new();
        let mut hidden = std::collections::BTreeSet::new();
        for layer in self.layers.iter().rev() {
            match Self::lookup_in(layer, &rel) {
                LayerLookup::Found(p, m) => {
                    if !m.is_dir() {
                        break;
                    }
                    if let Ok(rd) = fs::read_dir(&p) {
                        for e in rd.flatten() {
                            let name = e.file_name().to_string_lossy().into_owned();
                            if let Some(gone) = name.strip_prefix(".wh.") {
                                if gone != ".wh..opq" {
                                    hidden.insert(gone.to_string());
                                }
                                continue;
                            }
                            let whiteout = e
                                .metadata()
                                .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
                                .unwrap_or(false);
                            if whiteout {
                                hidden.insert(name);
                            } else if !hidden.contains(&name) {
                                names.insert(name);
                            }
                        }
                    }
                    if is_opaque(&p) {
                        break;
                    }
                }
                LayerLookup::Deleted => break,
                LayerLookup::NotHere { opaque_above } => {
                    if opaque_above {
                        break;
                    }
                }
            }
        }
        names.into_iter().collect()
    }

    fn host_path(&self, path: &Path) -> Option<PathBuf> {
        let (p, m) = self.resolve(path)?;
        m.is_file().then_some(p)
    }

    fn read_link(&self, path: &Path) -> Option<PathBuf> {
        let (p, m) = self.resolve(path)?;
        if !m.file_type().is_symlink() {
            return None;
        }
        fs::read_link(p).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_layers_win_and_whiteouts_hide() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("l");
        let upper = tmp.path().join("u");
        fs::create_dir_all(lower.join("etc/skel")).unwrap();
        fs::write(lower.join("etc/passwd"), "root\n").unwrap();
        fs::write(lower.join("etc/skel/.profile"), "x").unwrap();
        fs::write(lower.join("etc/gone"), "x").unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/passwd"), "root\nme\n").unwrap();
        fs::write(upper.join("etc/.wh.gone"), "").unwrap();
        let view = LayerStackView::new(vec![lower, upper]);
        assert_eq!(view.read(Path::new("/etc/passwd")).unwrap(), b"root\nme\n");
        assert!(view.stat(Path::new("etc/gone")).is_none());
        assert_eq!(
            view.stat(Path::new("/etc/skel")).unwrap().kind,
            FileKind::Dir
        );
        assert_eq!(view.list(Path::new("/etc")), vec!["passwd", "skel"]);
        assert!(view.stat(Path::new("/nope")).is_none());
    }

    #[test]
    fn opaque_directory_hides_lower_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("l");
        let upper = tmp.path().join("u");
        fs::create_dir_all(lower.join("d")).unwrap();
        fs::write(lower.join("d/old"), "x").unwrap();
        fs::create_dir_all(upper.join("d")).unwrap();
        fs::write(upper.join("d/.wh..wh..opq"), "").unwrap();
        fs::write(upper.join("d/new"), "y").unwrap();
        let view = LayerStackView::new(vec![lower, upper]);
        assert!(view.stat(Path::new("/d/old")).is_none());
        assert_eq!(view.list(Path::new("/d")), vec!["new"]);
    }
}
