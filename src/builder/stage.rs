//! The types a build is set up with and gives back: its settings, where images come
//! from, and the image it produces. (The state of a stage while it is built is in
//! [`crate::builder::layers::stage`].)

use std::path::PathBuf;

use oci_spec::image::{Descriptor, ImageConfiguration};

use crate::image::oci::ImageFormat;
use crate::store::{Store, StoredImage};

use crate::builder::run::runner::StepNetwork;
use crate::builder::BuildError;

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// The build context directory (`.dockerignore` applies).
    pub context_dir: PathBuf,
    /// Ignore the cache (results are still recorded for later builds).
    pub no_cache: bool,
    /// Network of build steps.
    pub network: StepNetwork,
    /// SOURCE_DATE_EPOCH: clamp for mtimes, `created` of the config and history.
    pub epoch: u64,
    /// Manifest format of the image.
    pub format: ImageFormat,
    /// Tag for the image in the store.
    pub tag: Option<String>,
    /// Blubber's byte-for-byte layers: no tool cache mounts in command steps
    /// ([`crate::builder::run::toolcache`]), no normalised bookkeeping
    /// ([`crate::builder::layers::bookkeeping`]).
    pub keep_tool_caches: bool,
    /// The target platform when it is not this machine's: its steps run under QEMU
    /// emulation ([`crate::builder::emulation`]), it is an input of every cache key
    /// ([`crate::builder::layers::cache::CacheKey::for_platform`]) and the platform of
    /// an image built from scratch. `None` for the host's platform.
    pub foreign_platform: Option<crate::image::platform::Platform>,
}

/// Where base images and copy/mount source images come from.
pub trait ImageSource {
    /// The image `reference`, from the local store or pulled into it.
    fn image(&self, reference: &str) -> Result<StoredImage, BuildError>;
}

/// Images from the local store only.
#[derive(Debug, Clone)]
pub struct LocalImages {
    store: Store,
}

impl LocalImages {
    /// Images of this store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl ImageSource for LocalImages {
    fn image(&self, reference: &str) -> Result<StoredImage, BuildError> {
        self.store
            .image(reference)
            .map_err(|source| BuildError::NotInStore {
                reference: reference.to_string(),
                source,
            })
    }
}

/// The image a build produced.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The variant.
    pub variant: String,
    /// The manifest descriptor in the store.
    pub manifest: Descriptor,
    /// The image config.
    pub config: ImageConfiguration,
    /// The tag, if any.
    pub reference: Option<String>,
    /// Layer-producing instructions that ran.
    pub ran: usize,
    /// Layer-producing instructions answered from the cache.
    pub cached: usize,
}
