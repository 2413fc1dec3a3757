//! The types a build works with: its settings, where images come from, the state of a
//! stage (its layers and cache key) and the image it produces.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageConfiguration};

use crate::image::oci::ImageFormat;
use crate::image::LayerDigests;
use crate::store::{Store, StoredImage};

use crate::builder::layers::cache::CacheKey;
use crate::builder::layers::owners::OwnerIndex;
use crate::builder::layers::view::LayerStackView;
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

/// One layer of a stage's filesystem.
#[derive(Debug, Clone)]
pub struct StageLayer {
    /// Digests of the layer blob (tar size 0 for pulled layers).
    pub digests: LayerDigests,
    /// The unpacked layer directory.
    pub dir: PathBuf,
    /// History text (for layers this build made).
    pub created_by: String,
    /// Whether this build made it (false for base layers).
    pub new: bool,
    /// Real modes and owners when the disk cannot hold them (rootless).
    pub owners: Option<Arc<OwnerIndex>>,
}

/// A view of unpacked layers, with their owner indexes.
pub fn stack_view<'l>(layers: impl IntoIterator<Item = &'l StageLayer>) -> LayerStackView {
    let (dirs, owners) = layers
        .into_iter()
        .map(|l| (l.dir.clone(), l.owners.clone()))
        .unzip();
    LayerStackView::with_owners(dirs, owners)
}

/// The state of a stage while its instructions run.
#[derive(Debug, Clone)]
pub struct StageState {
    /// The variant.
    pub variant: String,
    /// The base image (`None` = scratch).
    pub base: Option<StoredImage>,
    /// Layers so far, bottom first.
    pub layers: Vec<StageLayer>,
    /// The cache key of the state so far.
    pub key: CacheKey,
}

impl StageState {
    /// The state of a stage before its first instruction: scratch.
    pub fn new(variant: &str) -> Self {
        Self {
            variant: variant.to_string(),
            base: None,
            layers: Vec::new(),
            key: CacheKey::root("scratch"),
        }
    }

    /// A view of the stage's filesystem so far.
    pub fn view(&self) -> LayerStackView {
        stack_view(&self.layers)
    }

    /// The base image's `Env`.
    pub fn base_env(&self) -> Vec<String> {
        self.base
            .as_ref()
            .and_then(|b| b.config.config().clone())
            .and_then(|c| c.env().clone())
            .unwrap_or_default()
    }
}

/// The stages a walk has finished, by variant: what later stages copy and mount from.
#[derive(Debug, Default)]
pub struct Stages(HashMap<String, StageState>);

impl Stages {
    /// The finished stage of `variant`.
    pub fn get(&self, variant: &str) -> Result<&StageState, BuildError> {
        self.0
            .get(variant)
            .ok_or_else(|| BuildError::UnknownStage(variant.to_string()))
    }

    /// Whether `variant` is finished.
    pub fn contains(&self, variant: &str) -> bool {
        self.0.contains_key(variant)
    }

    /// Records a finished stage.
    pub fn insert(&mut self, st: StageState) {
        self.0.insert(st.variant.clone(), st);
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
