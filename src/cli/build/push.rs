//! `flense build --push REF`: pushes the built image with the registry client.

use flense::builder::stage::BuiltImage;
use flense::image::reference::Reference;
use flense::registry::{
    progress::StderrProgress, Client, CredentialSource, LocalImage, PushOptions, RegistrySettings,
};
use flense::store::Store;

/// Pushes `built` to `dest`; returns the pushed manifest digest.
pub fn push(
    registries_config: Option<&std::path::Path>,
    store: &Store,
    built: &BuiltImage,
    dest: &str,
) -> anyhow::Result<String> {
    let reference = Reference::parse(dest).map_err(crate::cli::invalid)?;
    let settings = RegistrySettings::load(registries_config).map_err(crate::cli::invalid)?;
    let client = Client::new(settings, CredentialSource::from_env())?;
    let image = LocalImage {
        media_type: built.manifest.media_type().to_string(),
        manifest: store.read_blob(built.manifest.digest().as_ref())?,
    };
    let digest = flense::registry::push(
        &client,
        &reference,
        &image,
        store,
        &PushOptions::default(),
        &StderrProgress::new(),
    )
    .map_err(|e| {
        if e.is_invalid_input() {
            crate::cli::invalid(e)
        } else {
            e.into()
        }
    })?;
    eprintln!("pushed {reference}");
    Ok(digest.to_string())
}
