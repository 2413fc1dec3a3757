//! `flense build --push REF`: pushes the built image with the registry client; with
//! attestations, the index holding them (and, where the registry has the OCI 1.1
//! referrers API, the attestation manifest as a referrer of the image).

use flense::attest::attach::referrer_manifest;
use flense::image::reference::Reference;
use flense::registry::referrers::push_referrer;
use flense::registry::{progress::StderrProgress, LocalImage, PushOptions};
use flense::store::Store;
use oci_spec::image::Descriptor;

use crate::cli::images::{registry_client, registry_error};

/// Pushes the manifest or index `top` to `dest`; returns the pushed digest.
pub fn push(
    registries_config: Option<&std::path::Path>,
    store: &Store,
    top: &Descriptor,
    dest: &str,
) -> anyhow::Result<String> {
    let reference = Reference::parse(dest).map_err(crate::cli::invalid)?;
    let client = registry_client(registries_config)?;
    let image = LocalImage {
        media_type: top.media_type().to_string(),
        manifest: store.read_blob(top.digest().as_ref())?,
    };
    let digest = flense::registry::push(
        &client,
        &reference,
        &image,
        store,
        &PushOptions::default(),
        &StderrProgress::new(),
    )
    .map_err(registry_error)?;
    eprintln!("pushed {reference}");
    if let Some((subject, manifest)) = referrer_manifest(store, top)? {
        if push_referrer(&client, &reference, &subject, &manifest).map_err(registry_error)? {
            eprintln!("pushed the attestations as referrers of {subject}");
        }
    }
    Ok(digest.to_string())
}
