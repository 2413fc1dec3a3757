//! The executor: the visitor of a [walk](crate::builder::walk) that builds. Each
//! layer-producing step derives its cache key (through the [`Session`]), then
//! [`Layers::layer_step`](crate::builder::layers::commit::Layers::layer_step) reuses
//! the cached layer or commits what the step produces: entries written natively (users,
//! copies, fixed files) or a command's writes captured by the [`StepRunner`] (with the
//! tool caches mounted from the store and the tools' bookkeeping dropped, unless
//! `--keep-tool-caches`). After the walk, the target stage's layers and config are
//! committed as an image in the store.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::builder::events::{BuildEvent, EventSink, StepStatus};
use crate::builder::imageconfig::{final_config, NewLayer};
use crate::builder::layers::adopt::StepWrites;
use crate::builder::layers::bookkeeping::drop_bookkeeping;
use crate::builder::layers::cache::CacheKey;
use crate::builder::layers::commit::ContextCopy;
use crate::builder::layers::entries::EntrySet;
use crate::builder::layers::image_relative;
use crate::builder::layers::stage::{StageState, Stages};
use crate::builder::layers::view::ImageView;
use crate::builder::run::runner::{StepMount, StepRequest, StepRunner};
use crate::builder::run::step::{
    cache_mounts, keep_existing_owners, script_mount, source_mounts, step_env,
};
use crate::builder::run::toolcache::ToolCaches;
use crate::builder::stage::BuiltImage;
use crate::builder::users::{resolve_user, user_entries};
use crate::builder::walk::{
    step_key, walk, Command, CopyFrom, CopyStep, FixedFile, RunKind, RunStep, Session,
    SourcesError, StepAt, StepVisitor, UsersStep, Visit,
};
use crate::builder::BuildError;
use crate::image::{Content, EntryKind, LayerDigests};
use crate::plan::{Plan, Stage};
use crate::store::{CacheDir, CacheMountDir, CacheMountLock};

/// Builds plans: runs their steps and commits the target as an image.
pub struct Executor<'a> {
    session: &'a Session<'a>,
    runner: &'a dyn StepRunner,
    events: &'a dyn EventSink,
    /// Layer steps that ran and that were cached.
    counts: (usize, usize),
    /// Scratch directories of the current step, removed once its layer is written.
    scratch: RefCell<Vec<crate::store::ScratchDir>>,
}

impl Drop for Executor<'_> {
    fn drop(&mut self) {
        self.clean_scratch();
    }
}

impl<'a> Executor<'a> {
    /// An executor of `session`, running commands with `runner` and reporting to
    /// `events`.
    pub fn new(
        session: &'a Session<'a>,
        runner: &'a dyn StepRunner,
        events: &'a dyn EventSink,
    ) -> Self {
        Self {
            session,
            runner,
            events,
            counts: (0, 0),
            scratch: RefCell::new(Vec::new()),
        }
    }

    /// Builds every stage of `plan` and commits the target as an image.
    pub fn build(mut self, plan: &Plan) -> Result<BuiltImage, BuildError> {
        let stages = walk(plan, &mut self)?;
        self.commit_image(plan, &stages)
    }

    /// Commits the target stage of a walked plan as an image.
    fn commit_image(&self, plan: &Plan, stages: &Stages) -> Result<BuiltImage, BuildError> {
        let target = plan.target_stage();
        let state = stages.get(&target.variant)?;
        let new_layers: Vec<NewLayer> = state
            .layers
            .iter()
            .filter(|l| l.new)
            .map(|l| NewLayer {
                diff_id: l.digests.diff_id.clone(),
                created_by: l.created_by.clone(),
            })
            .collect();
        let settings = self.session.settings();
        let mut config = final_config(
            state.base.as_ref().map(|b| &b.config),
            &target.image,
            &plan.labels,
            &new_layers,
            settings.epoch,
        )?;
        if let (None, Some(platform)) = (&state.base, &settings.foreign_platform) {
            config.set_os(platform.os.as_str().into());
            config.set_architecture(platform.architecture.as_str().into());
            config.set_variant(platform.variant.clone());
        }
        let layers: Vec<LayerDigests> = state.layers.iter().map(|l| l.digests.clone()).collect();
        let store = self.session.layers().store();
        let manifest =
            store.commit_image(settings.tag.as_deref(), settings.format, &config, &layers)?;
        self.session.layers().save_stats()?;
        self.events.event(&BuildEvent::Image {
            variant: target.variant.clone(),
            digest: manifest.digest().clone(),
            reference: settings.tag.clone(),
        });
        let (ran, cached) = self.counts;
        Ok(BuiltImage {
            variant: target.variant.clone(),
            manifest,
            config,
            reference: settings.tag.clone(),
            ran,
            cached,
        })
    }

