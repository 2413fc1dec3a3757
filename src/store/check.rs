//! `flense check`: verifying the store and repairing what is broken.
//!
//! Checked: every blob's digest; every manifest, index, config and layer blob reachable
//! from `index.json` present, intact and of the size its descriptor says; every unpacked
//! layer complete (its `whiteouts.json`, written last, present) and its files matching
//! the layer blob it was recorded from; every build-cache record pointing at a stored
//! layer blob; no leftovers of killed processes under `tmp/`. Locks are `flock`s, which
//! go with the process holding them, so no lock file is ever stale (`flense prune`
//! removes unused build-cache lock files). An index names every platform, but only the
//! manifest this host uses must be stored.
//!
//! A repair deletes what is broken so the next pull or build fetches or makes it again:
//! corrupt blobs, the names of images that are incomplete, unpacked layers that are
//! incomplete or differ from their blob, dangling build-cache records and leftovers.
//! A blob a name still reaches is never deleted unless it is corrupt.

mod layers;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::images::{is_index, pick_platform};
use super::{io_err, CacheDir, Store, StoreError};
use crate::image::cache_manifest::CacheRecord;
use crate::image::digest::{parse_sha256, Digest};

/// One inconsistency of the store, and what a repair does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// One line naming the digest or path and what is wrong.
    pub what: String,
    /// What `--repair` does.
    pub fix: Fix,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

/// A repair action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Remove the name from `index.json` (its image is incomplete).
    Untag(String),
    /// Delete the blob (it is corrupt).
    DeleteBlob(Digest),
    /// Delete the unpacked layer directory.
    DeleteLayer(PathBuf),
    /// Delete the file (a build-cache or diff-ID record).
    DeleteFile(PathBuf),
    /// Reclaim the leftovers of killed processes under `tmp/`.
    ReclaimLeftovers,
}

/// What [`Store::check`] found; empty when the store is consistent.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Every problem found, in the order checked.
    pub problems: Vec<Problem>,
}

/// What a blob is to the image that reaches it.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// An index or a manifest.
    Document,
    Config,
    Layer,
}

fn is_image_config(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageConfig)
        || media_type.to_string() == crate::image::oci::DOCKER_CONFIG
}

/// Blobs by state: `good` are present and intact.
struct BlobStates {
    good: BTreeSet<String>,
    sizes: HashMap<String, u64>,
}

