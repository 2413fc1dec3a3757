//! Base and source images for builds: from the local store, else pulled through the
//! registry client (with the user's mirrors and rewrites) and named in the store, as
//! `flense pull` does ([`registry::pull_to_store`]).

use oci_spec::image::{Descriptor, MediaType};

use crate::error_chain::ErrorChain;
use crate::image::platform::Platform;
use crate::image::reference::Reference;
use crate::registry::{self, Client, NoProgress, RegistryError};
use crate::store::{Store, StoreError, StoredImage};

use super::stage::ImageSource;
use super::BuildError;

/// Images from the store, pulled on first use.
pub struct PullingImages {
    store: Store,
    client: Client,
    platform: Platform,
}

impl PullingImages {
    /// Images of `store`, pulled with `client` for `platform` when missing.
    pub fn new(store: Store, client: Client, platform: Platform) -> Self {
        Self {
            store,
            client,
            platform,
        }
    }

    /// Pulls `reference` into the store (named with its full name, or `name@digest`
    /// for a digest-pinned base, so `prune` keeps it) and returns it.
    fn pull(&self, reference: &str, local: StoreError) -> Result<StoredImage, BuildError> {
        let failed = |source: RegistryError| BuildError::Pull {
            reference: reference.to_string(),
            local: ErrorChain(&local).to_string(),
            source: Box::new(source),
        };
        let parsed = Reference::parse(reference)
            .map_err(RegistryError::from)
            .map_err(failed)?;
        tracing::info!("pulling {parsed}");
        let (pulled, _name) = registry::pull_to_store(
            &self.client,
            &self.store,
            &parsed,
            &self.platform,
            &NoProgress,
        )
        .map_err(failed)?;
        let descriptor = Descriptor::new(
            MediaType::from(pulled.media_type.as_str()),
            pulled.manifest.len() as u64,
            pulled.digest.clone(),
        );
        let mut image = self.store.image_at(&descriptor)?;
        image.descriptor = descriptor;
        Ok(image)
    }
}

impl ImageSource for PullingImages {
    fn image(&self, reference: &str) -> Result<StoredImage, BuildError> {
        match self.store.image(reference) {
            Ok(img) => Ok(img),
            Err(local) => self.pull(reference, local),
        }
    }
}
