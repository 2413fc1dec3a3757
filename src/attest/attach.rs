//! Attestations kept with an image, in BuildKit's layout: an attestation manifest
//! (config `unknown/unknown`, one `application/vnd.in-toto+json` layer per statement,
//! annotated `in-toto.io/predicate-type`) next to the image manifest in an image index,
//! its descriptor annotated `vnd.docker.reference.type: attestation-manifest` and
//! `vnd.docker.reference.digest: <image manifest>`, platform `unknown/unknown`. The
//! image manifest is unchanged: only the index above it is new. The same manifest with
//! a `subject` is the OCI 1.1 referrer form ([`referrer_manifest`]).

use std::collections::HashMap;

use oci_spec::image::{
    Arch, Descriptor, ImageConfigurationBuilder, ImageIndex, ImageIndexBuilder, ImageManifest,
    ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};

use super::intoto::{MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION};
use super::AttestError;
use crate::image::digest::Digest;
use crate::image::oci::{canonical_json, descriptor_of};
use crate::store::images::StoredImage;
use crate::store::Store;

/// `vnd.docker.reference.type` annotation of an attestation manifest's descriptor.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// `vnd.docker.reference.digest`: the image manifest the attestations are about.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The value of [`REFERENCE_TYPE`] for attestations.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// One statement to attach.
#[derive(Debug, Clone)]
pub struct Attestation {
    /// Its predicate type.
    pub predicate_type: String,
    /// The statement's JSON.
    pub statement: Vec<u8>,
}

/// An attestation found with an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The statement's predicate type.
    pub predicate_type: String,
    /// The statement blob's digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// The attestation manifest holding it.
    pub manifest: Digest,
}

/// Stores `attestations` about `image` (whose manifest is `image.descriptor`), and an
/// index of both; returns the index descriptor. Tag it to keep the attestations with
/// the image.
pub fn store_attestations(
    store: &Store,
    image: &StoredImage,
    attestations: &[Attestation],
) -> Result<Descriptor, AttestError> {
    let manifest = attestation_manifest(store, attestations)?;
    let bytes = canonical_json(&manifest)?;
    store.put_blob(&bytes)?;
    let mut attest = descriptor_of(MediaType::ImageManifest, &bytes)?;
    attest.set_annotations(Some(HashMap::from([
        (REFERENCE_TYPE.to_owned(), ATTESTATION_MANIFEST.to_owned()),
        (
            REFERENCE_DIGEST.to_owned(),
            image.descriptor.digest().to_string(),
        ),
    ])));
    attest.set_platform(Some(
        PlatformBuilder::default()
            .architecture(Arch::Other("unknown".into()))
            .os(Os::Other("unknown".into()))
            .build()?,
    ));
    let mut subject = Descriptor::new(
        image.descriptor.media_type().clone(),
        image.descriptor.size(),
        image.descriptor.digest().clone(),
    );
    let mut platform = PlatformBuilder::default()
        .architecture(image.config.architecture().clone())
        .os(image.config.os().clone())
        .build()?;
    platform.set_variant(image.config.variant().clone());
    subject.set_platform(Some(platform));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![subject, attest])
        .build()?;
    let bytes = canonical_json(&index)?;
    store.put_blob(&bytes)?;
    Ok(descriptor_of(MediaType::ImageIndex, &bytes)?)
}

fn attestation_manifest(
    store: &Store,
    attestations: &[Attestation],
) -> Result<ImageManifest, AttestError> {
    let mut layers = Vec::new();
    for a in attestations {
        store.put_blob(&a.statement)?;
        let mut layer = descriptor_of(MediaType::Other(MEDIA_TYPE.into()), &a.statement)?;
        layer.set_annotations(Some(HashMap::from([(
            PREDICATE_TYPE_ANNOTATION.to_owned(),
            a.predicate_type.clone(),
        )])));
        layers.push(layer);
    }
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Other("unknown".into()))
        .os(Os::Other("unknown".into()))
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(
                    layers
                        .iter()
                        .map(|l| l.digest().to_string())
                        .collect::<Vec<_>>(),
                )
                .build()?,
        )
        .build()?;
    let config_bytes = canonical_json(&config)?;
    store.put_blob(&config_bytes)?;
    Ok(ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor_of(MediaType::ImageConfig, &config_bytes)?)
        .layers(layers)
        .build()?)
}

/// The attestation manifest of `index` about `subject` with an OCI 1.1 `subject` (and
/// `artifactType`), for registries with the referrers API.
/// Returns the image manifest digest and the referrer manifest's bytes.
pub fn referrer_manifest(
    store: &Store,
    index: &Descriptor,
) -> Result<Option<(Digest, Vec<u8>)>, AttestError> {
    let Some((attest, subject)) = attestation_of(store, index)? else {
        return Ok(None);
    };
    let mut manifest: ImageManifest = serde_json::from_slice(&store.read_blob(attest.digest())?)?;
    manifest.set_subject(Some(Descriptor::new(
        subject.media_type().clone(),
        subject.size(),
        subject.digest().clone(),
    )));
    manifest.set_artifact_type(Some(MediaType::Other(MEDIA_TYPE.into())));
    Ok(Some((subject.digest().clone(), canonical_json(&manifest)?)))
}

/// The attestation manifest descriptor of an index and the image descriptor it is
/// about; `None` when `descriptor` is not an index with attestations.
fn attestation_of(
    store: &Store,
    descriptor: &Descriptor,
) -> Result<Option<(Descriptor, Descriptor)>, AttestError> {
    if !crate::store::images::is_index(descriptor.media_type()) {
        return Ok(None);
    }
    let index: ImageIndex = serde_json::from_slice(&store.read_blob(descriptor.digest())?)?;
    let attest = index.manifests().iter().find(|m| {
        m.annotations()
            .as_ref()
            .and_then(|a| a.get(REFERENCE_TYPE))
            .is_some_and(|t| t == ATTESTATION_MANIFEST)
    });
    let Some(attest) = attest else {
        return Ok(None);
    };
    let about = attest
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REFERENCE_DIGEST))
        .and_then(|d| {
            index
                .manifests()
                .iter()
                .find(|m| m.digest().to_string() == *d)
        });
    Ok(about.map(|s| (attest.clone(), s.clone())))
}

/// The attestations kept with the image `reference` names (none for a bare manifest).
pub fn list(store: &Store, reference: &str) -> Result<Vec<Listed>, AttestError> {
    let (_, descriptor) = store.resolve(reference)?;
    let Some((attest, _)) = attestation_of(store, &descriptor)? else {
        return Ok(Vec::new());
    };
    let manifest: ImageManifest = serde_json::from_slice(&store.read_blob(attest.digest())?)?;
    Ok(manifest
        .layers()
        .iter()
        .map(|l| Listed {
            predicate_type: l
                .annotations()
                .as_ref()
                .and_then(|a| a.get(PREDICATE_TYPE_ANNOTATION))
                .cloned()
                .unwrap_or_default(),
            digest: l.digest().clone(),
            size: l.size(),
            manifest: attest.digest().clone(),
        })
        .collect())
}
