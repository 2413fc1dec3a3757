//! Pull: manifest (with platform selection in indexes), then config and layer blobs,
//! each streamed into the store's staging area and verified before it is committed.

use std::io::{self, Read};

use oci_spec::image::{Descriptor, Digest};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;

use super::blobs::{supported_digest, BlobOutcome, BlobStore, Progress};
use super::client::SHORT_REQUEST;
use super::client::{Client, Repository};
use super::error::{RegistryError, Result};
use super::manifest::{image_blobs, Manifest, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE};
use super::parallel::{for_each, PARALLEL_TRANSFERS};
use crate::error_chain::ErrorChain;
use crate::image::digest::digest_of;
use crate::image::platform::{describe_platforms, Platform};
use crate::image::reference::Reference;

/// An image pulled into the store.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// Where it was fetched from (after rewrites).
    pub source: Reference,
    /// Media type of the image manifest (OCI or Docker v2s2).
    pub media_type: String,
    /// Digest of the image manifest (the platform's manifest when the tag is an index).
    pub digest: Digest,
    /// The manifest exactly as the registry sent it (its bytes define the digest).
    pub manifest: Vec<u8>,
    /// Digest of the index the manifest was selected from, if any.
    pub index_digest: Option<Digest>,
    /// Config and layer descriptors, config first.
    pub blobs: Vec<Descriptor>,
    /// The platform the image config declares (`None` when it declares none).
    pub platform: Option<Platform>,
}

/// Pulls `reference` for `platform` into `store`. The manifest is committed to the store
/// as a blob too; tagging is the caller's business.
/// Mirrors (see [`super::settings::Mirror`]) are tried first; a mirror that fails in
/// any way but a local one is skipped, with a warning.
pub fn pull(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    store: &dyn BlobStore,
    progress: &dyn Progress,
) -> Result<PulledImage> {
    from_sources(client, reference, |source| {
        pull_from(client, reference, source, platform, store, progress)
    })
}

/// Pulls `reference` with every platform of an index (each manifest, config and
/// layer, then the index itself), so the store holds the index complete, for `save`
/// and air-gapped transfer. The result describes the index (`index_digest` is `None`,
/// `blobs` lists every platform's); a tag that is a single image is pulled as
/// [`pull`] pulls it for `platform`.
pub fn pull_all_platforms(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    store: &dyn BlobStore,
    progress: &dyn Progress,
) -> Result<PulledImage> {
    from_sources(client, reference, |source| {
        pull_index_from(client, reference, source, platform, store, progress)
    })
}

/// Runs `pull_one` on the mirrors of `reference`, then on the reference itself.
fn from_sources(
    client: &Client,
    reference: &Reference,
    pull_one: impl Fn(&Reference) -> Result<PulledImage>,
) -> Result<PulledImage> {
    let mut sources = client.settings().pull_sources(reference);
    let last = sources
        .pop()
        .expect("pull_sources ends with the reference itself");
    for mirror in sources {
        match pull_one(&mirror) {
            Ok(pulled) => return Ok(pulled),
            Err(e @ (RegistryError::Io { .. } | RegistryError::NoMatchingPlatform { .. })) => {
                return Err(e)
            }
            Err(e) => tracing::warn!(
                "mirror {mirror} failed, trying the next source: {}",
                ErrorChain(&e)
            ),
        }
    }
    pull_one(&last)
}

