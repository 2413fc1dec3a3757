//! Push: every blob (HEAD -> cross-repo mount -> chunked upload with resume -> PUT),
//! a few at a time, then the manifest. Blobs are sent exactly as stored, so a pulled
//! layer goes out as its original compressed bytes.

use std::collections::HashSet;
use std::io::{self, Read};

use oci_spec::image::{Descriptor, Digest};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use url::Url;

use super::blobs::{BlobOutcome, BlobStore, Progress};
use super::client::SHORT_REQUEST;
use super::client::{Client, Repository};
use super::error::{RegistryError, Result};
use super::manifest::{image_blobs, Manifest};
use super::parallel::{for_each, PARALLEL_TRANSFERS};
use super::upload::{location, upload, Upload};
use crate::image::digest::digest_of;
use crate::image::reference::Reference;

/// Bytes per PATCH request (held in memory, up to three at once); a broken request is
/// resumed from what the registry kept.
pub const DEFAULT_CHUNK_SIZE: u64 = 32 * 1024 * 1024;

/// A manifest held in the local store, ready to push.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// Media type of the manifest (image manifest or index, OCI or Docker).
    pub media_type: String,
    /// The manifest bytes exactly as stored.
    pub manifest: Vec<u8>,
}

/// A repository of the destination registry known to hold some blobs (e.g. the one
/// an image was pulled from), tried for cross-repository mounts.
#[derive(Debug, Clone)]
pub struct MountSource {
    /// Repository path in the destination registry.
    pub repository: String,
    /// Digests (`sha256:...`) of the blobs it holds.
    pub blobs: HashSet<String>,
}

/// Push tuning.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Where blobs may be mounted from instead of uploaded.
    pub mount_from: Vec<MountSource>,
    /// Bytes per upload chunk.
    pub chunk_size: u64,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            mount_from: Vec::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// Pushes `image` (and, for an index, every manifest it lists, read from the store)
/// to `dest`; returns the digest of the pushed manifest.
pub fn push(
    client: &Client,
    dest: &Reference,
    image: &LocalImage,
    store: &dyn BlobStore,
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<Digest> {
    let target = client.settings().rewrite(dest);
    if target != *dest {
        tracing::info!("pushing {dest} to {target}");
    }
    let repo = client.repository(&target, true)?;
    for from in options
        .mount_from
        .iter()
        .filter(|m| m.repository != repo.name())
    {
        repo.add_pull_scope(&from.repository);
    }
    let digest = digest_of(&image.manifest);
    let (media_type, manifest) = Manifest::parse(&image.manifest, Some(&image.media_type))
        .map_err(|reason| local_error(format!("manifest {digest}: {reason}")))?;
    let tag_or_digest = match (target.tag(), target.digest()) {
        (_, Some(d)) if *d != digest => {
            return Err(local_error(format!(
                "destination {dest} names digest {d}, the manifest is {digest}"
            )))
        }
        (Some(tag), _) => tag.to_string(),
        (None, _) => digest.to_string(),
    };
    match manifest {
        Manifest::Image(m) => push_blobs(&repo, image_blobs(&m), store, options, progress)?,
        Manifest::Index(index) => {
            for child in index.manifests() {
                let bytes = read_blob(store, child.digest())?;
                let child_type = child.media_type().to_string();
                let (_, parsed) = Manifest::parse(&bytes, Some(&child_type)).map_err(|reason| {
                    local_error(format!("manifest {}: {reason}", child.digest()))
                })?;
                let Manifest::Image(m) = parsed else {
                    return Err(local_error(format!("nested index {}", child.digest())));
                };
                push_blobs(&repo, image_blobs(&m), store, options, progress)?;
                put_manifest(&repo, child.digest().as_ref(), &child_type, &bytes)?;
            }
        }
    }
    put_manifest(&repo, &tag_or_digest, &media_type, &image.manifest)?;
    Ok(digest)
}

pub(super) fn local_error(reason: String) -> RegistryError {
    RegistryError::io(
        "local image",
        io::Error::new(io::ErrorKind::InvalidData, reason),
    )
}

fn read_blob(store: &dyn BlobStore, digest: &Digest) -> Result<Vec<u8>> {
    let context = || format!("reading blob {digest} from the store");
    let (mut reader, _) = store
        .open_blob(digest)
        .map_err(|e| RegistryError::io(context(), e))?;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| RegistryError::io(context(), e))?;
    Ok(bytes)
}

