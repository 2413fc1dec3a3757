//! `save` and `load`: oci-archive (a tarred OCI image layout) and docker-archive (the
//! `docker save` format: `manifest.json`, `<config hex>.json`, `<diff-id hex>/layer.tar`,
//! loadable by `podman load` and `docker load`).
//!
//! Archive entries are written in a fixed order with fixed metadata (mode 0644, uid/gid
//! 0, mtime 0), so saving the same images twice gives the same bytes. Loading extracts
//! the archive with the same safe extractor as layers, checks every blob against its
//! digest, and tags each image with its `org.opencontainers.image.ref.name` /
//! `io.containerd.image.name` annotation (OCI) or `RepoTags` (docker), normalised
//! (`busybox` -> `localhost/busybox:latest`).

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use super::blobs::store_hex;
use super::index::REF_NAME;
use super::{io_err, Store, StoreError, StoredImage};
use crate::image::digest::{parse_sha256, AsDigest, Digest, HashingReader};
use crate::image::oci::canonical_json;

/// Archive formats of `save` and `load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A tarred OCI image layout.
    OciArchive,
    /// The `docker save` layout.
    DockerArchive,
}

/// One image of a docker-archive `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerArchiveEntry {
    pub(crate) config: String,
    #[serde(default)]
    pub(crate) repo_tags: Vec<String>,
    pub(crate) layers: Vec<String>,
}

fn tar_header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> io::Result<()> {
    tar.append_data(&mut tar_header(bytes.len() as u64, 0o644), name, bytes)
}

fn add_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut h = tar_header(0, 0o755);
    h.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut h, name, io::empty())
}

