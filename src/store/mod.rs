//! The local store: blobs by digest in an OCI image layout, unpacked layers by diff-ID,
//! and the build cache's files. Paths under the root are built here only: other modules
//! ask [`Store`] for them ([`Store::tmp_dir`], [`Store::cache_dir`],
//! [`Store::stat_cache_file`]).
//!
//! Layout under the root (see [`default_root`]):
//! ```text
//! oci-layout, index.json, blobs/sha256/<hex>   OCI image layout (skopeo `oci:<root>:<ref>`,
//!                                              umoci `--image <root>:<ref>` read it)
//! index.lock                                   lock file guarding index.json updates
//! gc.lock                                      shared by writers and builds (BlobHold),
//!                                              exclusive for prune, rmi and check
//! tmp/                                         temp files, build scratch directories and
//!                                              layers being unpacked, renamed into place
//!                                              when complete; each flock-held by its
//!                                              process (see [`lease`])
//! tmp.lock                                     guards creating vs reclaiming tmp/ entries
//! diffids/sha256/<blob hex>                    "sha256:<diff-id>" of a compressed layer blob
//! layer-blobs/sha256/<diff-id hex>             "sha256:<blob>" compressed blob of a diff-ID
//! layers/<diff-id hex>/diff/                   an unpacked layer (see [`unpack`]), with its
//! layers/<diff-id hex>/whiteouts.json          whiteouts and opaque directories (written
//!                                              last: the marker of a complete layer)
//! layers/.tmp-*/                               a layer being unpacked (older versions)
//! cache/stat-cache.tsv                         build cache: `size mtime_ns inode sha256 path`
//! cache/context-digests.tsv                    build cache: `memo digest` of context copies
//!                                              of hashed context files
//! cache/index/<key>.json                       build cache: what each step key produced
//! cache/locks/<key>.lock                       build cache: held while a key is being built
//! cache/mounts/<hash>-<id>/                    persistent `caches:` directories of Run steps
//! cache/mounts/<hash>-<id>.lock                held (shared) by steps mounting it; exclusive
//!                                              for `sharing: locked` and `--cache-mounts`
//! cache/owners/<diff-id hex>.tsv               owners and modes of a layer's entries, for
//!                                              rootless builds whose disk cannot hold them
//! cache/layer-index/<diff-id hex>              where each entry and gzip block of a layer
//!                                              lies, to rewrite it later (see [`layer_index`])
//! cache/lineage/<name>                         "sha256:<diff-id>": the latest layer a build
//!                                              step (a copy from the context) wrote
//! ```

mod adopt;
pub mod archive;
mod blob_store;
pub mod blobs;
mod cache_dir;
pub mod cache_mount;
pub mod check;
pub mod extract;
pub mod images;
pub mod index;
mod layer_index;
pub mod lease;
pub mod load;
pub mod platforms;
mod prune;
pub mod reference;
pub mod remote_cache;
pub mod unpack;
mod writer_pool;

use std::io;
use std::path::{Path, PathBuf};