fn pull_index_from(
    client: &Client,
    reference: &Reference,
    source: &Reference,
    platform: &Platform,
    store: &dyn BlobStore,
    progress: &dyn Progress,
) -> Result<PulledImage> {
    let repo = client.repository(source, false)?;
    let (media_type, bytes, digest) =
        fetch_manifest(&repo, &source.manifest_reference(), source.digest())?;
    let (media_type, manifest) = Manifest::parse(&bytes, Some(&media_type)).map_err(|reason| {
        repo.bad(format!(
            "manifest {}: {reason}",
            source.manifest_reference()
        ))
    })?;
    let Manifest::Index(index) = manifest else {
        return pull_from(client, reference, source, platform, store, progress);
    };
    let mut blobs = Vec::new();
    for chosen in index.manifests() {
        let (child_type, child_bytes, child_digest) =
            fetch_manifest(&repo, chosen.digest().as_ref(), Some(chosen.digest()))?;
        if child_bytes.len() as u64 != chosen.size() {
            return Err(repo.bad(format!(
                "manifest {} has {} bytes, the index says {}",
                chosen.digest(),
                child_bytes.len(),
                chosen.size()
            )));
        }
        let image = match Manifest::parse(&child_bytes, Some(&child_type)) {
            Ok((_, Manifest::Image(image))) => image,
            Ok((_, Manifest::Index(_))) => {
                return Err(repo.bad(format!("index {digest} points to another index")))
            }
            Err(reason) => return Err(repo.bad(format!("manifest {child_digest}: {reason}"))),
        };
        let image_blobs = image_blobs(&image);
        for_each(image_blobs.clone(), PARALLEL_TRANSFERS, |blob| {
            pull_blob(&repo, &blob, store, progress)
        })?;
        commit_bytes(store, &child_digest, &child_bytes)?;
        blobs.extend(image_blobs);
    }
    commit_bytes(store, &digest, &bytes)?;
    Ok(PulledImage {
        source: source.clone(),
        media_type,
        digest,
        manifest: bytes,
        index_digest: None,
        blobs,
        platform: None,
    })
}

fn pull_from(
    client: &Client,
    reference: &Reference,
    source: &Reference,
    platform: &Platform,
    store: &dyn BlobStore,
    progress: &dyn Progress,
) -> Result<PulledImage> {
    let source = source.clone();
    if source != *reference {
        tracing::info!("pulling {reference} from {source}");
    }
    let repo = client.repository(&source, false)?;
    let (mut media_type, mut bytes, mut digest) =
        fetch_manifest(&repo, &source.manifest_reference(), source.digest())?;
    let mut index_digest = None;
    let image = loop {
        let (detected, manifest) =
            Manifest::parse(&bytes, Some(&media_type)).map_err(|reason| {
                repo.bad(format!(
                    "manifest {}: {reason}",
                    source.manifest_reference()
                ))
            })?;
        media_type = detected;
        match manifest {
            Manifest::Image(image) => break image,
            Manifest::Index(_) if index_digest.is_some() => {
                return Err(repo.bad(format!("index {digest} points to another index")))
            }
            Manifest::Index(index) => {
                let chosen =
                    platform
                        .select(&index)
                        .ok_or_else(|| RegistryError::NoMatchingPlatform {
                            reference: reference.to_string(),
                            platform: platform.to_string(),
                            available: describe_platforms(&index),
                        })?;
                tracing::info!("{reference}: {platform} is {}", chosen.digest());
                index_digest = Some(digest.clone());
                (media_type, bytes, digest) =
                    fetch_manifest(&repo, chosen.digest().as_ref(), Some(chosen.digest()))?;
                if bytes.len() as u64 != chosen.size() {
                    return Err(repo.bad(format!(
                        "manifest {} has {} bytes, the index says {}",
                        chosen.digest(),
                        bytes.len(),
                        chosen.size()
                    )));
                }
            }
        }
    };
    let blobs = image_blobs(&image);
    for_each(blobs.clone(), PARALLEL_TRANSFERS, |blob| {
        pull_blob(&repo, &blob, store, progress)
    })?;
    let image_platform = config_platform(store, image.config().digest());
    if let Some(found) = &image_platform {
        if found.os != platform.os || found.architecture != platform.architecture {
            tracing::warn!("{reference} is for {found}, not {platform}");
        }
    }
    commit_bytes(store, &digest, &bytes)?;
    Ok(PulledImage {
        source,
        media_type,
        digest,
        manifest: bytes,
        index_digest,
        blobs,
        platform: image_platform,
    })
}

/// The os/arch an image config declares, if it can be read.
fn config_platform(store: &dyn BlobStore, config: &Digest) -> Option<Platform> {
    #[derive(serde::Deserialize)]
    struct Config {
        os: String,
        architecture: String,
        variant: Option<String>,
    }
    let (reader, size) = store.open_blob(config).ok()?;
    if size > MAX_MANIFEST_SIZE {
        return None;
    }
    let config: Config = serde_json::from_reader(reader).ok()?;
    Some(Platform {
        os: config.os,
        architecture: config.architecture,
        variant: config.variant,
    })
}