impl Store {
    /// Writes `images` (with the names they are saved under) to `out` as `format`.
    pub fn save(
        &self,
        images: &[(String, StoredImage)],
        format: ArchiveFormat,
        out: &Path,
    ) -> Result<(), StoreError> {
        // The temp file sits beside the output so the final rename never crosses
        // filesystems.
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".flense-save-")
            .tempfile_in(&dir)
            .map_err(io_err("creating a temp file in", &dir))?;
        {
            let mut tar = tar::Builder::new(io::BufWriter::new(tmp.as_file_mut()));
            let result = match format {
                ArchiveFormat::OciArchive => self.save_oci(images, &mut tar),
                ArchiveFormat::DockerArchive => self.save_docker(images, &mut tar),
            };
            result?;
            tar.finish().map_err(io_err("writing", out))?;
            tar.into_inner()
                .map_err(io_err("writing", out))?
                .flush()
                .map_err(io_err("writing", out))?;
        }
        let _ = fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        );
        tmp.persist(out).map_err(|e| StoreError::Io {
            action: "writing",
            path: out.into(),
            source: e.error,
        })?;
        Ok(())
    }

    fn add_blob<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        digest: &Digest,
        size: u64,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut reader = self.open_blob(digest, Some(size))?;
        tar.append_data(&mut tar_header(size, 0o644), name, &mut reader)
            .map_err(|e| super::blobs::corrupt_or_io(digest, e))
    }

    fn save_oci<W: Write>(
        &self,
        images: &[(String, StoredImage)],
        tar: &mut tar::Builder<W>,
    ) -> Result<(), StoreError> {
        add_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(archive_write_err)?;
        let mut manifests = Vec::new();
        let mut blobs: Vec<(Digest, u64)> = Vec::new();
        for (name, image) in images {
            let (d, platforms) = match self.complete_index(name, image) {
                Some((index, platforms)) => (index, platforms),
                None => (
                    image.descriptor.clone(),
                    vec![(image.descriptor.clone(), image.manifest.clone())],
                ),
            };
            let mut tagged = Descriptor::new(d.media_type().clone(), d.size(), d.digest().clone());
            tagged.set_annotations(Some([(REF_NAME.to_owned(), name.clone())].into()));
            manifests.push(tagged);
            blobs.push((d.digest().clone(), d.size()));
            for (descriptor, manifest) in platforms {
                blobs.push((descriptor.digest().clone(), descriptor.size()));
                blobs.extend(
                    std::iter::once(manifest.config())
                        .chain(manifest.layers())
                        .map(|b| (b.digest().clone(), b.size())),
                );
            }
        }
        blobs.sort_by(|a, b| (a.0.as_ref(), a.1).cmp(&(b.0.as_ref(), b.1)));
        blobs.dedup();
        let index = oci_spec::image::ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(oci_spec::image::MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(crate::image::oci::OciError::from)?;
        add_bytes(tar, "index.json", &canonical_json(&index)?).map_err(archive_write_err)?;
        add_dir(tar, "blobs").map_err(archive_write_err)?;
        add_dir(tar, "blobs/sha256").map_err(archive_write_err)?;
        for (digest, size) in blobs {
            let hex = store_hex(&digest)?;
            self.add_blob(tar, &digest, size, &format!("blobs/sha256/{hex}"))?;
        }
        Ok(())
    }

    /// The index `name` is tagged with, when it holds `image` and the store has every
    /// platform's manifest, config and layers (`flense pull --all-platforms`): an OCI
    /// archive then carries it whole. Returns it and its platforms' manifests.
    #[allow(clippy::type_complexity)]
    fn complete_index(
        &self,
        name: &str,
        image: &StoredImage,
    ) -> Option<(Descriptor, Vec<(Descriptor, ImageManifest)>)> {
        let (_, tagged) = self.tags().ok()?.into_iter().find(|(n, _)| n == name)?;
        if !super::images::is_index(tagged.media_type()) {
            return None;
        }
        let index: ImageIndex =
            serde_json::from_slice(&self.read_blob(tagged.digest()).ok()?).ok()?;
        let chosen = image.descriptor.digest();
        if !index.manifests().iter().any(|m| m.digest() == chosen) {
            return None;
        }
        let mut platforms = Vec::new();
        for m in index.manifests() {
            let manifest: ImageManifest =
                serde_json::from_slice(&self.read_blob(m.digest()).ok()?).ok()?;
            let complete = std::iter::once(manifest.config())
                .chain(manifest.layers())
                .all(|b| self.has_blob(b.digest()));
            if !complete {
                return None;
            }
            platforms.push((m.clone(), manifest));
        }
        Some((tagged, platforms))
    }

    fn save_docker<W: Write>(
        &self,
        images: &[(String, StoredImage)],
        tar: &mut tar::Builder<W>,
    ) -> Result<(), StoreError> {
        let mut entries = Vec::new();
        let mut written = std::collections::HashSet::new();
        for (name, image) in images {
            let config = image.manifest.config();
            let config_name = format!("{}.json", store_hex(config.digest())?);
            if written.insert(config_name.clone()) {
                self.add_blob(tar, config.digest(), config.size(), &config_name)?;
            }
            let diff_ids = image.config.rootfs().diff_ids();
            let mut layers = Vec::new();
            for (i, layer) in image.manifest.layers().iter().enumerate() {
                let digest = layer.digest();
                let diff_id = diff_ids.get(i).ok_or_else(|| StoreError::BadDocument {
                    what: "config",
                    name: config.digest().to_string(),
                    detail: "fewer diff_ids than layers".into(),
                })?;
                let diff_id =
                    parse_sha256(diff_id).ok_or_else(|| StoreError::BadDigest(diff_id.clone()))?;
                let diff_hex = diff_id.digest();
                let layer_name = format!("{diff_hex}/layer.tar");
                if written.insert(layer_name.clone()) {
                    add_dir(tar, diff_hex).map_err(archive_write_err)?;
                    // Pass 1 measures (and verifies) the uncompressed size; pass 2 streams it.
                    let (got, tar_size) =
                        HashingReader::new(self.layer_tar_stream(digest, layer.size())?)
                            .drain()
                            .map_err(|e| super::blobs::corrupt_or_io(digest, e))?;
                    if got != diff_id {
                        return Err(StoreError::Corrupt {
                            digest: digest.to_string(),
                            detail: format!(
                                "uncompressed content hashes to {got}, config says {diff_id}"
                            ),
                        });
                    }
                    let mut stream = self.layer_tar_stream(digest, layer.size())?;
                    tar.append_data(&mut tar_header(tar_size, 0o644), &layer_name, &mut stream)
                        .map_err(|e| super::blobs::corrupt_or_io(digest, e))?;
                }
                layers.push(layer_name);
            }
            entries.push(DockerArchiveEntry {
                config: config_name,
                repo_tags: vec![name.clone()],
                layers,
            });
        }
        let manifest = serde_json::to_vec(&entries).map_err(crate::image::oci::OciError::from)?;
        add_bytes(tar, "manifest.json", &manifest).map_err(archive_write_err)?;
        Ok(())
    }

    /// The uncompressed tar stream of a stored layer blob (verified at its end).
    pub fn layer_tar_stream(
        &self,
        digest: &(impl AsDigest + ?Sized),
        size: u64,
    ) -> Result<Box<dyn Read>, StoreError> {
        let reader = BufReader::new(self.open_blob(digest, Some(size))?);
        super::extract::uncompressed(reader).map_err(|e| super::blobs::corrupt_or_io(digest, e))
    }
}

/// An error writing the archive being saved.
fn archive_write_err(source: std::io::Error) -> StoreError {
    StoreError::Io {
        action: "writing",
        path: "archive".into(),
        source,
    }
}
