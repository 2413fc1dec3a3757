//! Pulling into a local store: the pull, then naming the image in the store.

use oci_spec::image::{Descriptor, MediaType};

use super::blobs::{ImageStore, Progress};
use super::client::Client;
use super::error::{RegistryError, Result};
use super::pull::{pull, pull_all_platforms, PulledImage};
use crate::image::platform::Platform;
use crate::image::reference::Reference;

/// Pulls `reference` into `store` and names the image in the store with its full name:
/// `docker.io/library/debian:bookworm` for a tag, `docker.io/library/debian@sha256:…` for
/// a digest-only reference (so that `prune` keeps it, as podman keeps digest pulls).
/// Returns the pull and the name set. What `flense pull` does; builds call it for
/// missing base images.
pub fn pull_to_store(
    client: &Client,
    store: &dyn ImageStore,
    reference: &Reference,
    platform: &Platform,
    progress: &dyn Progress,
) -> Result<(PulledImage, Option<String>)> {
    let pulled = pull(client, reference, platform, store, progress)?;
    name_in_store(store, reference, pulled)
}

/// [`pull_to_store`] with every platform of an index ([`pull_all_platforms`]): the
/// name is the index's, so `save` writes it whole.
pub fn pull_all_platforms_to_store(
    client: &Client,
    store: &dyn ImageStore,
    reference: &Reference,
    platform: &Platform,
    progress: &dyn Progress,
) -> Result<(PulledImage, Option<String>)> {
    let pulled = pull_all_platforms(client, reference, platform, store, progress)?;
    name_in_store(store, reference, pulled)
}

/// Names `pulled` in `store` after `reference` (see [`pull_to_store`]).
fn name_in_store(
    store: &dyn ImageStore,
    reference: &Reference,
    pulled: PulledImage,
) -> Result<(PulledImage, Option<String>)> {
    let name = match (reference.tag(), reference.digest()) {
        (Some(tag), _) => format!("{}:{tag}", reference.name()),
        (None, Some(digest)) => format!("{}@{digest}", reference.name()),
        (None, None) => return Ok((pulled, None)),
    };
    let descriptor = Descriptor::new(
        MediaType::from(pulled.media_type.as_str()),
        pulled.manifest.len() as u64,
        pulled.digest.clone(),
    );
    store
        .tag_image(&name, &descriptor)
        .map_err(|e| RegistryError::io(format!("tagging {reference}"), e))?;
    Ok((pulled, Some(name)))
}
