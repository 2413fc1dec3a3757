//! The state of a stage while it is built: its layers (unpacked on first use, with owner
//! indexes when the disk cannot hold owners) and the cache key of what it holds so far;
//! and the stages a walk has finished.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::builder::BuildError;
use crate::image::LayerDigests;
use crate::store::{Store, StoredImage};

use super::cache::CacheKey;
use super::owners::{disk_has_owners, layer_owners, OwnerIndex};
use super::view::LayerStackView;

/// One layer of a stage's filesystem. Its directory is unpacked from the blob on first
/// use ([`Self::unpacked`]): a layer that is only reused (every step on top of it hits
/// the cache) is never unpacked.
#[derive(Debug, Clone)]
pub struct StageLayer {
    /// Digests of the layer blob (tar size 0 for pulled layers).
    pub digests: LayerDigests,
    /// History text (for layers this build made).
    pub created_by: String,
    /// Whether this build made it (false for base layers).
    pub new: bool,
    store: Store,
    unpacked: OnceCell<Unpacked>,
}

/// A layer's unpacked directory, with its owner index when the disk cannot hold owners.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The unpacked layer directory.
    pub dir: PathBuf,
    /// Real modes and owners when the disk cannot hold them (rootless).
    pub owners: Option<Arc<OwnerIndex>>,
}

impl StageLayer {
    /// The layer of `digests` in `store`, unpacked when first needed.
    pub fn new(store: &Store, digests: LayerDigests, created_by: String, new: bool) -> Self {
        Self {
            digests,
            created_by,
            new,
            store: store.clone(),
            unpacked: OnceCell::new(),
        }
    }

    /// The store holding the layer.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether the layer's directory exists (unpacked by this build, or before).
    pub fn is_unpacked(&self) -> bool {
        self.unpacked.get().is_some()
            || matches!(
                self.store.unpacked_layer(&self.digests.diff_id),
                Ok(Some(_))
            )
    }

    /// The unpacked directory (unpacking the blob, once, by diff-ID, on first use) and
    /// its owner index.
    pub fn unpacked(&self) -> Result<&Unpacked, BuildError> {
        if let Some(u) = self.unpacked.get() {
            return Ok(u);
        }
        let d = &self.digests;
        let started = Instant::now();
        let dir = self.store.unpack_layer(&d.digest, Some(&d.diff_id))?.diff;
        let owners = if disk_has_owners() {
            None
        } else {
            let index = layer_owners(&self.store, &d.digest, &d.diff_id)?;
            Some(Arc::new(index))
        };
        tracing::debug!(elapsed = ?started.elapsed(), "layer {} ready", d.diff_id);
        Ok(self.unpacked.get_or_init(|| Unpacked { dir, owners }))
    }
}

/// A view of layers (bottom first), unpacking those not unpacked yet.
pub fn stack_view<'l>(
    layers: impl IntoIterator<Item = &'l StageLayer>,
) -> Result<LayerStackView, BuildError> {
    let mut dirs = Vec::new();
    let mut owners = Vec::new();
    for layer in layers {
        let u = layer.unpacked()?;
        dirs.push(u.dir.clone());
        owners.push(u.owners.clone());
    }
    Ok(LayerStackView::with_owners(dirs, owners))
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
            key: CacheKey::root("scratch", 0),
        }
    }

    /// A view of the stage's filesystem so far (its layers unpacked first when needed).
    pub fn view(&self) -> Result<LayerStackView, BuildError> {
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
