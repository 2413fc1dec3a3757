//! Base and source images for builds: from the local store, else pulled through the
//! registry client (with the user's mirrors and rewrites) and tagged in the store.

use oci_spec::image::{Descriptor, MediaType};

use crate::registry::{self, Client, NoProgress, Reference};
use crate::store::{parse_name, Store, StoredImage};

use crate::builder::execute::ImageSource;
use crate::builder::BuildError;

/// Images from the store, pulled on first use.
pub struct PullingImages {
    store: Store,
    client: Client,
    platform: registry::Platform,
}

impl PullingImages {
    /// Images of `store`, pulled with `client` for `platform` when missing.
    pub fn new(store: Store, client: Client, platform: registry::Platform) -> Self {
        Self {
            store,
            client,
            platform,
        }
    }

    fn pull(&self, reference: &str) -> Result<StoredImage, BuildError> {
        let err = |detail: String| BuildError::Image {
            reference: reference.to_string(),
            detail,
        };
        let parsed = Reference::parse(reference).map_err(|e| err(e.to_string()))?;
        tracing::info!("pulling {parsed}");
        let pulled = registry::pull(
            &self.client,
            &parsed,
            &self.platform,
            &self.store,
            &NoProgress,
        )
        .map_err(|e| err(e.to_string()))?;
        let descriptor = Descriptor::new(
            MediaType::from(pulled.media_type.as_str()),
            pulled.manifest.len() as u64,
            pulled.digest.clone(),
        );
        // A digest-pinned base keeps a `name@digest` name, so `prune` keeps it.
        let name =
            match (parsed.tag(), parsed.digest()) {
                (Some(tag), _) => parse_name(&format!("{}:{tag}", parsed.name()))
                    .map_err(|e| err(e.to_string()))?,
                (None, Some(digest)) => format!("{}@{digest}", parsed.name()),
                (None, None) => parse_name(&format!("{}:latest", parsed.name()))
                    .map_err(|e| err(e.to_string()))?,
            };
        self.store.set_tag(&name, &descriptor)?;
        let mut image = self.store.image_at(&descriptor)?;
        image.descriptor = descriptor;
        Ok(image)
    }
}

impl ImageSource for PullingImages {
    fn image(&self, reference: &str) -> Result<StoredImage, BuildError> {
        match self.store.image(reference) {
            Ok(img) => Ok(img),
            Err(local) => self.pull(reference).map_err(|e| match e {
                BuildError::Image { reference, detail } => BuildError::Image {
                    reference,
                    detail: format!(
                        "not in the local store ({local}) and pulling failed: {detail}"
                    ),
                },
                other => other,
            }),
        }
    }
}
