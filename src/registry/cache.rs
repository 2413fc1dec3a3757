//! A shared build cache in a registry repository (format: [`crate::image::cache_manifest`]).
//! Reads go through the pull paths (mirrors first, digest-verified blobs), writes
//! through the push paths (HEAD, cross-repository mount, resumable upload).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use oci_spec::image::{Descriptor, MediaType};

use super::blobs::{BlobStore, MemoryBlobs, NoProgress};
use super::client::{Client, Repository};
use super::error::{RegistryError, Result};
use super::manifest::{Manifest, OCI_MANIFEST};
use super::parallel::{for_each, PARALLEL_TRANSFERS};
use super::pull::{fetch_manifest, pull_blob};
use super::push::{blob_exists, push_blob, put_manifest, PushOptions};
use crate::image::cache_manifest::{
    CacheFormatError, CacheRecords, CachedLayer, MAX_CACHE_CONFIG_SIZE,
};
use crate::image::digest::digest_of;
use crate::image::reference::Reference;

/// How often an export re-merges after another writer replaced the tag meanwhile.
const EXPORT_ATTEMPTS: u32 = 5;
/// Bounds of [`settle_time`].
const MIN_SETTLE: Duration = Duration::from_millis(200);
const MAX_SETTLE: Duration = Duration::from_secs(5);

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Records in the cache tag after the export (the merge of old and new).
    pub records: usize,
    /// Layer blobs the export had to send (not already in the cache).
    pub layers_sent: usize,
    /// Keys left out because their layer blob was neither in the local store nor in
    /// the cache.
    pub skipped: Vec<String>,
    /// Digest of the cache manifest now tagged.
    pub manifest_digest: String,
}

impl ExportReport {
    /// The report of an export that left `tag` (whose manifest is `manifest_bytes`).
    fn finished(mut self, tag: &CacheRecords, manifest_bytes: &[u8]) -> Self {
        self.records = tag.len();
        self.manifest_digest = digest_of(manifest_bytes).to_string();
        self
    }
}

/// A cache tag in a registry repository.
pub struct RegistryCache<'c> {
    client: &'c Client,
    reference: Reference,
    options: PushOptions,
    /// The source (a mirror or the registry) the last load read from.
    loaded_from: Mutex<Option<Reference>>,
}

impl<'c> RegistryCache<'c> {
    /// The cache at `reference` (a tag), reached through `client`'s settings
    /// (rewrites, mirrors for reads, insecure registries, credentials).
    pub fn new(client: &'c Client, reference: Reference) -> Self {
        Self {
            client,
            reference,
            options: PushOptions::default(),
            loaded_from: Mutex::new(None),
        }
    }

    /// Uses `options` for exports (e.g. repositories to mount layer blobs from).
    pub fn with_push_options(mut self, options: PushOptions) -> Self {
        self.options = options;
        self
    }

    /// The cache reference as given.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The records of the cache tag, from the first source (mirrors, then the
    /// registry) that has it; `None` when no source has the repository or tag.
    pub fn load(&self) -> Result<Option<CacheRecords>> {
        let mut sources = self.client.settings().pull_sources(&self.reference);
        let last = sources
            .pop()
            .expect("pull_sources ends with the reference itself");
        for mirror in sources {
            let repo = self.client.repository(&mirror, false)?;
            match read_tag(&repo, &mirror) {
                Ok(Some(records)) => return Ok(Some(self.loaded(mirror, records))),
                Ok(None) => {}
                Err(e) => tracing::warn!("cache mirror {mirror} failed, trying the next: {e}"),
            }
        }
        let repo = self.client.repository(&last, false)?;
        Ok(read_tag(&repo, &last)?.map(|records| self.loaded(last, records)))
    }

    fn loaded(&self, source: Reference, records: CacheRecords) -> CacheRecords {
        *self.loaded_from.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
        records
    }

