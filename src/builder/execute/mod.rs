//! The executor: walks a plan's stages (dependencies first), keeps each stage's layers
//! (unpacked once by diff-ID, used as overlay lowerdirs), reuses cached layers, and
//! commits the target stage as an image in the store. The per-instruction work is in
//! [`crate::builder::execute::steps`] and [`crate::builder::run::step`]; reusing or committing a step's layer in
//! [`crate::builder::layers::commit`].

pub mod steps;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::image::LayerDigests;
use crate::plan::{dockerfile, Instruction, Plan, Stage};
use crate::store::{Store, StoredImage};

use crate::builder::copy::context::BuildContext;
use crate::builder::events::{BuildEvent, EventSink, StepStatus};
use crate::builder::imageconfig::{final_config, NewLayer};
use crate::builder::layers::cache::{CacheIndex, CacheKey, StatCache};
use crate::builder::layers::owners::{disk_has_owners, layer_owners};
use crate::builder::run::runner::StepRunner;
pub use crate::builder::stage::{
    BuildSettings, BuiltImage, ImageSource, LocalImages, StageLayer, StageState,
};
use crate::builder::BuildError;

/// Executes plans against a store.
pub struct Executor<'a> {
    pub(crate) store: &'a Store,
    pub(crate) runner: &'a dyn StepRunner,
    pub(crate) images: &'a dyn ImageSource,
    events: &'a dyn EventSink,
    pub(crate) settings: BuildSettings,
    pub(crate) stats: RefCell<StatCache>,
    pub(crate) index: CacheIndex,
    context: OnceCell<BuildContext>,
    pub(crate) stages: RefCell<HashMap<String, StageState>>,
    counts: Cell<(usize, usize)>,
    scratch: RefCell<Vec<PathBuf>>,
}

impl Drop for Executor<'_> {
    fn drop(&mut self) {
        self.clean_scratch();
    }
}

impl<'a> Executor<'a> {
    /// An executor writing into `store`, running commands with `runner`.
    pub fn new(
        store: &'a Store,
        runner: &'a dyn StepRunner,
        images: &'a dyn ImageSource,
        events: &'a dyn EventSink,
        settings: BuildSettings,
    ) -> Self {
        Self {
            store,
            runner,
            images,
            events,
            stats: RefCell::new(StatCache::load(store)),
            index: CacheIndex::open(store),
            context: OnceCell::new(),
            stages: RefCell::new(HashMap::new()),
            counts: Cell::new((0, 0)),
            scratch: RefCell::new(Vec::new()),
            settings,
        }
    }

    /// A scratch directory under the store's `tmp/`, removed after the current step's
    /// layer is written (captured files are read from it until then).
    pub(crate) fn scratch_dir(&self, prefix: &str) -> Result<PathBuf, BuildError> {
        let tmp = self.store.tmp_dir();
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .map_err(crate::builder::io_err(&tmp))?
            .keep();
        self.scratch.borrow_mut().push(dir.clone());
        Ok(dir)
    }

    /// Removes the scratch directories made since the last call.
    pub(crate) fn clean_scratch(&self) {
        for dir in self.scratch.borrow_mut().drain(..) {
            if let Err(e) = crate::store::unpack::remove_tree(&dir) {
                tracing::warn!("cannot remove {}: {e}", dir.display());
            }
        }
    }

    /// The build context, read once.
    pub(crate) fn context(&self) -> Result<&BuildContext, BuildError> {
        if let Some(c) = self.context.get() {
            return Ok(c);
        }
        let ctx = BuildContext::open(&self.settings.context_dir)?;
        Ok(self.context.get_or_init(|| ctx))
    }

    /// Builds every stage of `plan` and commits the target as an image.
    pub fn build(&self, plan: &Plan) -> Result<BuiltImage, BuildError> {
        for stage in &plan.stages {
            let state = self.build_stage(plan, stage)?;
            self.stages
                .borrow_mut()
                .insert(stage.variant.clone(), state);
        }
        let target = plan.target_stage();
        let stages = self.stages.borrow();
        let state = stages
            .get(&target.variant)
            .ok_or_else(|| BuildError::UnknownStage(target.variant.clone()))?;
        let new_layers: Vec<NewLayer> = state
            .layers
            .iter()
            .filter(|l| l.new)
            .map(|l| NewLayer {
                diff_id: l.digests.diff_id.clone(),
                created_by: l.created_by.clone(),
            })
            .collect();
        let config = final_config(
            state.base.as_ref().map(|b| &b.config),
            &target.image,
            &plan.labels,
            &new_layers,
            self.settings.epoch,
        )?;
        let layers: Vec<LayerDigests> = state.layers.iter().map(|l| l.digests.clone()).collect();
        let manifest = self.store.commit_image(
            self.settings.tag.as_deref(),
            self.settings.format,
            &config,
            &layers,
        )?;
        self.stats.borrow_mut().save()?;
        self.events.event(&BuildEvent::Image {
            variant: target.variant.clone(),
            digest: manifest.digest().to_string(),
            reference: self.settings.tag.clone(),
        });
        let (ran, cached) = self.counts.get();
        Ok(BuiltImage {
            variant: target.variant.clone(),
            manifest,
            config,
            reference: self.settings.tag.clone(),
            ran,
            cached,
        })
    }

