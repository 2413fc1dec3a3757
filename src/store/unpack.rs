//! Unpacked layers, by diff-ID, for the runtime's overlay `lowerdir`s.
//!
//! ```text
//! <root>/layers/<diff-id hex>/diff/            the layer's files (one overlay lowerdir)
//! <root>/layers/<diff-id hex>/whiteouts.json   {"whiteouts":[..],"opaque":[..],
//!                                               "whiteout_devices":bool,"skipped_devices":[..]}
//! ```
//! A layer directory appears only complete: extraction happens in a scratch directory
//! `<root>/tmp/layer-*` and is renamed into place, and a blob whose gzip or tar digest
//! does not match is discarded. In `diff/`, whiteouts are overlay char 0/0 devices and
//! opaque directories carry `user.overlay.opaque=y` (and `trusted.overlay.opaque=y`
//! as root); so the runtime mounts `lowerdir=<top>/diff:...:<base>/diff` with
//! `userxattr` inside its user namespace. When `whiteout_devices` is false (an old
//! kernel refused mknod 0/0), or without overlayfs, apply the lists in
//! `whiteouts.json` instead (delete those paths / empty those dirs from lower layers).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::blobs::store_hex;
use super::extract::stream::decompress_in_background;
use super::extract::{extract_tar, ExtractReport};
use super::{io_err, ScratchDir, Store, StoreError, StoredImage};
use crate::image::digest::{parse_sha256, Digest};

/// An unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedLayer {
    /// The layer's diff-ID.
    pub diff_id: Digest,
    /// The layer's files: use as an overlay lowerdir.
    pub diff: PathBuf,
    /// Whiteouts, opaque directories and skipped devices of this layer.
    pub report: ExtractReport,
}

impl Store {
    /// A new directory under `tmp/` in which a layer is put together before it is
    /// renamed into `layers/` (same filesystem; removed when dropped).
    pub(crate) fn layer_staging_dir(&self) -> Result<ScratchDir, StoreError> {
        self.scratch_dir("layer-")
    }

    /// The directory of the unpacked layer with this diff-ID (whether or not present).
    pub fn layer_dir(&self, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("layers").join(store_hex(diff_id)?))
    }

    /// The unpacked layer with this diff-ID, if it has been unpacked.
    pub fn unpacked_layer(&self, diff_id: &Digest) -> Result<Option<UnpackedLayer>, StoreError> {
        let dir = self.layer_dir(diff_id)?;
        let meta = dir.join("whiteouts.json");
        let bytes = match fs::read(&meta) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StoreError::Io {
                    action: "reading",
                    path: meta,
                    source: e,
                })
            }
        };
        let report = serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            what: "layer record",
            name: meta.display().to_string(),
            source,
        })?;
        Ok(Some(UnpackedLayer {
            diff_id: diff_id.clone(),
            diff: dir.join("diff"),
            report,
        }))
    }

    /// Unpacks the layer blob `digest` (gzip or plain tar) once, by diff-ID, in one
    /// streaming pass that verifies both the blob digest and, when `diff_id` is given
    /// (from the image config), the diff-ID. Returns the existing unpacked layer when
    /// there is one.
    pub fn unpack_layer(
        &self,
        digest: &Digest,
        diff_id: Option<&Digest>,
    ) -> Result<UnpackedLayer, StoreError> {
        let known = match diff_id {
            Some(d) => Some(d.clone()),
            None => self.recorded_diff_id(digest)?,
        };
        if let Some(known) = &known {
            if let Some(layer) = self.unpacked_layer(known)? {
                return Ok(layer);
            }
        }
        let tmp = self.layer_staging_dir()?;
        let diff = tmp.path().join("diff");
        fs::create_dir(&diff).map_err(io_err("creating", &diff))?;
        fs::set_permissions(&diff, fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod", &diff))?;

        let (file, path) = self.open_blob_file(digest)?;
        let size = file.metadata().map(|m| m.len()).ok();
        let activity = std::sync::Arc::new(crate::activity::begin(
            || {
                format!(
                    "unpacking layer {}",
                    digest.digest().get(..12).unwrap_or("")
                )
            },
            size,
        ));
        let file = crate::activity::CountingReader::new(file, activity);
        let mut stream = decompress_in_background(file).map_err(io_err("reading", &path))?;
        let report = extract_tar(&mut stream, &diff).map_err(|source| StoreError::Extract {
            digest: digest.clone(),
            source,
        })?;
        let digests = stream.finish().map_err(|source| StoreError::Decompress {
            digest: digest.clone(),
            source,
        })?;
        let got_diff_id = digests.tar;
        if digests.blob != *digest {
            return Err(StoreError::Corrupt {
                digest: digest.to_string(),
                detail: format!("content hashes to {}", digests.blob),
            });
        }
        if let Some(want) = &known {
            if *want != got_diff_id {
                return Err(StoreError::Unpack {
                    digest: digest.clone(),
                    detail: format!(
                        "uncompressed content hashes to {got_diff_id}, expected diff-ID {want}"
                    ),
                });
            }
        }
        self.record_layer(digest, &got_diff_id)?;
        self.place_layer(tmp, &got_diff_id, report)
    }

    /// Writes `report` as the record of the layer assembled in `tmp` (its `diff/`
    /// complete) and renames it into place as the unpacked layer `diff_id`. When another
    /// process placed that layer meanwhile, theirs is kept and returned.
    pub(super) fn place_layer(
        &self,
        tmp: ScratchDir,
        diff_id: &Digest,
        report: ExtractReport,
    ) -> Result<UnpackedLayer, StoreError> {
        let meta = serde_json::to_vec(&report).map_err(|source| StoreError::Json {
            what: "layer record",
            name: diff_id.to_string(),
            source,
        })?;
        fs::write(tmp.path().join("whiteouts.json"), meta)
            .map_err(io_err("writing", tmp.path()))?;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod", tmp.path()))?;
        let final_dir = self.layer_dir(diff_id)?;
        let tmp = tmp.keep();
        let tmp_path = tmp.path();
        if let Err(e) = fs::rename(tmp_path, &final_dir) {
            // Another process placed the same layer meanwhile: keep theirs.
            remove_tree(tmp_path)?;
            return match self.unpacked_layer(diff_id)? {
                Some(existing) => Ok(existing),
                None => Err(StoreError::Io {
                    action: "renaming into",
                    path: final_dir,
                    source: e,
                }),
            };
        }
        Ok(UnpackedLayer {
            diff_id: diff_id.clone(),
            diff: final_dir.join("diff"),
            report,
        })
    }

    /// Unpacks every layer of an image, base first (the order of overlay lowerdirs is
    /// the reverse: the last layer is the topmost).
    pub fn unpack_image(&self, image: &StoredImage) -> Result<Vec<UnpackedLayer>, StoreError> {
        let diff_ids = image.config.rootfs().diff_ids();
        image
            .manifest
            .layers()
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let diff_id = diff_ids
                    .get(i)
                    .map(|d| parse_sha256(d).ok_or_else(|| StoreError::BadDigest(d.clone())))
                    .transpose()?;
                self.unpack_layer(layer.digest(), diff_id.as_ref())
            })
            .collect()
    }
}

/// Removes a directory tree even where directories are read-only (as extracted from a
/// layer): makes directories writable and retries.
pub fn remove_tree(path: &Path) -> Result<(), StoreError> {
    if fs::remove_dir_all(path).is_ok() || !path.exists() {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    fs::remove_dir_all(path).map_err(io_err("removing", path))
}
