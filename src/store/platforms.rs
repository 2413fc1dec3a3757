//! Multi-platform images in the store: reading the image of one platform under a
//! reference (a tagged index, or a single image of that platform), listing the
//! platforms a name holds, and committing an index over per-platform images (what a
//! multi-platform build tags).

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use super::images::{is_index, StoredImage};
use super::{Store, StoreError};
use crate::image::oci::{
    canonical_json, descriptor_of, OciError, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
};
use crate::image::platform::{describe_platforms, Platform};

impl Store {
    /// The image of `platform` that `reference` names: the index entry for it, or the
    /// single image when its config declares that platform. Else
    /// [`StoreError::NoPlatform`] listing what the store has.
    pub fn image_for(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<StoredImage, StoreError> {
        let (tag, descriptor) = self.resolve(reference)?;
        let no_platform = |available: String| StoreError::NoPlatform {
            reference: reference.to_string(),
            platform: platform.to_string(),
            available,
        };
        let mut image = if is_index(descriptor.media_type()) {
            let index = self.read_index_doc(&descriptor)?;
            let chosen = platform
                .select(&index)
                .ok_or_else(|| no_platform(describe_platforms(&index)))?;
            let mut image = self.image_at(chosen)?;
            image.descriptor = chosen.clone();
            image
        } else {
            let image = self.image_at(&descriptor)?;
            if !platform.matches_config(&image.config) {
                return Err(no_platform(Platform::of_config(&image.config).to_string()));
            }
            image
        };
        image.reference = tag;
        Ok(image)
    }

    /// The platforms of the image `descriptor` names: each entry's of an index, the
    /// config's of a single image.
    pub fn platforms_of(&self, descriptor: &Descriptor) -> Result<Vec<String>, StoreError> {
        if is_index(descriptor.media_type()) {
            let index = self.read_index_doc(descriptor)?;
            return Ok(describe_platforms(&index)
                .split(", ")
                .map(str::to_string)
                .collect());
        }
        let image = self.image_at(descriptor)?;
        Ok(vec![Platform::of_config(&image.config).to_string()])
    }

    /// Stores an image index over `manifests` (each stored image with its platform)
    /// and tags it as `name` when given: an OCI index, or a Docker manifest list when
    /// every manifest is a Docker one (`--format docker`). Returns its descriptor.
    pub fn commit_index(
        &self,
        name: Option<&str>,
        manifests: &[(Descriptor, Platform)],
    ) -> Result<Descriptor, StoreError> {
        let entries = manifests
            .iter()
            .map(|(d, platform)| {
                let mut entry =
                    Descriptor::new(d.media_type().clone(), d.size(), d.digest().clone());
                entry.set_platform(Some(platform.to_oci()));
                entry
            })
            .collect::<Vec<_>>();
        let docker = !manifests.is_empty()
            && manifests
                .iter()
                .all(|(d, _)| d.media_type().to_string() == DOCKER_MANIFEST);
        let media_type = match docker {
            true => MediaType::Other(DOCKER_MANIFEST_LIST.into()),
            false => MediaType::ImageIndex,
        };
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(media_type.clone())
            .manifests(entries)
            .build()
            .map_err(OciError::from)?;
        let bytes = canonical_json(&index)?;
        self.put_blob(&bytes)?;
        let descriptor = descriptor_of(media_type, &bytes)?;
        if let Some(name) = name {
            self.set_tag(&super::reference::parse_name(name)?, &descriptor)?;
        }
        Ok(descriptor)
    }

    fn read_index_doc(&self, descriptor: &Descriptor) -> Result<ImageIndex, StoreError> {
        let digest = descriptor.digest();
        serde_json::from_slice(&self.read_blob(digest)?).map_err(|source| StoreError::Json {
            what: "image index",
            name: digest.to_string(),
            source,
        })
    }
}