    fn build_stage(&self, plan: &Plan, stage: &Stage) -> Result<StageState, BuildError> {
        self.events.event(&BuildEvent::Stage {
            variant: stage.variant.clone(),
            base: stage.base.clone(),
        });
        let mut state = StageState {
            variant: stage.variant.clone(),
            base: None,
            layers: Vec::new(),
            key: CacheKey::root("scratch"),
        };
        let total = stage.steps.len();
        for (i, step) in stage.steps.iter().enumerate() {
            let started = Instant::now();
            let text = dockerfile::render_instruction(&step.instruction);
            let status = self.step(plan, &mut state, i + 1, &step.instruction, &text)?;
            let (ran, cached) = self.counts.get();
            match status {
                StepStatus::Ran => self.counts.set((ran + 1, cached)),
                StepStatus::Cached => self.counts.set((ran, cached + 1)),
                StepStatus::Applied => {}
            }
            self.events.event(&BuildEvent::Step {
                variant: stage.variant.clone(),
                index: i + 1,
                total,
                instruction: text.lines().next().unwrap_or_default().to_string(),
                status,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        Ok(state)
    }

    fn step(
        &self,
        plan: &Plan,
        st: &mut StageState,
        index: usize,
        instr: &Instruction,
        text: &str,
    ) -> Result<StepStatus, BuildError> {
        match instr {
            Instruction::Base { image, .. } => {
                self.base(st, image.as_deref())?;
                Ok(StepStatus::Applied)
            }
            Instruction::Run {
                effective, context, ..
            }
            | Instruction::RunAll {
                effective, context, ..
            } => self.run_shell(plan, st, index, instr, text, effective, context),
            Instruction::RunScript {
                script,
                sha256,
                context,
            } => self.run_script(plan, st, index, instr, text, script, sha256, context),
            Instruction::Copy(spec) => self.copy_local(st, instr, text, spec),
            Instruction::CopyFrom {
                from,
                source_workdir,
                copy,
            } => self.copy_from(st, instr, text, from, source_workdir.as_deref(), copy),
            Instruction::File {
                path,
                content,
                mode,
            } => self.file(st, instr, text, path, content, *mode),
            Instruction::Arg { .. }
            | Instruction::Env { .. }
            | Instruction::User { .. }
            | Instruction::WorkingDirectory { .. }
            | Instruction::EntryPoint { .. }
            | Instruction::Label { .. } => {
                st.key = CacheKey::derive(Some(&st.key), &instruction_json(instr), &[]);
                Ok(StepStatus::Applied)
            }
        }
    }

    pub(crate) fn base(&self, st: &mut StageState, image: Option<&str>) -> Result<(), BuildError> {
        let Some(reference) = image else {
            st.key = CacheKey::root("scratch");
            return Ok(());
        };
        let img = self.images.image(reference)?;
        st.layers = self.unpack_image(&img)?;
        st.key = CacheKey::root(img.descriptor.digest().as_ref());
        st.base = Some(img);
        Ok(())
    }

    /// Unpacks (once, by diff-ID) every layer of a stored image.
    pub(crate) fn unpack_image(&self, img: &StoredImage) -> Result<Vec<StageLayer>, BuildError> {
        let diff_ids = img.config.rootfs().diff_ids();
        if diff_ids.len() != img.manifest.layers().len() {
            return Err(BuildError::Image {
                reference: img.reference.clone().unwrap_or_default(),
                detail: format!(
                    "the manifest has {} layers but the config lists {} diff-IDs",
                    img.manifest.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (desc, diff_id) in img.manifest.layers().iter().zip(diff_ids) {
            let digest = desc.digest().to_string();
            let unpacked = self.store.unpack_layer(&digest, Some(diff_id))?;
            let owners = if disk_has_owners() {
                None
            } else {
                Some(Arc::new(layer_owners(self.store, &digest, diff_id)?))
            };
            layers.push(StageLayer {
                owners,
                digests: LayerDigests {
                    digest,
                    size: desc.size(),
                    diff_id: diff_id.clone(),
                    tar_size: 0,
                },
                dir: unpacked.diff,
                created_by: String::new(),
                new: false,
            });
        }
        Ok(layers)
    }
}

/// The canonical text of an instruction for cache keys.
pub(crate) fn instruction_json(instr: &Instruction) -> String {
    serde_json::to_string(instr).unwrap_or_else(|_| format!("{instr:?}"))
}