    /// Reports the shared caches' warnings given since the last report as events.
    fn cache_warnings(&self) {
        for message in self.session.layers().take_cache_warnings() {
            self.events.event(&BuildEvent::Warning { message });
        }
    }

    /// A scratch directory under the store's `tmp/`, removed after the current step's
    /// layer is written (captured files are read from it until then).
    fn scratch_dir(&self, prefix: &str) -> Result<PathBuf, BuildError> {
        let dir = self.session.layers().store().scratch_dir(prefix)?;
        let path = dir.path().to_path_buf();
        self.scratch.borrow_mut().push(dir);
        Ok(path)
    }

    /// Removes the scratch directories made since the last call (one that cannot be
    /// removed is left to the next `Store::reclaim_leftovers`).
    fn clean_scratch(&self) {
        self.scratch.borrow_mut().clear();
    }

    /// Reuses the cached layer of `key` or commits what `produce` makes, then removes
    /// the step's scratch directories.
    fn layer_step(
        &self,
        st: &mut StageState,
        key: CacheKey,
        at: &StepAt,
        copy: Option<ContextCopy<'_>>,
        produce: impl FnOnce(&StageState) -> Result<StepWrites, BuildError>,
    ) -> Result<StepStatus, BuildError> {
        let layers = self.session.layers();
        let status = layers.layer_step(st, key, &at.text, copy, produce);
        self.clean_scratch();
        status
    }

    /// Mounts the tool caches of a command step, unless `--keep-tool-caches`: each
    /// restored first with `--cache-mounts`, then locked shared (added to `locks`).
    fn tool_caches(
        &self,
        view: &dyn ImageView,
        env: &[(String, String)],
        user: (u32, u32),
        mounts: &mut Vec<StepMount>,
        locks: &mut Vec<CacheMountLock>,
    ) -> Result<Option<ToolCaches>, BuildError> {
        if self.session.settings().keep_tool_caches {
            return Ok(None);
        }
        let layers = self.session.layers();
        let store_mounts = layers.store().cache_dir(CacheDir::Mounts);
        let caches = ToolCaches::mount(&store_mounts, view, env, user, mounts)?;
        // Restores (each under its exclusive lock) before holding any shared one.
        for cache in &caches.caches {
            layers.prepare_cache_mount(cache);
        }
        for cache in &caches.caches {
            locks.push(CacheMountDir::new(&cache.dir).lock(false)?);
        }
        Ok(Some(caches))
    }

    /// Runs the step's command in the sandbox on the stage's layers and returns its
    /// writes (and the overlay upper directory they were captured from, when adoptable).
    fn run_command(
        &self,
        at: &StepAt,
        st: &StageState,
        run: RunStep,
    ) -> Result<StepWrites, BuildError> {
        let ctx = run.ctx;
        let (argv, mut mounts) = match run.command {
            Command::Shell(line) => {
                let argv = ["/bin/sh", "-c", line].map(String::from).to_vec();
                (argv, Vec::new())
            }
            Command::Script { script, sha256 } => {
                let (argv, mount) = script_mount(&self.scratch_dir("script-")?, script, sha256)?;
                (argv, vec![mount])
            }
        };
        let view = st.view()?;
        let (uid, gid) = resolve_user(&view, &ctx.user);
        let state_dir = self.scratch_dir("step-")?;
        source_mounts(self.session, at.done, ctx, &state_dir, &mut mounts)?;
        let mut locks = cache_mounts(self.session, ctx, &state_dir, &mut mounts)?;
        let env = step_env(at.plan, st, ctx);
        let tool_caches = self.tool_caches(&view, &env, (uid, gid), &mut mounts, &mut locks)?;
        let req = StepRequest {
            argv,
            env,
            cwd: PathBuf::from(&ctx.workdir),
            uid,
            gid,
            groups: Vec::new(),
            lowers: view.layers().to_vec(),
            state_dir: state_dir.join("overlay"),
            mounts,
            network: self.session.settings().network,
            capture: true,
        };
        let outcome = self.runner.run(&req)?;
        drop(locks);
        if outcome.exit_code != 0 {
            return Err(BuildError::StepFailed {
                variant: st.variant.clone(),
                index: at.index,
                step: at.first_line().to_string(),
                code: outcome.exit_code,
                hint: self.runner.failure_hint(&req, outcome.exit_code),
            });
        }
        let mut entries = outcome.entries;
        if outcome.owners_assumed {
            keep_existing_owners(&view, &mut entries);
        }
        if let Some(caches) = tool_caches {
            caches.restore_parents(&view, &mut entries, (uid, gid));
            drop_bookkeeping(&mut entries, &view);
        }
        Ok(StepWrites {
            entries,
            tree: outcome.tree,
        })
    }
}