/// GETs a manifest; checks its size, and its digest against `expected` and the
/// registry's `Docker-Content-Digest`. Returns (media type, bytes, digest).
pub(super) fn fetch_manifest(
    repo: &Repository<'_>,
    reference: &str,
    expected: Option<&Digest>,
) -> Result<(String, Vec<u8>, Digest)> {
    let url = repo.url(&format!("manifests/{reference}"));
    let operation = format!("GET manifest {reference}");
    let resp = repo.send(&operation, &|http| {
        http.get(url.clone())
            .timeout(SHORT_REQUEST)
            .header(ACCEPT, MANIFEST_ACCEPT)
    })?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(RegistryError::NotFound {
            registry: repo.registry().into(),
            repository: repo.name().into(),
            what: format!("manifest {reference}"),
        });
    }
    if !resp.status().is_success() {
        return Err(repo.status_error(&operation, resp));
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let header_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut bytes = Vec::new();
    resp.take(MAX_MANIFEST_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| repo.bad(format!("reading manifest {reference}: {e}")))?;
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(repo.bad(format!("manifest {reference} is larger than 4 MiB")));
    }
    let digest = digest_of(&bytes);
    if let Some(expected) = expected {
        if !supported_digest(expected) {
            return Err(repo.bad(format!(
                "cannot verify {expected}: only sha256 is supported"
            )));
        }
        if *expected != digest {
            return Err(repo.bad(format!(
                "manifest {expected} has content with digest {digest}"
            )));
        }
    }
    if let Some(claimed) = header_digest.filter(|d| d.starts_with("sha256:")) {
        if claimed != digest.to_string() {
            return Err(repo.bad(format!(
                "manifest {reference}: registry says {claimed}, content is {digest}"
            )));
        }
    }
    Ok((content_type, bytes, digest))
}

fn commit_bytes(store: &dyn BlobStore, digest: &Digest, bytes: &[u8]) -> Result<()> {
    let context = || format!("storing blob {digest}");
    if store
        .has_blob(digest)
        .map_err(|e| RegistryError::io(context(), e))?
    {
        return Ok(());
    }
    store
        .put_verified(&mut &bytes[..], digest, bytes.len() as u64)
        .map_err(|e| RegistryError::io(context(), e))
}

/// Downloads one blob unless the store has it. A transfer cut short is retried from
/// the start per the retry policy; a digest or size mismatch is refused at once.
pub(super) fn pull_blob(
    repo: &Repository<'_>,
    blob: &Descriptor,
    store: &dyn BlobStore,
    progress: &dyn Progress,
) -> Result<()> {
    let digest = blob.digest();
    let context = || format!("storing blob {digest}");
    if !supported_digest(digest) {
        return Err(repo.bad(format!("cannot verify {digest}: only sha256 is supported")));
    }
    if store
        .has_blob(digest)
        .map_err(|e| RegistryError::io(context(), e))?
    {
        progress.blob_finished(digest, BlobOutcome::Cached);
        return Ok(());
    }
    progress.blob_started(digest, blob.size());
    let url = repo.url(&format!("blobs/{digest}"));
    let operation = format!("GET blob {digest}");
    let policy = repo.retry_policy();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resp = repo.send(&operation, &|http| http.get(url.clone()))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: repo.registry().into(),
                repository: repo.name().into(),
                what: format!("blob {digest}"),
            });
        }
        if !resp.status().is_success() {
            return Err(repo.status_error(&operation, resp));
        }
        // Read one byte past the expected size so an over-long blob is noticed.
        let mut body = ProgressReader {
            inner: resp.take(blob.size() + 1),
            digest,
            progress,
            transport_error: false,
        };
        match store.put_verified(&mut body, digest, blob.size()) {
            Ok(()) => {
                progress.blob_finished(digest, BlobOutcome::Downloaded);
                return Ok(());
            }
            Err(e) if body.transport_error && policy.should_retry(attempt) => {
                tracing::debug!("{operation}: {e}; retrying");
                progress.blob_restarted(digest, 0);
                std::thread::sleep(policy.delay(attempt, None));
            }
            Err(e) if body.transport_error => {
                return Err(repo.bad(format!("{operation}: transfer failed: {e}")));
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(repo.bad(format!("refused blob {digest}: {e}")));
            }
            Err(e) => return Err(RegistryError::io(context(), e)),
        }
    }
}

/// Reports progress and remembers whether the network (not the store) failed.
struct ProgressReader<'a, R> {
    inner: R,
    digest: &'a Digest,
    progress: &'a dyn Progress,
    transport_error: bool,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.transport_error = true)?;
        self.progress.blob_advanced(self.digest, n as u64);
        Ok(n)
    }
}
