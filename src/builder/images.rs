//! Base and source images for builds: from the local store, else pulled through the
//! registry client (with the user's mirrors and rewrites) and named in the store, as
//! `flense pull` does ([`registry::pull_to_store`]); when and whether to pull is the
//! [`PullPolicy`] (`--pull`).

use std::collections::HashMap;
use std::sync::Mutex;

use oci_spec::image::{Descriptor, MediaType};

use crate::error_chain::ErrorChain;
use crate::image::platform::Platform;
use crate::image::reference::Reference;
use crate::registry::progress::ActivityProgress;
use crate::registry::{self, Client, PulledImage, RegistryError};
use crate::store::{Store, StoreError, StoredImage};

use super::stage::ImageSource;
use super::BuildError;

/// When a build pulls its base and source images (`--pull`, as podman's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PullPolicy {
    /// Pull every tag again (once per build): a re-pushed tag is picked up; blobs
    /// already in the store are not fetched again.
    Always,
    /// Pull only images the store does not have (the default).
    #[default]
    Missing,
    /// Never pull: an image missing from the store fails the build, without any
    /// network request (air-gapped build farms).
    Never,
}

impl PullPolicy {
    /// The policy's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::Missing => "missing",
            PullPolicy::Never => "never",
        }
    }

    /// The policy of a PipelineLib `imagePullPolicy` value (Kubernetes' `Always`,
    /// `IfNotPresent`, `Never`, any case; `missing` too); `None` for anything else.
    pub fn from_pipeline(value: &str) -> Option<PullPolicy> {
        match value.to_ascii_lowercase().as_str() {
            "always" => Some(PullPolicy::Always),
            "ifnotpresent" | "missing" => Some(PullPolicy::Missing),
            "never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

impl std::fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Images from the store, pulled as the [`PullPolicy`] says.
pub struct PullingImages {
    store: Store,
    client: Client,
    platform: Platform,
    policy: PullPolicy,
    /// Tags already pulled by this build under [`PullPolicy::Always`].
    pulled: Mutex<HashMap<String, StoredImage>>,
}

impl PullingImages {
    /// Images of `store`, pulled with `client` for `platform` when missing.
    pub fn new(store: Store, client: Client, platform: Platform) -> Self {
        Self {
            store,
            client,
            platform,
            policy: PullPolicy::default(),
            pulled: Mutex::new(HashMap::new()),
        }
    }

    /// The same images, pulled as `policy` says.
    pub fn with_policy(self, policy: PullPolicy) -> Self {
        Self { policy, ..self }
    }

    /// Pulls `reference` into the store (named with its full name, or `name@digest`
    /// for a digest-pinned base, so `prune` keeps it) and returns it.
    fn pull(&self, reference: &str, local: Option<StoreError>) -> Result<StoredImage, BuildError> {
        let failed = |source: RegistryError| BuildError::Pull {
            reference: reference.to_string(),
            local: match &local {
                Some(e) => format!("not in the local store ({})", ErrorChain(e)),
                None => "pulled again (--pull always)".to_string(),
            },
            source: Box::new(source),
        };
        let parsed = Reference::parse(reference)
            .map_err(RegistryError::from)
            .map_err(failed)?;
        tracing::info!("pulling {parsed}");
        let _pulling = crate::activity::begin(|| format!("pulling {parsed}"), None);
        let (pulled, _name) = registry::pull_to_store(
            &self.client,
            &self.store,
            &parsed,
            &self.platform,
            &ActivityProgress::default(),
        )
        .map_err(failed)?;
        self.pulled_image(&pulled)
    }

    /// The image a pull stored (its manifest, not the index it came from).
    fn pulled_image(&self, pulled: &PulledImage) -> Result<StoredImage, BuildError> {
        let descriptor = Descriptor::new(
            MediaType::from(pulled.media_type.as_str()),
            pulled.manifest.len() as u64,
            pulled.digest.clone(),
        );
        let mut image = self.store.image_at(&descriptor)?;
        image.descriptor = descriptor;
        Ok(image)
    }

    /// Under [`PullPolicy::Always`]: pulls a tag once per build; a digest-pinned
    /// reference (nothing to re-resolve) or a `localhost/` name (flense's own images,
    /// never in a registry) comes from the store when it is there.
    fn pull_again(&self, reference: &str) -> Result<StoredImage, BuildError> {
        let local_only = Reference::parse(reference)
            .is_ok_and(|r| r.digest().is_some() || r.registry() == "localhost");
        if local_only {
            if let Ok(image) = self.store.image(reference) {
                return Ok(image);
            }
        }
        let mut pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(image) = pulled.get(reference) {
            return Ok(image.clone());
        }
        let image = self.pull(reference, None)?;
        pulled.insert(reference.to_string(), image.clone());
        Ok(image)
    }
}

impl PullingImages {
    /// The image of a foreign platform: the store's image for it under `reference`
    /// ([`Store::image_for`]: an index with the platform, or a single image of it),
    /// else (by the policy) pulled for the platform without naming it in the store,
    /// where the name keeps the host's image.
    fn foreign_image(&self, reference: &str) -> Result<StoredImage, BuildError> {
        let local = match self.policy {
            PullPolicy::Always => None,
            _ => match self.store.image_for(reference, &self.platform) {
                Ok(image) => return Ok(image),
                Err(e) => Some(e),
            },
        };
        let local_only = Reference::parse(reference).is_ok_and(|r| r.registry() == "localhost");
        let why = match (self.policy, local) {
            // flense's own images are never in a registry.
            (_, Some(source)) if local_only => {
                return Err(BuildError::NotInStore {
                    reference: reference.to_string(),
                    source,
                })
            }
            (PullPolicy::Never, Some(source)) => {
                return Err(BuildError::PullNever {
                    reference: reference.to_string(),
                    source: Box::new(source),
                })
            }
            (_, Some(e)) => format!(
                "not in the local store for {} ({})",
                self.platform,
                ErrorChain(&e)
            ),
            (_, None) => "pulled again (--pull always)".to_string(),
        };
        let failed = |source: RegistryError| BuildError::Pull {
            reference: reference.to_string(),
            local: why.clone(),
            source: Box::new(source),
        };
        let parsed = Reference::parse(reference)
            .map_err(RegistryError::from)
            .map_err(failed)?;
        let _pulling =
            crate::activity::begin(|| format!("pulling {parsed} for {}", self.platform), None);
        let pulled = registry::pull(
            &self.client,
            &parsed,
            &self.platform,
            &self.store,
            &ActivityProgress::default(),
        )
        .map_err(failed)?;
        let image = self.pulled_image(&pulled)?;
        if !self.platform.matches_config(&image.config) {
            return Err(BuildError::Image {
                reference: reference.to_string(),
                detail: format!(
                    "there is no image for {} (the registry's is a single image for {})",
                    self.platform,
                    Platform::of_config(&image.config)
                ),
            });
        }
        Ok(image)
    }
}

impl ImageSource for PullingImages {
    fn image(&self, reference: &str) -> Result<StoredImage, BuildError> {
        if !self.platform.is_host() {
            return self.foreign_image(reference);
        }
        match (self.policy, self.store.image(reference)) {
            (PullPolicy::Always, _) => self.pull_again(reference),
            (_, Ok(img)) => Ok(img),
            (PullPolicy::Never, Err(source)) => Err(BuildError::PullNever {
                reference: reference.to_string(),
                source: Box::new(source),
            }),
            (PullPolicy::Missing, Err(local)) => self.pull(reference, Some(local)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PullPolicy;

    #[test]
    fn pipeline_pull_policies_map_to_flense_policies() {
        for (value, policy) in [
            ("Always", Some(PullPolicy::Always)),
            ("always", Some(PullPolicy::Always)),
            ("IfNotPresent", Some(PullPolicy::Missing)),
            ("missing", Some(PullPolicy::Missing)),
            ("Never", Some(PullPolicy::Never)),
            ("sometimes", None),
        ] {
            assert_eq!(PullPolicy::from_pipeline(value), policy, "{value}");
        }
        assert_eq!(PullPolicy::default().to_string(), "missing");
    }
}
