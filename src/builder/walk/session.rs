//! [`Session`]: what the visitors of a walk share — the settings, where images come
//! from, the build context (read once), the layers in the store — and the cache key
//! of each kind of step, derived in this one place for the executor and the dry run.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::builder::copy::context::BuildContext;
use crate::builder::copy::{copy_into, rebase, CopyError, CopyRequest, Owner};
use crate::builder::layers::cache::{CacheKey, ContextDigests};
use crate::builder::layers::commit::Layers;
use crate::builder::layers::entries::EntrySet;
use crate::builder::layers::remote::SharedCache;
use crate::builder::layers::stage::{stack_view, StageState, Stages};
use crate::builder::layers::view::{EmptyView, ImageView, LayerStackView};
use crate::builder::stage::{BuildSettings, ImageSource};
use crate::builder::BuildError;
use crate::image::LayerEntry;
use crate::plan::{Instruction, MountSource, RunContext};
use crate::store::{Store, StoredImage};

use super::CopyFrom;

/// Which kind of Run step a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Blubber's user-creation line, applied natively.
    Users,
    /// A command run in the sandbox.
    Command,
}

/// One build (or dry run) against a store.
pub struct Session<'a> {
    layers: Layers<'a>,
    images: &'a dyn ImageSource,
    settings: BuildSettings,
    context: OnceCell<BuildContext>,
    /// Digests of context copies by request: the preflight's serve the build.
    context_digests: RefCell<HashMap<String, String>>,
    /// The entries of the last context copy listed for its digest (onto an empty
    /// filesystem), by memo: the build rebases them onto the stage instead of listing
    /// a large context a second time (see [`Self::context_copy_entries`]).
    listed: RefCell<Option<(String, Vec<LayerEntry>)>>,
}

impl<'a> Session<'a> {
    /// A session writing into `store`, resolving images through `images`.
    pub fn new(store: &'a Store, images: &'a dyn ImageSource, settings: BuildSettings) -> Self {
        Self {
            layers: Layers::new(store, settings.epoch, settings.no_cache),
            images,
            settings,
            context: OnceCell::new(),
            context_digests: RefCell::default(),
            listed: RefCell::default(),
        }
    }

    /// Looks steps the store lacks up in `cache` and exports to it, when given.
    pub fn with_shared_cache(mut self, cache: Option<Arc<SharedCache>>) -> Self {
        if let Some(cache) = cache {
            self.layers = self.layers.with_shared_cache(cache);
        }
        self
    }

