//! `flense build --dry-run`, and the preflight of every build: everything a build checks
//! before it runs a step, without running one or writing a layer.
//!
//! The dry run ([`dry_run`]) is the second visitor of the [walk](crate::builder::walk),
//! over the same [`Session`] as the executor: each base and `copies.from`/mount image is
//! resolved (pulled into the store when missing: manifest, config and layers, because
//! the executor reads its files), local copy sources are matched against the context
//! with the executor's own copy code, each command step's user must be runnable by the
//! step runner, and a shell step needs `/bin/sh` in the image. With cache lookups (a
//! dry run), while every layer step so far was cached, it derives the executor's cache
//! keys and reuses the cached layers, so it reports which steps are cached and which
//! would run; after the first step that would run, every later layer step of that stage
//! (and every copy from that stage) would run too. A step in a shared cache
//! (`--cache-from`) is reported as such without fetching its layer; the checks that read
//! the files of such a layer (users, shell, copy sources) are left to the build.
//!
//! Without cache lookups ([`Lookups::Off`]) it is the preflight a build walks first, so
//! a missing copy source fails the build before any earlier step has run.
//!
//! With a shared cache (`--cache-from`), the users and shell checks read layers not
//! unpacked yet straight from their blobs ([`TarIndexView`]): a build whose every step
//! hits the cache unpacks no layer, not even the base image's.

mod arch;
mod report;
mod shell;

pub use report::{DryRunError, DryRunProblem, DryRunReport, DryStatus, DryStep, ResolvedImage};

use std::collections::HashSet;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use crate::builder::events::StepStatus;
use crate::builder::layers::cache::CacheKey;
use crate::builder::layers::stage::{StageLayer, StageState, Stages};
use crate::builder::layers::tar_view::TarIndexView;
use crate::builder::layers::view::{EmptyView, ImageView};
use crate::builder::run::runner::StepRunner;
use crate::builder::users::resolve_user;
use crate::builder::walk::{
    step_key, walk, Command, CopyFrom, CopyStep, FixedFile, RunKind, RunStep, Session,
    SourcesError, StepAt, StepVisitor, UsersStep, Visit,
};
use crate::builder::BuildError;
use crate::plan::{MountSource, Plan, RunContext, Stage};
use arch::check_architecture;
use shell::has_file;

/// Whether a dry run looks steps up in the build cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookups {
    /// A dry run: report which steps are cached.
    On,
    /// A build's preflight: only check (the build finds its cache hits itself).
    Off,
}

/// Walks `plan` checking every instruction as a build of it would, without running a
/// step or writing a layer (base and source images may be pulled into the store).
/// `config_file` names the config in errors.
pub fn dry_run(
    session: &Session<'_>,
    runner: &dyn StepRunner,
    plan: &Plan,
    config_file: &Path,
    lookups: Lookups,
) -> Result<DryRunReport, DryRunError> {
    let mut dry = DryRun {
        session,
        runner,
        file: config_file,
        lookups,
        complete: HashSet::new(),
        unfetched: HashSet::new(),
        unfetched_here: false,
        known: Known::Stale,
        files_pending: false,
        check_view: None,
        report: DryRunReport {
            target: plan.target.clone(),
            stages: plan.stages.iter().map(|s| s.variant.clone()).collect(),
            images: Vec::new(),
            steps: Vec::new(),
            isolation: runner.isolation(),
        },
    };
    walk(plan, &mut dry)?;
    Ok(dry.report)
}

/// The state of a dry run.
struct DryRun<'s> {
    session: &'s Session<'s>,
    runner: &'s dyn StepRunner,
    file: &'s Path,
    lookups: Lookups,
    /// Stages whose every layer step is cached: their filesystems are known.
    complete: HashSet<String>,
    /// Complete stages with layers in a shared cache that the dry run does not fetch:
    /// their keys are known but their files cannot be read.
    unfetched: HashSet<String>,
    /// The current stage has such a layer.
    unfetched_here: bool,
    /// Whether the current stage's filesystem so far is the one the build would have.
    known: Known,
    /// A command or copy of the current stage would run, so its files (a shell, say)
    /// cannot be known yet. User-creation steps and fixed files add no programs.
    files_pending: bool,
    /// The last view the checks read, with the diff-IDs of its layers.
    check_view: Option<(Vec<String>, Rc<dyn ImageView>)>,
    report: DryRunReport,
}

/// Whether the stage's filesystem so far is exactly what the build would have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Exact,
    /// A step before would run: later layers cannot be known without running it.
    Stale,
}