impl Store {
    /// Checks the whole store (see the module docs); waits for running builds, pulls
    /// and runs to finish first, and keeps them out meanwhile.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let _hold = self.hold_blobs_exclusively()?;
        self.check_held()
    }

    /// Checks the store and applies every fix; returns the problems that were fixed.
    pub fn check_and_repair(&self) -> Result<CheckReport, StoreError> {
        let _hold = self.hold_blobs_exclusively()?;
        let report = self.check_held()?;
        let mut done: Vec<&Fix> = Vec::new();
        for fix in report.problems.iter().map(|p| &p.fix) {
            if !done.contains(&fix) {
                self.apply(fix)?;
                done.push(fix);
            }
        }
        Ok(report)
    }

    fn check_held(&self) -> Result<CheckReport, StoreError> {
        let mut problems = Vec::new();
        let blobs = self.check_blobs(&mut problems)?;
        for (name, descriptor) in self.tags()? {
            self.check_image(&name, &descriptor, &blobs, &mut problems);
        }
        self.check_layers(&blobs, &mut problems)?;
        self.check_cache_records(&blobs, &mut problems);
        for path in self.leftovers()? {
            problems.push(Problem {
                what: format!("{}: left behind by a killed process", path.display()),
                fix: Fix::ReclaimLeftovers,
            });
        }
        Ok(CheckReport { problems })
    }

    fn check_blobs(&self, problems: &mut Vec<Problem>) -> Result<BlobStates, StoreError> {
        let mut states = BlobStates {
            good: BTreeSet::new(),
            sizes: HashMap::new(),
        };
        for digest in self.list_blobs()? {
            match self.verify_blob(&digest) {
                Ok(()) => {
                    let size = fs::metadata(self.blob_path(&digest)?).map_or(0, |m| m.len());
                    states.sizes.insert(digest.to_string(), size);
                    states.good.insert(digest.to_string());
                }
                Err(StoreError::Corrupt { detail, .. }) => problems.push(Problem {
                    what: format!("blob {digest}: {detail}"),
                    fix: Fix::DeleteBlob(digest),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(states)
    }

    /// Checks the documents and layer blobs the tag `name` reaches. Of an index's
    /// manifests only the one this host uses must be stored (a pull stores only it).
    fn check_image(
        &self,
        name: &str,
        top: &Descriptor,
        blobs: &BlobStates,
        problems: &mut Vec<Problem>,
    ) {
        let mut broken = |detail: String| {
            problems.push(Problem {
                what: format!("image {name}: {detail}"),
                fix: Fix::Untag(name.to_owned()),
            })
        };
        let mut pending = vec![(top.clone(), Role::Document, true)];
        while let Some((d, role, required)) = pending.pop() {
            let digest = d.digest().to_string();
            if !blobs.good.contains(&digest) {
                if required {
                    broken(format!("{digest} is missing or corrupt"));
                }
                continue;
            }
            if blobs.sizes.get(&digest) != Some(&d.size()) {
                broken(format!("{digest} is not {} bytes", d.size()));
                continue;
            }
            let bytes = match role {
                Role::Layer => continue,
                Role::Config if !is_image_config(d.media_type()) => continue,
                _ => match self.read_blob(d.digest()) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        broken(format!("{digest} is unreadable: {e}"));
                        continue;
                    }
                },
            };
            let parsed = match role {
                Role::Config => serde_json::from_slice::<ImageConfiguration>(&bytes).map(|_| ()),
                _ if is_index(d.media_type()) => {
                    serde_json::from_slice::<ImageIndex>(&bytes).map(|index| {
                        let used = pick_platform(&index).map(|m| m.digest().clone());
                        pending.extend(index.manifests().iter().map(|m| {
                            let required = used.as_ref() == Some(m.digest());
                            (m.clone(), Role::Document, required)
                        }));
                    })
                }
                _ => serde_json::from_slice::<ImageManifest>(&bytes).map(|manifest| {
                    pending.push((manifest.config().clone(), Role::Config, true));
                    pending.extend(
                        manifest
                            .layers()
                            .iter()
                            .map(|l| (l.clone(), Role::Layer, true)),
                    );
                }),
            };
            if let Err(e) = parsed {
                let what = match role {
                    Role::Config => "image config",
                    _ => "index or manifest",
                };
                broken(format!("{digest} is not a valid {what}: {e}"));
            }
        }
    }

    fn check_cache_records(&self, blobs: &BlobStates, problems: &mut Vec<Problem>) {
        let dir = self.cache_dir(CacheDir::Index);
        let Ok(listing) = fs::read_dir(&dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = listing.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let record = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<CacheRecord>(&b).ok());
            let what = match record {
                None => "unreadable".to_owned(),
                Some(CacheRecord {
                    layer: Some(layer), ..
                }) if !blobs.good.contains(&layer.digest) => {
                    format!("its layer blob {} is missing or corrupt", layer.digest)
                }
                Some(_) => continue,
            };
            problems.push(Problem {
                what: format!("build-cache record {}: {what}", path.display()),
                fix: Fix::DeleteFile(path),
            });
        }
    }

    fn apply(&self, fix: &Fix) -> Result<(), StoreError> {
        match fix {
            Fix::Untag(name) => {
                self.remove_tag(name)?;
            }
            Fix::DeleteBlob(digest) => {
                let path = self.blob_path(digest)?;
                fs::remove_file(&path).map_err(io_err("removing", &path))?;
            }
            Fix::DeleteLayer(path) => self.delete_layer_dir(path)?,
            Fix::DeleteFile(path) => {
                if let Err(e) = fs::remove_file(path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(io_err("removing", path)(e));
                    }
                }
            }
            Fix::ReclaimLeftovers => {
                self.reclaim_leftovers()?;
            }
        }
        Ok(())
    }

    /// Deletes an unpacked layer directory by first renaming it into a scratch
    /// directory, so no reader ever sees it half deleted.
    pub(crate) fn delete_layer_dir(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let gone = self.scratch_dir("gone-")?;
        let target = gone.path().join("layer");
        fs::rename(path, &target).map_err(io_err("moving away", path))?;
        drop(gone);
        Ok(())
    }

    fn check_layers(
        &self,
        blobs: &BlobStates,
        problems: &mut Vec<Problem>,
    ) -> Result<(), StoreError> {
        let dir = self.root.join("layers");
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io_err("listing", &dir))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let Some(diff_id) = parse_sha256(&format!("sha256:{name}")) else {
                problems.push(Problem {
                    what: format!("{}: left behind by an interrupted unpack", path.display()),
                    fix: Fix::DeleteLayer(path.clone()),
                });
                continue;
            };
            let blob = self
                .blob_of_diff_id(&diff_id)?
                .filter(|b| blobs.good.contains(b.as_ref() as &str));
            if let Some(detail) = layers::layer_problem(self, &diff_id, blob.as_ref())? {
                problems.push(Problem {
                    what: format!("layer {diff_id} ({}): {detail}", path.display()),
                    fix: Fix::DeleteLayer(path.clone()),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_layer_and_an_interrupted_unpack_are_reported_and_repaired() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        assert!(store.check().unwrap().problems.is_empty());
        let incomplete = root.path().join("layers").join("ab".repeat(32));
        fs::create_dir_all(incomplete.join("diff/etc")).unwrap();
        let staging = root.path().join("layers/.tmp-x1");
        fs::create_dir_all(&staging).unwrap();

        let report = store.check().unwrap();
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains(".tmp-x1"), "{lines:?}");
        assert!(
            lines[1].contains(&format!("layer sha256:{}", "ab".repeat(32)))
                && lines[1].contains("no whiteouts.json"),
            "{lines:?}"
        );
        store.check_and_repair().unwrap();
        assert!(!incomplete.exists() && !staging.exists());
        assert!(store.check().unwrap().problems.is_empty());
    }
}