fn push_blobs(
    repo: &Repository<'_>,
    blobs: Vec<Descriptor>,
    store: &dyn BlobStore,
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<()> {
    for_each(blobs, PARALLEL_TRANSFERS, |blob| {
        let outcome = push_blob(repo, &blob, store, options, progress)?;
        progress.blob_finished(blob.digest(), outcome);
        Ok(())
    })?;
    Ok(())
}

pub(super) fn push_blob(
    repo: &Repository<'_>,
    blob: &Descriptor,
    store: &dyn BlobStore,
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<BlobOutcome> {
    let digest = blob.digest();
    if blob_exists(repo, digest)? {
        return Ok(BlobOutcome::Exists);
    }
    let mut location = None;
    let sources = options
        .mount_from
        .iter()
        .filter(|m| m.repository != repo.name() && m.blobs.contains(digest.as_ref()));
    for from in sources {
        match mount(repo, digest, &from.repository)? {
            Mount::Done => return Ok(BlobOutcome::Mounted),
            Mount::Upload(url) => {
                location = Some(url);
                break;
            }
            Mount::Refused => {}
        }
    }
    progress.blob_started(digest, blob.size());
    let policy = repo.retry_policy();
    let mut restarts = 0;
    loop {
        let start = match location.take() {
            Some(url) => url,
            None => start_upload(repo, digest)?,
        };
        match upload(repo, blob, start, store, options.chunk_size, progress)? {
            Upload::Done => return Ok(BlobOutcome::Uploaded),
            Upload::Lost(why) if policy.should_retry(restarts + 1) => {
                restarts += 1;
                tracing::debug!("upload of {digest} lost ({why}); starting over");
                progress.blob_restarted(digest, 0);
                std::thread::sleep(policy.delay(restarts, None));
            }
            Upload::Lost(why) => {
                return Err(repo.bad(format!("upload of {digest} failed: {why}")));
            }
        }
    }
}

pub(super) fn blob_exists(repo: &Repository<'_>, digest: &Digest) -> Result<bool> {
    let url = repo.url(&format!("blobs/{digest}"));
    let operation = format!("HEAD blob {digest}");
    let resp = repo.send(&operation, &|http| {
        http.head(url.clone()).timeout(SHORT_REQUEST)
    })?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(repo.status_error(&operation, resp)),
    }
}

enum Mount {
    Done,
    Upload(Url),
    Refused,
}

fn mount(repo: &Repository<'_>, digest: &Digest, from: &str) -> Result<Mount> {
    let mut url = repo.url("blobs/uploads/");
    url.query_pairs_mut()
        .append_pair("mount", digest.as_ref())
        .append_pair("from", from);
    let operation = format!("mount blob {digest} from {from}");
    let resp = repo.send(&operation, &|http| {
        http.post(url.clone())
            .timeout(SHORT_REQUEST)
            .header(CONTENT_LENGTH, 0)
    })?;
    match resp.status() {
        StatusCode::CREATED => Ok(Mount::Done),
        StatusCode::ACCEPTED => Ok(Mount::Upload(location(repo, &resp)?)),
        StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
            Ok(Mount::Refused)
        }
        _ => Err(repo.status_error(&operation, resp)),
    }
}

fn start_upload(repo: &Repository<'_>, digest: &Digest) -> Result<Url> {
    let url = repo.url("blobs/uploads/");
    let operation = format!("start upload of {digest}");
    let resp = repo.send(&operation, &|http| {
        http.post(url.clone())
            .timeout(SHORT_REQUEST)
            .header(CONTENT_LENGTH, 0)
    })?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(repo.status_error(&operation, resp));
    }
    location(repo, &resp)
}

/// PUTs a manifest under `reference` (a tag or its digest).
pub fn put_manifest(
    repo: &Repository<'_>,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<()> {
    let url = repo.url(&format!("manifests/{reference}"));
    let operation = format!("PUT manifest {reference}");
    let resp = repo.send(&operation, &|http| {
        http.put(url.clone())
            .timeout(SHORT_REQUEST)
            .header(CONTENT_TYPE, media_type)
            .body(bytes.to_vec())
    })?;
    if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
        return Err(repo.status_error(&operation, resp));
    }
    let expected = digest_of(bytes).to_string();
    if let Some(claimed) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        if claimed != expected {
            return Err(repo.bad(format!(
                "registry stored manifest {reference} as {claimed}, expected {expected}"
            )));
        }
    }
    Ok(())
}
