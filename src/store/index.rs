//! `index.json`: the tags of the store, as `org.opencontainers.image.ref.name`
//! annotations holding the full normalised reference. Updates happen under an
//! exclusive lock on `index.lock` and replace the file atomically.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};

use fs2::FileExt;
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use super::{io_err, Store, StoreError};
use crate::image::digest::Digest;
use crate::image::oci::canonical_json;

/// The annotation that names a manifest in an OCI layout index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An exclusive lock on the store's index (or another lock file); released when dropped.
pub struct IndexLock(File);

impl Drop for IndexLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

/// A shared hold on the store's blobs: while any hold lives, `prune` waits. Take one
/// before writing the first blob of an image and keep it until the image is tagged,
/// so a concurrent `prune` cannot delete blobs that are about to become reachable.
/// (Never call `prune` while holding one: it would wait for itself.)
pub struct BlobHold(File);

impl Drop for BlobHold {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

/// Opens (creating) the lock file at `path`, for a caller to lock.
pub(crate) fn open_lock_file(path: &std::path::Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("opening", path))
}

impl Store {
    fn gc_lock_file(&self) -> Result<File, StoreError> {
        open_lock_file(&self.root.join("gc.lock"))
    }

    /// Takes a shared [`BlobHold`] (waits while a prune runs).
    pub fn hold_blobs(&self) -> Result<BlobHold, StoreError> {
        let file = self.gc_lock_file()?;
        file.lock_shared()
            .map_err(io_err("locking", &self.root.join("gc.lock")))?;
        Ok(BlobHold(file))
    }

    /// Takes the exclusive side of the blob hold: no writer holds blobs meanwhile.
    pub(crate) fn hold_blobs_exclusively(&self) -> Result<BlobHold, StoreError> {
        let file = self.gc_lock_file()?;
        file.lock_exclusive()
            .map_err(io_err("locking", &self.root.join("gc.lock")))?;
        Ok(BlobHold(file))
    }

    /// Takes the index lock (blocking until other processes release it).
    pub fn lock_index(&self) -> Result<IndexLock, StoreError> {
        self.lock_file("index.lock")
    }

    /// Takes the exclusive lock of the lock file `name` under the root (blocking).
    pub(crate) fn lock_file(&self, name: &str) -> Result<IndexLock, StoreError> {
        let path = self.root.join(name);
        let file = open_lock_file(&path)?;
        file.lock_exclusive().map_err(io_err("locking", &path))?;
        Ok(IndexLock(file))
    }

    /// Takes the shared lock of the lock file `name` under the root (blocking).
    pub(crate) fn lock_file_shared(&self, name: &str) -> Result<IndexLock, StoreError> {
        let path = self.root.join(name);
        let file = open_lock_file(&path)?;
        file.lock_shared().map_err(io_err("locking", &path))?;
        Ok(IndexLock(file))
    }

    /// Reads `index.json`.
    pub fn read_index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.root.join("index.json");
        let bytes = std::fs::read(&path).map_err(io_err("reading", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            what: "index",
            name: path.display().to_string(),
            source,
        })
    }

    fn write_index(&self, _lock: &IndexLock, manifests: Vec<Descriptor>) -> Result<(), StoreError> {
        let mut manifests = manifests;
        manifests.sort_by(|a, b| {
            ref_name(a)
                .cmp(&ref_name(b))
                .then_with(|| a.digest().to_string().cmp(&b.digest().to_string()))
        });
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(crate::image::oci::OciError::from)?;
        let bytes = canonical_json(&index)?;
        self.write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Every tag with the manifest descriptor it names, sorted by reference.
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>, StoreError> {
        let mut out: Vec<(String, Descriptor)> = self
            .read_index()?
            .manifests()
            .iter()
            .filter_map(|d| ref_name(d).map(|n| (n.to_owned(), d.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Points the full reference `name` at `manifest` (replacing an older target).
    pub fn set_tag(&self, name: &str, manifest: &Descriptor) -> Result<(), StoreError> {
        let lock = self.lock_index()?;
        let mut manifests: Vec<Descriptor> = self
            .read_index()?
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(name))
            .cloned()
            .collect();
        let mut tagged = Descriptor::new(
            manifest.media_type().clone(),
            manifest.size(),
            manifest.digest().clone(),
        );
        tagged.set_annotations(Some(HashMap::from([(
            REF_NAME.to_owned(),
            name.to_owned(),
        )])));
        manifests.push(tagged);
        self.write_index(&lock, manifests)
    }

    /// Removes the tag `name`; returns whether it existed.
    pub fn remove_tag(&self, name: &str) -> Result<bool, StoreError> {
        let lock = self.lock_index()?;
        let all = self.read_index()?.manifests().clone();
        let kept: Vec<Descriptor> = all
            .iter()
            .filter(|d| ref_name(d) != Some(name))
            .cloned()
            .collect();
        let removed = kept.len() != all.len();
        if removed {
            self.write_index(&lock, kept)?;
        }
        Ok(removed)
    }
}

impl Store {
    /// Removes every name of the image whose manifest (or index) digest is `digest`;
    /// returns the names removed.
    pub fn remove_names_of(&self, digest: &Digest) -> Result<Vec<String>, StoreError> {
        let lock = self.lock_index()?;
        let all = self.read_index()?.manifests().clone();
        let (gone, kept): (Vec<Descriptor>, Vec<Descriptor>) = all
            .into_iter()
            .partition(|d| d.digest() == digest && ref_name(d).is_some());
        if !gone.is_empty() {
            self.write_index(&lock, kept)?;
        }
        Ok(gone
            .iter()
            .filter_map(|d| ref_name(d).map(str::to_owned))
            .collect())
    }
}

/// The `ref.name` annotation of a descriptor.
pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}
