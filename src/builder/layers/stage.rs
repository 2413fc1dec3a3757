//! The state of a stage while it is built: its layers (unpacked directories, with owner
//! indexes when the disk cannot hold owners) and the cache key of what it holds so far;
//! and the stages a walk has finished.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::builder::BuildError;
use crate::image::LayerDigests;
use crate::store::StoredImage;

use super::cache::CacheKey;
use super::owners::OwnerIndex;
use super::view::LayerStackView;

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