impl StepVisitor for Executor<'_> {
    type Error = BuildError;

    fn stage_started(&mut self, stage: &Stage) {
        self.cache_warnings();
        self.events.event(&BuildEvent::Stage {
            variant: stage.variant.clone(),
            base: stage.base.clone(),
        });
    }

    fn base(
        &mut self,
        _at: &StepAt,
        st: &mut StageState,
        image: Option<&str>,
    ) -> Visit<BuildError> {
        self.session.base(st, image)?;
        Ok(StepStatus::Applied)
    }

    fn users(&mut self, at: &StepAt, st: &mut StageState, step: UsersStep) -> Visit<BuildError> {
        let key = self
            .session
            .run_key(st, at.instruction, step.ctx, at.done, RunKind::Users)?;
        let epoch = self.session.settings().epoch;
        let users = step.users;
        self.layer_step(st, key, at, None, |st| {
            user_entries(&st.view()?, &[users.account], &users.owned_dirs, epoch)
                .map(StepWrites::from)
                .map_err(|source| BuildError::Users {
                    variant: st.variant.clone(),
                    source,
                })
        })
    }

    fn command(&mut self, at: &StepAt, st: &mut StageState, run: RunStep) -> Visit<BuildError> {
        let key = (self.session).run_key(st, at.instruction, run.ctx, at.done, RunKind::Command)?;
        self.layer_step(st, key, at, None, |st| self.run_command(at, st, run))
    }

    fn copy(&mut self, at: &StepAt, st: &mut StageState, copy: CopyStep) -> Visit<BuildError> {
        let session = self.session;
        let req = copy.request();
        let copy_failed = |st: &StageState, e: SourcesError| match e {
            SourcesError::Copy(source) => BuildError::Copy {
                variant: st.variant.clone(),
                step: at.first_line().to_string(),
                source,
            },
            SourcesError::Build(e) => e,
        };
        let sources = || session.context_sources_digest(&req);
        let key = session
            .copy_key(st, at.instruction, copy.from, at.done, sources)
            .map_err(|e| copy_failed(st, e))?;
        let context_copy = match copy.from {
            CopyFrom::Context => Some(ContextCopy {
                lineage: session.context_copy_lineage(st, at.instruction),
                context: session.context()?,
            }),
            _ => None,
        };
        self.layer_step(st, key, at, context_copy, |st| {
            let view = st.view()?;
            let entries = match copy.from {
                CopyFrom::Context => session.context_copy_entries(&view, &req),
                _ => {
                    let src = session.copy_source(copy.from, at.done)?;
                    (session.copy_entries(&view, src.as_ref(), &req)).map_err(Into::into)
                }
            };
            Ok(entries.map_err(|e| copy_failed(st, e))?.into())
        })
    }

    fn file(&mut self, at: &StepAt, st: &mut StageState, file: FixedFile) -> Visit<BuildError> {
        let key = step_key(st, at.instruction, &[]);
        let epoch = self.session.settings().epoch;
        self.layer_step(st, key, at, None, |st| {
            let view = st.view()?;
            let mut set = EntrySet::new(&view, epoch);
            let rel = image_relative(Path::new(file.path));
            set.parents(&rel, 0, 0);
            let content = Content::Bytes(file.content.as_bytes().to_vec());
            set.put(rel, EntryKind::File(content), file.mode, 0, 0, epoch);
            Ok(set.into_entries().into())
        })
    }

    fn step_finished(&mut self, at: &StepAt, status: StepStatus, elapsed: Duration) {
        self.cache_warnings();
        match status {
            StepStatus::Ran => self.counts.0 += 1,
            StepStatus::Cached | StepStatus::CachedRemote => self.counts.1 += 1,
            StepStatus::Applied => {}
        }
        self.events.event(&BuildEvent::Step {
            variant: at.stage.variant.clone(),
            index: at.index,
            total: at.stage.steps.len(),
            instruction: at.first_line().to_string(),
            status,
            seconds: elapsed.as_secs_f64(),
        });
    }
}