impl DryRun<'_> {
    /// `result` of the step at `at`, a problem located in the config.
    fn located<T>(&self, at: &StepAt, result: Result<T, DryRunProblem>) -> Result<T, DryRunError> {
        result.map_err(|reason| DryRunError {
            file: self.file.to_path_buf(),
            variant: at.stage.variant.clone(),
            index: at.index,
            instruction: at.first_line().to_string(),
            reason: Box::new(reason),
        })
    }

    /// Resolves an image reference like the build does and records its digest.
    fn resolve(&mut self, reference: &str) -> Result<(), BuildError> {
        if self.report.images.iter().any(|i| i.reference == reference) {
            return Ok(());
        }
        let img = self.session.image(reference)?;
        self.report.images.push(ResolvedImage {
            reference: reference.to_string(),
            digest: img.descriptor.digest().clone(),
        });
        Ok(())
    }

    fn check_base(
        &mut self,
        stage: &Stage,
        st: &mut StageState,
        image: Option<&str>,
    ) -> Result<StepStatus, DryRunProblem> {
        if let Some(reference) = image {
            self.resolve(reference)?;
        }
        self.session.base(st, image)?;
        if let Some(reference) = image {
            let target = self.session.settings().foreign_platform.as_ref();
            check_architecture(st, reference, stage, target)?;
        }
        Ok(StepStatus::Applied)
    }

    /// What a command step needs before it can start: its mount images and variants,
    /// a user the runner can run as, and (for shell lines) a shell.
    fn check_command(
        &mut self,
        st: &StageState,
        ctx: &RunContext,
        done: &Stages,
        needs_shell: bool,
    ) -> Result<(), DryRunProblem> {
        for m in &ctx.mounts {
            match &m.from {
                MountSource::Image(r) => self.resolve(r)?,
                MountSource::Variant(v) => {
                    done.get(v)?;
                }
                MountSource::Local => {
                    self.session.context()?;
                }
            }
        }
        if self.unfetched_here {
            // The files of layers still in a shared cache are unknown until fetched.
            return Ok(());
        }
        let view = self.check_view(st)?;
        let (uid, gid) = resolve_user(view.as_ref(), &ctx.user);
        self.runner.check_user(uid, gid)?;
        // A command or copy before that would run may install the shell.
        if needs_shell && !self.files_pending && !has_file(view.as_ref(), Path::new("/bin/sh")) {
            return Err(DryRunProblem::NoShell);
        }
        Ok(())
    }

    /// The stage's files for the checks: its unpacked layers, or, with a shared cache
    /// and layers not unpacked yet, read from their blobs (so a build whose steps all
    /// hit unpacks none); kept for the next command on the same layers.
    fn check_view(&mut self, st: &StageState) -> Result<Rc<dyn ImageView>, BuildError> {
        let ids: Vec<String> = (st.layers.iter())
            .map(|l| l.digests.diff_id.to_string())
            .collect();
        if let Some((known, view)) = &self.check_view {
            if *known == ids {
                return Ok(view.clone());
            }
        }
        // Without a shared cache a step that would run unpacks them anyway, and a
        // stage whose steps all hit the local cache has them unpacked already.
        let unpack = !self.session.layers().imports_shared()
            || st.layers.iter().all(StageLayer::is_unpacked);
        let view: Rc<dyn ImageView> = if unpack {
            Rc::new(st.view()?)
        } else {
            match TarIndexView::read_layers(&st.layers) {
                Ok(view) => Rc::new(view),
                Err(e) => {
                    let e = crate::error_chain::ErrorChain(&e);
                    tracing::debug!("reading the layers' blobs failed ({e}), unpacking them");
                    Rc::new(st.view()?)
                }
            }
        };
        self.check_view = Some((ids, view.clone()));
        Ok(view)
    }

    /// A Run step: cached when its key (the executor's) is in the cache.
    fn run_step(
        &mut self,
        at: &StepAt,
        st: &mut StageState,
        ctx: &RunContext,
        command: bool,
    ) -> Result<StepStatus, BuildError> {
        let mounts_known = ctx.mounts.iter().all(|m| match &m.from {
            MountSource::Variant(v) => self.complete.contains(v),
            MountSource::Image(_) | MountSource::Local => true,
        });
        if self.known == Known::Stale || !mounts_known {
            self.known = Known::Stale;
            return Ok(StepStatus::Ran);
        }
        let key = if command {
            self.session
                .run_key(st, at.instruction, ctx, at.done, RunKind::Command)?
        } else {
            self.session
                .run_key(st, at.instruction, ctx, at.done, RunKind::Users)?
        };
        self.lookup(st, key)
    }

    /// A copy: its sources must exist (the executor's copy code says so, copying onto
    /// an empty filesystem); cached when its key is in the cache.
    fn copy_step(
        &mut self,
        at: &StepAt,
        st: &mut StageState,
        copy: CopyStep<'_>,
        src: Option<&dyn ImageView>,
        from: String,
    ) -> Result<StepStatus, DryRunProblem> {
        let session = self.session;
        let req = copy.request();
        // A context copy's digest is computed once, for this preflight and the build.
        let context = matches!(copy.from, CopyFrom::Context);
        let entries = match src {
            Some(_) if context => {
                session.context_sources_digest(&req).map_err(|e| match e {
                    SourcesError::Copy(cause) => DryRunProblem::Copy { cause, from },
                    SourcesError::Build(e) => DryRunProblem::Build(e),
                })?;
                Vec::new()
            }
            Some(src) => session
                .copy_entries(&EmptyView, src, &req)
                .map_err(|cause| DryRunProblem::Copy { cause, from })?,
            None => Vec::new(), // a variant's files still in a shared cache
        };
        if self.known == Known::Stale {
            self.files_pending = true;
            return Ok(StepStatus::Ran);
        }
        let digest = || match context {
            true => session.context_sources_digest(&req),
            false => Ok(session.layers().entries_digest(&entries)?),
        };
        let key = session
            .copy_key(st, at.instruction, copy.from, at.done, digest)
            .map_err(|e| match e {
                SourcesError::Build(e) => DryRunProblem::Build(e),
                SourcesError::Copy(e) => DryRunProblem::Build(BuildError::Copy {
                    variant: st.variant.clone(),
                    step: at.first_line().to_string(),
                    source: e,
                }),
            })?;
        let status = self.lookup(st, key)?;
        self.files_pending |= status == StepStatus::Ran;
        Ok(status)
    }

    fn check_copy(
        &mut self,
        at: &StepAt,
        st: &mut StageState,
        copy: CopyStep<'_>,
    ) -> Result<StepStatus, DryRunProblem> {
        let from = match copy.from {
            CopyFrom::Context => {
                let root = self.session.context()?.root().display();
                format!("the build context {root}")
            }
            CopyFrom::Variant(v) => {
                if !self.complete.contains(v) {
                    // Its files exist only once its steps have run.
                    self.known = Known::Stale;
                    self.files_pending = true;
                    return Ok(StepStatus::Ran);
                }
                format!("variant '{v}'")
            }
            CopyFrom::Image(reference) => {
                self.resolve(reference)?;
                format!("image {reference}")
            }
        };
        if matches!(copy.from, CopyFrom::Variant(v) if self.unfetched.contains(v)) {
            return self.copy_step(at, st, copy, None, from);
        }
        let src = self.session.copy_source(copy.from, at.done)?;
        self.copy_step(at, st, copy, Some(src.as_ref()), from)
    }

    /// Reuses the cached layer of `key` (from the store, else, not fetched, from a
    /// shared cache), if any; a miss makes the rest of the stage unknown.
    fn lookup(&mut self, st: &mut StageState, key: CacheKey) -> Result<StepStatus, BuildError> {
        let layers = self.session.layers();
        if let Some(rec) = layers.lookup(&key) {
            layers.reuse(st, key, rec)?;
            return Ok(StepStatus::Cached);
        }
        match layers.peek_shared(&key) {
            Some(rec) => {
                self.unfetched_here |= rec.layer.is_some();
                layers.reuse(st, key, rec)?;
                Ok(StepStatus::CachedRemote)
            }
            None => {
                self.known = Known::Stale;
                Ok(StepStatus::Ran)
            }
        }
    }
}

