//! `load`: images from an oci-archive or docker-archive file (see [`super::archive`]).

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageIndex, ImageManifest};

use super::archive::DockerArchiveEntry;
use super::extract::extract_tar;
use super::index::ref_name;
use super::{io_err, parse_name, Store, StoreError};
use crate::image::digest::{parse_sha256, AsDigest, Digest, HashingReader};
use crate::image::gzip::{ParallelGzipWriter, DEFAULT_LEVEL};
use crate::image::oci::{new_manifest, ImageFormat};
use crate::image::LayerDigests;

/// Errors about the archive being loaded.
struct Bad<'a>(&'a Path);

impl Bad<'_> {
    /// The archive is malformed: `detail` says how.
    fn at(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Archive {
            path: self.0.to_path_buf(),
            detail: detail.into(),
            source: None,
        }
    }

    /// `what` (a document of the archive, or a step of loading it) failed with `source`.
    fn because(
        &self,
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Archive {
            path: self.0.to_path_buf(),
            detail: what.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl Store {
    /// Loads every image of an oci-archive or docker-archive file; returns the names
    /// tagged (and the manifest digests of untagged images).
    pub fn load(&self, archive: &Path) -> Result<Vec<String>, StoreError> {
        let bad = Bad(archive);
        let file = File::open(archive).map_err(io_err("opening", archive))?;
        let stream = super::extract::uncompressed(BufReader::new(file))
            .map_err(io_err("reading", archive))?;
        let tmp = self.scratch_dir(".load-")?;
        extract_tar(stream, tmp.path()).map_err(|e| bad.because("extracting", e))?;
        let dir = tmp.path();
        let result = if dir.join("index.json").is_file() {
            self.load_oci(dir, &bad)
        } else if dir.join("manifest.json").is_file() {
            self.load_docker(dir, &bad)
        } else {
            Err(bad.at("neither an OCI layout (index.json) nor a docker archive (manifest.json)"))
        };
        super::unpack::remove_tree(tmp.path())?;
        result
    }

    fn import_file(&self, path: &Path, digest: &Digest, size: u64) -> Result<(), StoreError> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut file = File::open(path).map_err(io_err("opening", path))?;
        self.put_blob_verified(&mut file, digest, size)
    }

    fn load_oci(&self, dir: &Path, bad: &Bad<'_>) -> Result<Vec<String>, StoreError> {
        let index: ImageIndex = serde_json::from_slice(
            &fs::read(dir.join("index.json")).map_err(io_err("reading", dir))?,
        )
        .map_err(|e| bad.because("index.json", e))?;
        let blob = |digest: &Digest| -> Result<PathBuf, StoreError> {
            let hex = digest
                .sha256_hex()
                .ok_or_else(|| bad.at(format!("invalid digest {digest:?}")))?;
            Ok(dir.join("blobs/sha256").join(hex))
        };
        let mut loaded = Vec::new();
        for d in index.manifests() {
            let digest = d.digest();
            self.import_file(&blob(digest)?, digest, d.size())?;
            let mut todo = vec![(d.media_type().clone(), digest.clone())];
            while let Some((media_type, digest)) = todo.pop() {
                let bytes = self.read_blob(&digest)?;
                if super::images::is_index(&media_type) {
                    let child: ImageIndex = serde_json::from_slice(&bytes)
                        .map_err(|e| bad.because(digest.to_string(), e))?;
                    for m in child.manifests() {
                        let md = m.digest();
                        if blob(md)?.is_file() {
                            self.import_file(&blob(md)?, md, m.size())?;
                            todo.push((m.media_type().clone(), md.clone()));
                        }
                    }
                    continue;
                }
                let manifest: ImageManifest = serde_json::from_slice(&bytes)
                    .map_err(|e| bad.because(digest.to_string(), e))?;
                for b in std::iter::once(manifest.config()).chain(manifest.layers()) {
                    self.import_file(&blob(b.digest())?, b.digest(), b.size())?;
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
                None => loaded.push(digest.to_string()),
            }
        }
        Ok(loaded)
    }

    fn load_docker(&self, dir: &Path, bad: &Bad<'_>) -> Result<Vec<String>, StoreError> {
        let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(
            &fs::read(dir.join("manifest.json")).map_err(io_err("reading", dir))?,
        )
        .map_err(|e| bad.because("manifest.json", e))?;
        let inside = |name: &str| -> Result<PathBuf, StoreError> {
            let rel = crate::image::layer::normalise_path(Path::new(name))
                .map_err(|e| bad.because(name, e))?;
            Ok(dir.join(rel))
        };
        let mut loaded = Vec::new();
        for entry in entries {
            let config_bytes = fs::read(inside(&entry.config)?)
                .map_err(io_err("reading", &inside(&entry.config)?))?;
            let config: oci_spec::image::ImageConfiguration =
                serde_json::from_slice(&config_bytes).map_err(|e| bad.because(&entry.config, e))?;
            let diff_ids = config.rootfs().diff_ids().clone();
            if diff_ids.len() != entry.layers.len() {
                return Err(bad.at(format!(
                    "{}: {} layers but {} diff_ids",
                    entry.config,
                    entry.layers.len(),
                    diff_ids.len()
                )));
            }
            let mut layers = Vec::new();
            for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
                let diff_id = parse_sha256(diff_id).ok_or_else(|| {
                    bad.at(format!("{}: invalid diff_id {diff_id:?}", entry.config))
                })?;
                layers.push(self.load_layer_file(&inside(path)?, &diff_id)?);
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
    fn load_layer_file(&self, path: &Path, diff_id: &Digest) -> Result<LayerDigests, StoreError> {
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
                    diff_id: diff_id.clone(),
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
                .drain()
                .map_err(io_err("reading", path))?
        } else {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut gz = ParallelGzipWriter::new(&mut writer, DEFAULT_LEVEL, threads)
                .map_err(io_err("writing", path))?;
            let mut tee = HashingReader::new(file);
            io::copy(&mut tee, &mut gz).map_err(io_err("reading", path))?;
            gz.finish().map_err(io_err("writing", path))?;
            tee.drain().map_err(io_err("reading", path))?
        };
        if got_diff_id != *diff_id {
            return Err(StoreError::Archive {
                path: path.to_path_buf(),
                detail: format!("layer content hashes to {got_diff_id}, config says {diff_id}"),
                source: None,
            });
        }
        let (digest, size) = writer.commit(None)?;
        self.record_layer(&digest, diff_id)?;
        Ok(LayerDigests {
            digest,
            size,
            diff_id: diff_id.clone(),
            tar_size,
        })
    }
}