    /// The layers in the store and the build cache.
    pub fn layers(&self) -> &Layers<'a> {
        &self.layers
    }

    /// How to build.
    pub fn settings(&self) -> &BuildSettings {
        &self.settings
    }

    /// The image `reference`, from the store or pulled into it.
    pub fn image(&self, reference: &str) -> Result<StoredImage, BuildError> {
        self.images.image(reference)
    }

    /// The build context, read once.
    pub fn context(&self) -> Result<&BuildContext, BuildError> {
        if let Some(c) = self.context.get() {
            return Ok(c);
        }
        let ctx = BuildContext::open(&self.settings.context_dir)?;
        Ok(self.context.get_or_init(|| ctx))
    }

    /// Starts the stage on `image` (`None`: scratch): its layers (unpacked when a step
    /// needs them) and the root of its cache keys.
    pub fn base(&self, st: &mut StageState, image: Option<&str>) -> Result<(), BuildError> {
        let epoch = self.settings.epoch;
        let platform = self.settings.foreign_platform.as_ref();
        let Some(reference) = image else {
            st.key = CacheKey::root("scratch", epoch).for_platform(platform);
            return Ok(());
        };
        let img = self.image(reference)?;
        st.layers = self.layers.image_layers(&img)?;
        st.key = CacheKey::root(img.descriptor.digest().as_ref(), epoch).for_platform(platform);
        st.base = Some(img);
        Ok(())
    }

    /// The filesystem a copy reads its sources from.
    pub fn copy_source(
        &self,
        from: CopyFrom<'_>,
        done: &Stages,
    ) -> Result<Box<dyn ImageView + '_>, BuildError> {
        Ok(match from {
            CopyFrom::Context => Box::new(self.context()?),
            CopyFrom::Variant(v) => Box::new(done.get(v)?.view()?),
            CopyFrom::Image(r) => {
                let img = self.image(r)?;
                Box::new(stack_view(&self.layers.image_layers(&img)?)?)
            }
        })
    }

    /// The filesystem a Run step's mount shows.
    pub fn mount_source(
        &self,
        from: &MountSource,
        done: &Stages,
    ) -> Result<Box<dyn ImageView + '_>, BuildError> {
        Ok(match from {
            MountSource::Variant(v) => Box::new(done.get(v)?.view()?),
            MountSource::Image(r) => {
                let img = self.image(r)?;
                let mut dirs = Vec::new();
                for layer in self.layers.image_layers(&img)? {
                    dirs.push(layer.unpacked()?.dir.clone());
                }
                Box::new(LayerStackView::new(dirs))
            }
            MountSource::Local => Box::new(self.context()?),
        })
    }

    /// The entries a copy writes onto a filesystem (`view`: the stage's so far).
    pub fn copy_entries(
        &self,
        view: &dyn ImageView,
        src: &dyn ImageView,
        req: &CopyRequest<'_>,
    ) -> Result<Vec<LayerEntry>, CopyError> {
        let mut set = EntrySet::new(view, self.settings.epoch);
        copy_into(&mut set, src, req)?;
        Ok(set.into_entries())
    }

    /// The digest of what a copy of `req` takes from the build context: its entries as
    /// written onto an empty filesystem (failing as the copy would when a source is
    /// missing), computed once per request in a session (the preflight's digest serves
    /// the build: hashing a large context twice would double a rebuild's cost).
    pub fn context_sources_digest(&self, req: &CopyRequest<'_>) -> Result<String, SourcesError> {
        let context = self.context()?;
        let memo = self.context_memo(context, req);
        if let Some(d) = self.context_digests.borrow().get(memo.as_str()) {
            return Ok(d.clone());
        }
        let recorded = ContextDigests::open(self.layers.store());
        let known = (!self.settings.no_cache)
            .then(|| recorded.get(memo.as_str()))
            .flatten();
        let digest = match known {
            Some(d) => d,
            None => {
                let entries = self.copy_entries(&EmptyView, context, req)?;
                let d = self.layers.entries_digest_from(&entries, context)?;
                if let Err(e) = recorded.put(memo.as_str(), &d) {
                    let e = crate::error_chain::ErrorChain(&e);
                    tracing::warn!("cannot record the digest of a context copy: {e}");
                }
                *self.listed.borrow_mut() = Some((memo.as_str().to_string(), entries));
                d
            }
        };
        let memo = memo.as_str().to_string();
        self.context_digests
            .borrow_mut()
            .insert(memo, digest.clone());
        Ok(digest)
    }

    /// What a copy of the context is remembered by: the request, the epoch and the
    /// context's stat fingerprint.
    fn context_memo(&self, context: &BuildContext, req: &CopyRequest<'_>) -> CacheKey {
        CacheKey::derive(
            None,
            "context-copy",
            &[
                format!("{req:?}").as_bytes(),
                &self.settings.epoch.to_le_bytes(),
                context.fingerprint().as_bytes(),
            ],
        )
    }

    /// [`Self::copy_entries`] of a copy from the build context onto `view`: the entries
    /// its digest was computed from, rebased onto `view` ([`rebase`]) when this session
    /// listed them, else listed again.
    pub fn context_copy_entries(
        &self,
        view: &dyn ImageView,
        req: &CopyRequest<'_>,
    ) -> Result<Vec<LayerEntry>, SourcesError> {
        let context = self.context()?;
        let memo = self.context_memo(context, req);
        let listed = self.listed.borrow_mut().take();
        if let Some((_, entries)) = listed.filter(|(m, _)| m == memo.as_str()) {
            let set = EntrySet::new(view, self.settings.epoch);
            if let Some(entries) = rebase(set, context, req, entries) {
                return Ok(entries);
            }
        }
        Ok(self.copy_entries(view, context, req)?)
    }

    /// The cache key of a copy: the parent key, the instruction and what it copies —
    /// the content of its sources in the build context, or the key of the source
    /// variant, or the digest of the source image. Not what the stage's filesystem
    /// holds: the parent key determines that, so a cached copy needs no layer below it
    /// unpacked. `sources_digest` is [`Self::context_sources_digest`] of a context copy.
    pub fn copy_key(
        &self,
        st: &StageState,
        instr: &Instruction,
        from: CopyFrom<'_>,
        done: &Stages,
        sources_digest: impl FnOnce() -> Result<String, SourcesError>,
    ) -> Result<CacheKey, SourcesError> {
        let input = match from {
            CopyFrom::Context => format!("context:{}", sources_digest()?),
            CopyFrom::Variant(v) => format!("variant:{}", done.get(v)?.key.as_str()),
            CopyFrom::Image(r) => format!("image:{}", self.image(r)?.descriptor.digest()),
        };
        Ok(step_key(st, instr, &[input.as_bytes()]))
    }

    /// The lineage of a copy from the context (see
    /// [`crate::builder::layers::commit::ContextCopy`]): the same copy instruction of
    /// the same variant from the same context directory, whatever the files hold.
    pub fn context_copy_lineage(&self, st: &StageState, instr: &Instruction) -> CacheKey {
        use std::os::unix::ffi::OsStrExt;
        let text = serde_json::to_string(instr).unwrap_or_else(|_| format!("{instr:?}"));
        let dir = self.settings.context_dir.as_os_str().as_bytes();
        CacheKey::derive(
            None,
            "context-copy-lineage",
            &[dir, st.variant.as_bytes(), text.as_bytes()],
        )
    }

    /// The cache key of a Run step: the parent key, the instruction and what each of its
    /// mounts shows; for a command step also whether tool caches are kept in its layer
    /// (`--keep-tool-caches` changes what the step writes). User creation, which the
    /// builder applies natively, has no such input.
    pub fn run_key(
        &self,
        st: &StageState,
        instr: &Instruction,
        ctx: &RunContext,
        done: &Stages,
        kind: RunKind,
    ) -> Result<CacheKey, BuildError> {
        let mut inputs = Vec::new();
        for m in &ctx.mounts {
            inputs.push(match &m.from {
                MountSource::Variant(v) => format!("variant:{}", done.get(v)?.key.as_str()),
                MountSource::Image(r) => format!("image:{}", self.image(r)?.descriptor.digest()),
                MountSource::Local => format!("local:{}", self.context_digest()?),
            });
        }
        let mut inputs: Vec<&[u8]> = inputs.iter().map(|s| s.as_bytes()).collect();
        match kind {
            RunKind::Users => {}
            RunKind::Command if self.settings.keep_tool_caches => inputs.push(b"tool-caches:kept"),
            // Bumped whenever the mounted locations or the dropped paths change.
            RunKind::Command => inputs.push(b"tool-caches:mounted,bookkeeping-dropped:v1"),
        }
        Ok(step_key(st, instr, &inputs))
    }

    /// The digest of the whole build context, as a copy of it would write it (owned by
    /// root: the caller's uid is no input).
    fn context_digest(&self) -> Result<String, BuildError> {
        let everything = CopyRequest {
            sources: &[".".to_string()],
            source_base: Path::new("/"),
            destination: "/",
            workdir: Path::new("/"),
            owner: Owner::Root,
            exclude: &[],
        };
        self.context_sources_digest(&everything)
            .map_err(|e| match e {
                SourcesError::Build(e) => e,
                SourcesError::Copy(e) => BuildError::ContextCopy(e),
            })
    }
}

/// Why the sources of a copy cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// A source is missing (or a pattern is bad): the copy would fail.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// Reading images, the context or the store failed.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The cache key of an instruction on the stage so far, with the digests of its inputs.
pub fn step_key(st: &StageState, instr: &Instruction, inputs: &[&[u8]]) -> CacheKey {
    let text = serde_json::to_string(instr).unwrap_or_else(|_| format!("{instr:?}"));
    CacheKey::derive(Some(&st.key), &text, inputs)
}