    /// Puts the blob of `layer` into `store`, verified against its digest and size,
    /// from where the records were loaded (else the registry). A blob the cache lost
    /// is [`RegistryError::NotFound`], one with wrong bytes [`RegistryError::BadContent`].
    pub fn fetch_layer(&self, layer: &CachedLayer, store: &dyn BlobStore) -> Result<()> {
        let desc = layer_descriptor(layer)?;
        let target = self.client.settings().rewrite(&self.reference);
        let loaded = self
            .loaded_from
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut sources: Vec<Reference> = loaded.into_iter().collect();
        if !sources.contains(&target) {
            sources.push(target);
        }
        let mut result = Ok(());
        for source in sources {
            let repo = self.client.repository(&source, false)?;
            result = pull_blob(&repo, &desc, store, &NoProgress);
            if !matches!(result, Err(RegistryError::NotFound { .. })) {
                break;
            }
        }
        result
    }

    /// Adds `records` to the cache tag: sends the layer blobs it lacks from `store`,
    /// then re-reads the tag, merges (see [`CacheRecords::merge`]) and writes the config
    /// and manifest. Afterwards the tag is read once more; when another exporter
    /// replaced it meanwhile without these records, the merge is repeated.
    pub fn export(&self, records: &CacheRecords, store: &dyn BlobStore) -> Result<ExportReport> {
        let target = self.client.settings().rewrite(&self.reference);
        let repo = self.client.repository(&target, true)?;
        for from in self.options.mount_from.iter() {
            if from.repository != repo.name() {
                repo.add_pull_scope(&from.repository);
            }
        }
        let mut report = ExportReport::default();
        let mut ours = records.clone();
        let (present, skipped) = self.send_layers(&repo, &ours, store, &mut report)?;
        ours.retain(|_, r| {
            r.layer
                .as_ref()
                .is_none_or(|l| !skipped.contains(&l.digest))
        });
        report.skipped = records
            .iter()
            .filter(|(k, _)| ours.get(k).is_none())
            .map(|(k, _)| k.to_string())
            .collect();
        let mut present = present;
        for attempt in 1..=EXPORT_ATTEMPTS {
            let started = Instant::now();
            let existing = read_tag(&repo, &target)?.unwrap_or_default();
            let mut merged = CacheRecords::merge(&existing, &ours);
            let gone = missing_blobs(&repo, &merged, &mut present)?;
            merged.retain(|_, r| r.layer.as_ref().is_none_or(|l| !gone.contains(&l.digest)));
            let docs = merged.to_documents().map_err(|e| bad_cache(&repo, e))?;
            let holds_ours = |tag: &CacheRecords| ours.iter().all(|(k, r)| tag.get(k) == Some(r));
            if merged == existing && holds_ours(&existing) {
                // Nothing to write, so no exporter can have raced this one.
                return Ok(report.finished(&existing, &docs.manifest_bytes));
            }
            if merged != existing {
                let config = MemoryBlobs::default();
                config.insert(docs.config.clone());
                let desc = docs.manifest.config().clone();
                push_blob(&repo, &desc, &config, &self.options, &NoProgress)?;
                put_manifest(&repo, &tag(&target), OCI_MANIFEST, &docs.manifest_bytes)?;
            }
            // An exporter that read the tag before this write may still replace it:
            // give it time to, then check that these records survived.
            std::thread::sleep(settle_time(started.elapsed()));
            let now = read_tag(&repo, &target)?.unwrap_or_default();
            if holds_ours(&now) {
                return Ok(report.finished(&now, &docs.manifest_bytes));
            }
            tracing::debug!("{target}: another export replaced the cache (attempt {attempt})");
        }
        Err(repo.bad(format!(
            "cache tag {target} kept being replaced by other exports"
        )))
    }

    /// Makes sure the registry holds every layer blob of `records`: sends those it
    /// lacks from `store`. Returns the digests known present and those available
    /// nowhere (their records must be left out).
    fn send_layers(
        &self,
        repo: &Repository<'_>,
        records: &CacheRecords,
        store: &dyn BlobStore,
        report: &mut ExportReport,
    ) -> Result<(HashSet<String>, HashSet<String>)> {
        let layers: Vec<CachedLayer> = records.layers().into_iter().cloned().collect();
        let outcomes = for_each(layers, PARALLEL_TRANSFERS, |layer| {
            let desc = layer_descriptor(&layer)?;
            let local = store
                .has_blob(desc.digest())
                .map_err(|e| RegistryError::io(format!("reading blob {}", layer.digest), e))?;
            if !local {
                return Ok((layer.digest, blob_exists(repo, desc.digest())?, false));
            }
            let outcome = push_blob(repo, &desc, store, &self.options, &NoProgress)?;
            let sent = outcome == super::blobs::BlobOutcome::Uploaded;
            Ok((layer.digest, true, sent))
        })?;
        let mut present = HashSet::new();
        let mut skipped = HashSet::new();
        for (digest, there, sent) in outcomes {
            report.layers_sent += usize::from(sent);
            if there {
                present.insert(digest);
            } else {
                tracing::warn!(
                    "cache layer {digest} is not in the local store; its records are not exported"
                );
                skipped.insert(digest);
            }
        }
        Ok((present, skipped))
    }
}