pub use blobs::BlobWriter;
pub use cache_mount::{CacheMountDir, CacheMountLock};
pub use images::StoredImage;
pub use index::BlobHold;
pub use lease::{Reclaimed, ScratchDir};
pub use prune::PruneReport;
pub use reference::{parse_name, parse_reference, LocalRef};
pub use remote_cache::{open_remote_cache, RemoteCache, RemoteCacheError};
pub use unpack::UnpackedLayer;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation on the store failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A blob's bytes do not match its digest or size.
    #[error("blob {digest} is corrupt: {detail}")]
    Corrupt {
        /// The blob's digest.
        digest: String,
        /// What did not match.
        detail: String,
    },
    /// A blob is missing from the store.
    #[error("blob {0} is not in the store")]
    MissingBlob(String),
    /// No image has this reference.
    #[error("no image {0:?} in the store")]
    UnknownImage(String),
    /// A digest string is malformed.
    #[error("invalid digest {0:?}")]
    BadDigest(String),
    /// A reference is malformed.
    #[error(transparent)]
    Reference(#[from] crate::image::reference::ReferenceError),
    /// A document in the store (index, manifest, config) is invalid.
    #[error("invalid {what} {name}: {detail}")]
    BadDocument {
        /// Which kind of document.
        what: &'static str,
        /// Its digest or path.
        name: String,
        /// The parse error.
        detail: String,
    },
    /// A JSON document of the store (index, manifest, config, layer record) does not
    /// parse, or a layer record does not encode.
    #[error("invalid {what} {name}")]
    Json {
        /// Which kind of document.
        what: &'static str,
        /// Its digest or path.
        name: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Writing a layer failed.
    #[error(transparent)]
    Layer(#[from] crate::image::LayerError),
    /// Building an image document failed.
    #[error(transparent)]
    Oci(#[from] crate::image::oci::OciError),
    /// A layer does not unpack to the diff-ID its image names.
    #[error("layer {digest}: {detail}")]
    Unpack {
        /// The layer blob.
        digest: crate::image::digest::Digest,
        /// What went wrong.
        detail: String,
    },
    /// A layer could not be extracted safely.
    #[error("layer {digest}")]
    Extract {
        /// The layer blob.
        digest: crate::image::digest::Digest,
        /// What the extraction refused or failed at.
        source: extract::ExtractError,
    },
    /// A layer blob could not be decompressed.
    #[error("layer {digest}: decompressing")]
    Decompress {
        /// The layer blob.
        digest: crate::image::digest::Digest,
        /// The cause.
        source: io::Error,
    },
    /// An archive given to `load` is malformed.
    #[error("archive {}: {detail}", path.display())]
    Archive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong, or where (a document of the archive) when `source` says what.
        detail: String,
        /// The cause, when there is one.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The image a reference names is not for the platform asked for (a single image
    /// of another platform, or an index without it).
    #[error("{reference} has no image for {platform} (the store has: {available})")]
    NoPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the store has under the reference.
        available: String,
    },
}

pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// The default store root: `/var/lib/flense` for root, else `$XDG_DATA_HOME/flense`
/// (`~/.local/share/flense`).
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/flense");
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("flense");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/flense")
}

/// The directories of the build cache under `cache/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheDir {
    /// `cache/index/`: what each build-cache key produced.
    Index,
    /// `cache/locks/`: one lock file per key being built.
    Locks,
    /// `cache/mounts/`: the persistent `caches:` directories of Run steps.
    Mounts,
    /// `cache/owners/`: owners and modes of layers, for rootless builds.
    Owners,
}

/// A local store rooted at a directory. Cheap to clone; every method is safe to call
/// from several processes at once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating the layout when missing. A relative `root`
    /// is made absolute first: its cache directories are mounted into sandboxes that
    /// run in other working directories.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let root = &std::path::absolute(root).map_err(io_err("resolving", root))?;
        for dir in ["diffids/sha256", "layer-blobs/sha256", "layers"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(io_err("creating", &path))?;
        }
        Self::create_layout(root)
    }

    /// Opens a plain OCI image layout directory (e.g. an `oci:DIR` cache) for its blobs
    /// and tags only, creating `oci-layout`, `index.json`, `blobs/sha256/` and the
    /// `tmp/` directory for atomic writes when missing. Layer methods (unpacking,
    /// diff-ID records) need [`Store::open`].
    pub fn create_layout(root: &Path) -> Result<Store, StoreError> {
        for dir in ["blobs/sha256", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(io_err("creating", &path))?;
        }
        let store = Store {
            root: root.to_path_buf(),
        };
        let layout = root.join("oci-layout");
        if !layout.exists() {
            store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            let _lock = store.lock_index()?;
            if !index.exists() {
                store.write_atomic(&index, br#"{"schemaVersion":2,"manifests":[]}"#)?;
            }
        }
        Ok(store)
    }

    /// The existing OCI image layout at `root`, for reading its blobs and tags;
    /// `None` when `root` has no `index.json`. Creates nothing (the directory may be
    /// read-only).
    pub fn existing_layout(root: &Path) -> Option<Store> {
        root.join("index.json").is_file().then(|| Store {
            root: root.to_path_buf(),
        })
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory for temp files and scratch directories (same filesystem as the
    /// blobs and layers, so they can be renamed into place).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A directory of the build cache (created by its first user).
    pub fn cache_dir(&self, dir: CacheDir) -> PathBuf {
        let name = match dir {
            CacheDir::Index => "index",
            CacheDir::Locks => "locks",
            CacheDir::Mounts => "mounts",
            CacheDir::Owners => "owners",
        };
        self.root.join("cache").join(name)
    }

    /// The build cache's record of hashed files.
    pub fn stat_cache_file(&self) -> PathBuf {
        self.root.join("cache").join("stat-cache.tsv")
    }

    /// The build cache's record of context copy digests by the context's stat
    /// fingerprint (see `builder::layers::cache::ContextDigests`).
    pub fn context_digests_file(&self) -> PathBuf {
        self.root.join("cache").join("context-digests.tsv")
    }

    /// Writes `bytes` to `path` through a temp file and a rename.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        use std::io::Write;
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes)
            .map_err(io_err("writing", tmp.path()))?;
        tmp.as_file()
            .sync_all()
            .map_err(io_err("syncing", tmp.path()))?;
        tmp.persist(path).map_err(|e| StoreError::Io {
            action: "renaming into",
            path: path.into(),
            source: e.error,
        })?;
        Ok(())
    }
}
