//! One entry of a layer, as the layer writer takes it. This is the contract between the
//! producers of layer contents (copies from the build context, user set-up, the diff
//! captured after a sandboxed step) and the tar writer.

use std::path::PathBuf;

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Read from this host file when the layer is written.
    File(PathBuf),
    /// These bytes, held in memory (e.g. a generated `/etc/passwd`).
    Bytes(Vec<u8>),
}

/// The kind of a layer entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File(Content),
    /// A directory.
    Dir,
    /// A symbolic link to this target (kept verbatim).
    Symlink(PathBuf),
    /// A hard link to this earlier path of the same layer (relative to the layer root).
    Hardlink(PathBuf),
    /// A character device (major, minor).
    CharDevice(u32, u32),
    /// A block device (major, minor).
    BlockDevice(u32, u32),
    /// A named pipe.
    Fifo,
    /// An OCI whiteout: the path is deleted from the lower layers (`.wh.<name>`).
    Whiteout,
    /// An opaque directory marker: the directory's lower contents are hidden
    /// (`<dir>/.wh..wh..opq`); `path` is the directory.
    Opaque,
}

/// One entry of a layer: a path relative to the image root (no leading `/`) and its
/// metadata. The writer sorts entries and clamps `mtime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Path inside the image, relative, without a leading `/` (e.g. `srv/app/index.js`).
    pub path: PathBuf,
    /// What the entry is.
    pub kind: EntryKind,
    /// Permission bits (and setuid/setgid/sticky), e.g. `0o644`.
    pub mode: u32,
    /// Owner user ID written in the tar header.
    pub uid: u32,
    /// Owner group ID written in the tar header.
    pub gid: u32,
    /// Modification time in seconds since the epoch (clamped by the writer).
    pub mtime: u64,
    /// Extended attributes (name, value), e.g. `security.capability`.
    pub xattrs: Vec<(String, Vec<u8>)>,
}