/// How long an exporter waits after writing the tag before checking that its records
/// survived: a few times its own read-to-write time (other exporters need about as
/// long), at least [`MIN_SETTLE`], plus jitter so two exporters do not keep meeting.
fn settle_time(read_to_write: Duration) -> Duration {
    let jitter = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 100_000_000);
    (read_to_write * 3).clamp(MIN_SETTLE, MAX_SETTLE) + Duration::from_nanos(u64::from(jitter))
}

/// The layer blobs of `records` the registry no longer has (checked once per digest;
/// `present` remembers those found).
fn missing_blobs(
    repo: &Repository<'_>,
    records: &CacheRecords,
    present: &mut HashSet<String>,
) -> Result<HashSet<String>> {
    let unknown: Vec<CachedLayer> = records
        .layers()
        .into_iter()
        .filter(|l| !present.contains(&l.digest))
        .cloned()
        .collect();
    let found = for_each(unknown, PARALLEL_TRANSFERS, |layer| {
        let there = blob_exists(repo, layer_descriptor(&layer)?.digest())?;
        Ok((layer.digest, there))
    })?;
    let mut gone = HashSet::new();
    for (digest, there) in found {
        if there {
            present.insert(digest);
        } else {
            tracing::warn!("cache layer {digest} is gone from the registry; dropping its records");
            gone.insert(digest);
        }
    }
    Ok(gone)
}

/// The records of the cache manifest tagged in `reference` (`None` when the repository
/// or tag does not exist).
fn read_tag(repo: &Repository<'_>, reference: &Reference) -> Result<Option<CacheRecords>> {
    let (media_type, bytes, digest) = match fetch_manifest(repo, &tag(reference), None) {
        Ok(found) => found,
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let manifest = match Manifest::parse(&bytes, Some(&media_type)) {
        Ok((_, Manifest::Image(manifest))) => manifest,
        Ok((media_type, Manifest::Index(_))) => {
            return Err(bad_cache(repo, CacheFormatError::NotACache(media_type)))
        }
        Err(reason) => return Err(repo.bad(format!("manifest {digest}: {reason}"))),
    };
    let config = manifest.config();
    if config.size() > MAX_CACHE_CONFIG_SIZE {
        return Err(repo.bad(format!(
            "cache config {} has {} bytes, more than the {MAX_CACHE_CONFIG_SIZE} accepted",
            config.digest(),
            config.size()
        )));
    }
    let memory = MemoryBlobs::default();
    pull_blob(repo, config, &memory, &NoProgress)?;
    let bytes = memory
        .get(config.digest())
        .expect("a pulled blob is held in memory");
    CacheRecords::from_documents(&manifest, &bytes)
        .map(Some)
        .map_err(|e| bad_cache(repo, e))
}

/// The tag of a cache reference (parsed cache references always have one).
fn tag(reference: &Reference) -> String {
    reference.manifest_reference()
}

fn layer_descriptor(layer: &CachedLayer) -> Result<Descriptor> {
    crate::image::oci::descriptor(MediaType::ImageLayerGzip, &layer.digest, layer.size).map_err(
        |_| RegistryError::InvalidReference {
            reference: layer.digest.clone(),
            reason: "not a sha256 digest".into(),
        },
    )
}

fn bad_cache(repo: &Repository<'_>, source: CacheFormatError) -> RegistryError {
    RegistryError::BadCache {
        registry: repo.registry().to_string(),
        repository: repo.name().to_string(),
        source,
    }
}
