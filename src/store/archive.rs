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

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use super::extract::extract_tar;
use super::index::{ref_name, REF_NAME};
use super::{io_err, parse_name, Store, StoreError, StoredImage};
use crate::image::digest::{sha256_hex, HashingReader};
use crate::image::gzip::{ParallelGzipWriter, DEFAULT_LEVEL};
use crate::image::oci::{canonical_json, new_manifest, ImageFormat};
use crate::image::LayerDigests;

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
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Vec<String>,
    layers: Vec<String>,
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
        digest: &str,
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
        let err = |e| StoreError::Io {
            action: "writing",
            path: "archive".into(),
            source: e,
        };
        add_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(err)?;
        let mut manifests = Vec::new();
        let mut blobs: Vec<(String, u64)> = Vec::new();
        for (name, image) in images {
            let d = &image.descriptor;
            let mut tagged = Descriptor::new(d.media_type().clone(), d.size(), d.digest().clone());
            tagged.set_annotations(Some([(REF_NAME.to_owned(), name.clone())].into()));
            manifests.push(tagged);
            blobs.push((d.digest().to_string(), d.size()));
            blobs.push((
                image.manifest.config().digest().to_string(),
                image.manifest.config().size(),
            ));
            blobs.extend(
                image
                    .manifest
                    .layers()
                    .iter()
                    .map(|l| (l.digest().to_string(), l.size())),
            );
        }
        blobs.sort();
        blobs.dedup();
        let index = oci_spec::image::ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(oci_spec::image::MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(crate::image::oci::OciError::from)?;
        add_bytes(tar, "index.json", &canonical_json(&index)?).map_err(err)?;
        add_dir(tar, "blobs").map_err(err)?;
        add_dir(tar, "blobs/sha256").map_err(err)?;
        for (digest, size) in blobs {
            let hex = sha256_hex(&digest).ok_or_else(|| StoreError::BadDigest(digest.clone()))?;
            self.add_blob(tar, &digest, size, &format!("blobs/sha256/{hex}"))?;
        }
        Ok(())
    }

    fn save_docker<W: Write>(
        &self,
        images: &[(String, StoredImage)],
        tar: &mut tar::Builder<W>,
    ) -> Result<(), StoreError> {
        let err = |e| StoreError::Io {
            action: "writing",
            path: "archive".into(),
            source: e,
        };
        let mut entries = Vec::new();
        let mut written = std::collections::HashSet::new();
        for (name, image) in images {
            let config = image.manifest.config();
            let config_hex = sha256_hex(config.digest().as_ref())
                .unwrap_or_default()
                .to_owned();
            let config_name = format!("{config_hex}.json");
            if written.insert(config_name.clone()) {
                self.add_blob(tar, config.digest().as_ref(), config.size(), &config_name)?;
            }
            let diff_ids = image.config.rootfs().diff_ids();
            let mut layers = Vec::new();
            for (i, layer) in image.manifest.layers().iter().enumerate() {
                let digest = layer.digest().to_string();
                let diff_id = diff_ids
                    .get(i)
                    .cloned()
                    .ok_or_else(|| StoreError::BadDocument {
                        what: "config",
                        name: config.digest().to_string(),
                        detail: "fewer diff_ids than layers".into(),
                    })?;
                let diff_hex = sha256_hex(&diff_id)
                    .ok_or_else(|| StoreError::BadDigest(diff_id.clone()))?
                    .to_owned();
                let layer_name = format!("{diff_hex}/layer.tar");
                if written.insert(layer_name.clone()) {
                    add_dir(tar, &diff_hex).map_err(err)?;
                    // Pass 1 measures (and verifies) the uncompressed size; pass 2 streams it.
                    let (got, tar_size) =
                        HashingReader::new(self.layer_tar_stream(&digest, layer.size())?)
                            .drain_and_finish()
                            .map_err(|e| super::blobs::corrupt_or_io(&digest, e))?;
                    if got != diff_id {
                        return Err(StoreError::Corrupt {
                            digest,
                            detail: format!(
                                "uncompressed content hashes to {got}, config says {diff_id}"
                            ),
                        });
                    }
                    let mut stream = self.layer_tar_stream(&digest, layer.size())?;
                    tar.append_data(&mut tar_header(tar_size, 0o644), &layer_name, &mut stream)
                        .map_err(|e| super::blobs::corrupt_or_io(&digest, e))?;
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
        add_bytes(tar, "manifest.json", &manifest).map_err(err)?;
        Ok(())
    }

    /// The uncompressed tar stream of a stored layer blob (verified at its end).
    fn layer_tar_stream(&self, digest: &str, size: u64) -> Result<Box<dyn Read>, StoreError> {
        let mut reader = BufReader::new(self.open_blob(digest, Some(size))?);
        let head = io::BufRead::fill_buf(&mut reader)
            .map_err(|e| super::blobs::corrupt_or_io(digest, e))?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        })
    }

    /// Loads every image of an oci-archive or docker-archive file; returns the names
    /// tagged (and the manifest digests of untagged images).
    pub fn load(&self, archive: &Path) -> Result<Vec<String>, StoreError> {
        let bad = |detail: String| StoreError::Archive {
            path: archive.to_path_buf(),
            detail,
        };
        let file = File::open(archive).map_err(io_err("opening", archive))?;
        let mut reader = BufReader::new(file);
        let head = io::BufRead::fill_buf(&mut reader).map_err(io_err("reading", archive))?;
        let stream: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let tmp = tempfile::Builder::new()
            .prefix(".load-")
            .tempdir_in(self.root.join("tmp"))
            .map_err(io_err("creating a temp dir in", &self.root.join("tmp")))?;
        extract_tar(stream, tmp.path()).map_err(|e| bad(e.to_string()))?;
        let dir = tmp.path();
        let result = if dir.join("index.json").is_file() {
            self.load_oci(dir, &bad)
        } else if dir.join("manifest.json").is_file() {
            self.load_docker(dir, &bad)
        } else {
            Err(bad(
                "neither an OCI layout (index.json) nor a docker archive (manifest.json)".into(),
            ))
        };
        super::unpack::remove_tree(tmp.path())?;
        result
    }

    fn import_file(&self, path: &Path, digest: &str, size: u64) -> Result<(), StoreError> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut file = File::open(path).map_err(io_err("opening", path))?;
        self.put_blob_verified(&mut file, digest, size)
    }

    fn load_oci(
        &self,
        dir: &Path,
        bad: &dyn Fn(String) -> StoreError,
    ) -> Result<Vec<String>, StoreError> {
        let index: ImageIndex = serde_json::from_slice(
            &fs::read(dir.join("index.json")).map_err(io_err("reading", dir))?,
        )
        .map_err(|e| bad(format!("index.json: {e}")))?;
        let blob = |digest: &str| -> Result<PathBuf, StoreError> {
            let hex =
                sha256_hex(digest).ok_or_else(|| bad(format!("invalid digest {digest:?}")))?;
            Ok(dir.join("blobs/sha256").join(hex))
        };
        let mut loaded = Vec::new();
        for d in index.manifests() {
            let digest = d.digest().to_string();
            self.import_file(&blob(&digest)?, &digest, d.size())?;
            let mut todo = vec![(d.media_type().clone(), digest.clone())];
            while let Some((media_type, digest)) = todo.pop() {
                let bytes = self.read_blob(&digest)?;
                if super::images::is_index(&media_type) {
                    let child: ImageIndex = serde_json::from_slice(&bytes)
                        .map_err(|e| bad(format!("{digest}: {e}")))?;
                    for m in child.manifests() {
                        let md = m.digest().to_string();
                        if blob(&md)?.is_file() {
                            self.import_file(&blob(&md)?, &md, m.size())?;
                            todo.push((m.media_type().clone(), md));
                        }
                    }
                    continue;
                }
                let manifest: ImageManifest =
                    serde_json::from_slice(&bytes).map_err(|e| bad(format!("{digest}: {e}")))?;
                for b in std::iter::once(manifest.config()).chain(manifest.layers()) {
                    let bd = b.digest().to_string();
                    self.import_file(&blob(&bd)?, &bd, b.size())?;
                }
            }
            let annotations = d.annotations().clone().unwrap_or_default();
            let name = annotations
                .get("io.containerd.image.name")
                .map(String::as_str)
                .or_else(|| ref_name(d));
            match name {
                Some(name) => {
                    let name = parse_name(name)?;
                    self.set_tag(&name, d)?;
                    loaded.push(name);
                }
                None => loaded.push(digest),
            }
        }
        Ok(loaded)
    }

    fn load_docker(
        &self,
        dir: &Path,
        bad: &dyn Fn(String) -> StoreError,
    ) -> Result<Vec<String>, StoreError> {
        let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(
            &fs::read(dir.join("manifest.json")).map_err(io_err("reading", dir))?,
        )
        .map_err(|e| bad(format!("manifest.json: {e}")))?;
        let inside = |name: &str| -> Result<PathBuf, StoreError> {
            let rel = crate::image::layer::normalise_path(Path::new(name))
                .map_err(|e| bad(e.to_string()))?;
            Ok(dir.join(rel))
        };
        let mut loaded = Vec::new();
        for entry in entries {
            let config_bytes = fs::read(inside(&entry.config)?)
                .map_err(io_err("reading", &inside(&entry.config)?))?;
            let config: oci_spec::image::ImageConfiguration = serde_json::from_slice(&config_bytes)
                .map_err(|e| bad(format!("{}: {e}", entry.config)))?;
            let diff_ids = config.rootfs().diff_ids().clone();
            if diff_ids.len() != entry.layers.len() {
                return Err(bad(format!(
                    "{}: {} layers but {} diff_ids",
                    entry.config,
                    entry.layers.len(),
                    diff_ids.len()
                )));
            }
            let mut layers = Vec::new();
            for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
                layers.push(self.load_layer_file(&inside(path)?, diff_id)?);
            }
            self.put_blob(&config_bytes)?;
            let manifest = new_manifest(ImageFormat::Oci, &config_bytes, &layers)?;
            let descriptor = self.put_manifest(&manifest)?;
            if entry.repo_tags.is_empty() {
                loaded.push(descriptor.digest().to_string());
            }
            for tag in &entry.repo_tags {
                let name = parse_name(tag)?;
                self.set_tag(&name, &descriptor)?;
                loaded.push(name);
            }
        }
        Ok(loaded)
    }

    /// Stores a docker-archive layer file (plain or gzipped tar), checking its diff-ID;
    /// a plain tar is gzipped as-is (same diff-ID), or reused if compressed before.
    fn load_layer_file(&self, path: &Path, diff_id: &str) -> Result<LayerDigests, StoreError> {
        let mut file = BufReader::new(File::open(path).map_err(io_err("opening", path))?);
        let gzipped = io::BufRead::fill_buf(&mut file)
            .map_err(io_err("reading", path))?
            .starts_with(&[0x1f, 0x8b]);
        if !gzipped {
            if let Some(digest) = self.blob_of_diff_id(diff_id)? {
                let size = fs::metadata(self.blob_path(&digest)?)
                    .map_err(io_err("reading", path))?
                    .len();
                let tar_size = fs::metadata(path).map_err(io_err("reading", path))?.len();
                return Ok(LayerDigests {
                    digest,
                    size,
                    diff_id: diff_id.to_owned(),
                    tar_size,
                });
            }
        }
        let mut writer = self.blob_writer()?;
        let (got_diff_id, tar_size) = if gzipped {
            let mut tee = HashingReader::new(file);
            io::copy(&mut tee, &mut writer).map_err(io_err("reading", path))?;
            drop(tee);
            let file = File::open(path).map_err(io_err("opening", path))?;
            HashingReader::new(flate2::read::MultiGzDecoder::new(file))
                .drain_and_finish()
                .map_err(io_err("reading", path))?
        } else {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut gz = ParallelGzipWriter::new(&mut writer, DEFAULT_LEVEL, threads)
                .map_err(io_err("writing", path))?;
            let mut tee = HashingReader::new(file);
            io::copy(&mut tee, &mut gz).map_err(io_err("reading", path))?;
            gz.finish().map_err(io_err("writing", path))?;
            tee.drain_and_finish().map_err(io_err("reading", path))?
        };
        if got_diff_id != diff_id {
            return Err(StoreError::Archive {
                path: path.to_path_buf(),
                detail: format!("layer content hashes to {got_diff_id}, config says {diff_id}"),
            });
        }
        let (digest, size) = writer.commit(None)?;
        self.record_layer(&digest, diff_id)?;
        Ok(LayerDigests {
            digest,
            size,
            diff_id: diff_id.to_owned(),
            tar_size,
        })
    }
}