impl StepVisitor for DryRun<'_> {
    type Error = DryRunError;

    fn stage_started(&mut self, _stage: &Stage) {
        // Without cache lookups no layer is known past the base.
        self.known = match self.lookups {
            Lookups::On => Known::Exact,
            Lookups::Off => Known::Stale,
        };
        self.files_pending = false;
        self.unfetched_here = false;
    }

    fn base(
        &mut self,
        at: &StepAt,
        st: &mut StageState,
        image: Option<&str>,
    ) -> Visit<DryRunError> {
        let checked = self.check_base(at.stage, st, image);
        self.located(at, checked)
    }

    fn users(&mut self, at: &StepAt, st: &mut StageState, step: UsersStep) -> Visit<DryRunError> {
        let checked = self
            .run_step(at, st, step.ctx, false)
            .map_err(DryRunProblem::from);
        self.located(at, checked)
    }

    fn command(&mut self, at: &StepAt, st: &mut StageState, run: RunStep) -> Visit<DryRunError> {
        let needs_shell = matches!(run.command, Command::Shell(_));
        let checked = self
            .check_command(st, run.ctx, at.done, needs_shell)
            .and_then(|()| {
                self.run_step(at, st, run.ctx, true)
                    .map_err(DryRunProblem::from)
            });
        if let Ok(status) = checked {
            self.files_pending |= status == StepStatus::Ran;
        }
        self.located(at, checked)
    }

    fn copy(&mut self, at: &StepAt, st: &mut StageState, copy: CopyStep) -> Visit<DryRunError> {
        let checked = self.check_copy(at, st, copy);
        self.located(at, checked)
    }

    fn file(&mut self, at: &StepAt, st: &mut StageState, _file: FixedFile) -> Visit<DryRunError> {
        if self.known == Known::Stale {
            return Ok(StepStatus::Ran);
        }
        let key = step_key(st, at.instruction, &[]);
        let looked_up = self.lookup(st, key).map_err(DryRunProblem::from);
        self.located(at, looked_up)
    }

    fn step_finished(&mut self, at: &StepAt, status: StepStatus, _elapsed: Duration) {
        self.report.steps.push(DryStep {
            variant: at.stage.variant.clone(),
            index: at.index,
            total: at.stage.steps.len(),
            instruction: at.first_line().to_string(),
            status: status.into(),
        });
    }

    fn stage_finished(&mut self, st: &StageState) {
        if self.known == Known::Exact {
            self.complete.insert(st.variant.clone());
            if self.unfetched_here {
                self.unfetched.insert(st.variant.clone());
            }
        }
    }
}
