//! `flense build --dry-run`: everything a build checks before it runs a step, without
//! running one or writing a layer.
//!
//! The dry run compiles the variant with [`compile_project`] (which resolves every base
//! image through the same [`ImageSource`] as a build, so mirrors and rewrites apply),
//! then walks the plan's stages like the executor: each base and `copies.from`/mount
//! image is resolved (pulled into the store when missing: manifest, config and layers,
//! because the executor reads its files), local copy sources are matched against the
//! context with the executor's own copy code, each command step's user must be
//! runnable by the step runner, and a shell step needs `/bin/sh` in the image. While
//! every layer step so far was cached, the dry run derives the same cache keys as the
//! executor and reuses the cached layers, so it reports which steps are cached and
//! which would run; after the first step that would run, every later layer step of that
//! stage (and every copy from that stage) would run too.
//!
//! A real build runs the same checks without the cache lookups first ([`preflight`]),
//! so a missing copy source fails it before any earlier step has run.

mod arch;
mod report;
mod shell;

pub use report::{DryRunError, DryRunProblem, DryRunReport, DryStatus, DryStep, ResolvedImage};

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::plan::{dockerfile, CopySource, Instruction, MountSource, Plan, RunContext, Stage};
use crate::store::Store;

use crate::builder::copy::{copy_into, CopyRequest, Owner};
use crate::builder::events::NoEvents;
use crate::builder::execute::steps::{copy_owner, copy_request, layers_view};
use crate::builder::execute::{instruction_json, Executor, ImageSource, StageState};
use crate::builder::layers::cache::{entries_digest, CacheKey};
use crate::builder::layers::entries::EntrySet;
use crate::builder::layers::view::ImageView;
use crate::builder::project::{compile_project, ProjectBuild};
use crate::builder::run::runner::StepRunner;
use crate::builder::run::step::native_user_step;
use crate::builder::BuildError;
use arch::check_architecture;
use shell::has_file;

/// Compiles `req` and checks every instruction as a build of it would, without running
/// a step or writing a layer (base and source images may be pulled into `store`).
pub fn dry_run_project(
    store: &Store,
    runner: &dyn StepRunner,
    images: &dyn ImageSource,
    req: &ProjectBuild,
) -> Result<DryRunReport, DryRunError> {
    let plan = compile_project(req, images)?;
    walk(store, runner, images, req, &plan, true)
}

/// The checks of a dry run without its cache lookups, for a build about to start: a
/// missing copy source, an unresolvable image or a command without a shell fails the
/// build before any step runs.
pub fn preflight(
    store: &Store,
    runner: &dyn StepRunner,
    images: &dyn ImageSource,
    req: &ProjectBuild,
    plan: &Plan,
) -> Result<(), DryRunError> {
    walk(store, runner, images, req, plan, false).map(|_| ())
}

fn walk(
    store: &Store,
    runner: &dyn StepRunner,
    images: &dyn ImageSource,
    req: &ProjectBuild,
    plan: &Plan,
    use_cache: bool,
) -> Result<DryRunReport, DryRunError> {
    let executor = Executor::new(store, runner, images, &NoEvents, req.settings.clone());
    let mut walk = DryRun {
        exec: &executor,
        file: &req.config_file,
        use_cache,
        complete: HashSet::new(),
        files_pending: false,
        report: DryRunReport {
            target: plan.target.clone(),
            stages: plan.stages.iter().map(|s| s.variant.clone()).collect(),
            images: Vec::new(),
            steps: Vec::new(),
        },
    };
    for stage in &plan.stages {
        walk.stage(stage)?;
    }
    Ok(walk.report)
}

/// The state of a dry run.
struct DryRun<'e, 'a> {
    exec: &'e Executor<'a>,
    file: &'e Path,
    /// Whether to look steps up in the build cache (a dry run) or only check them (the
    /// preflight of a build, which finds its cache hits itself).
    use_cache: bool,
    /// Stages whose every layer step is cached: their filesystems are known.
    complete: HashSet<String>,
    /// A command or copy of the current stage would run, so its files (a shell, say)
    /// cannot be known yet. User-creation steps and fixed files add no programs.
    files_pending: bool,
    report: DryRunReport,
}

/// Whether the stage's filesystem so far is exactly what the build would have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Exact,
    /// A step before would run: later layers cannot be known without running it.
    Stale,
}

impl DryRun<'_, '_> {
    fn stage(&mut self, stage: &Stage) -> Result<(), DryRunError> {
        let mut st = StageState {
            variant: stage.variant.clone(),
            base: None,
            layers: Vec::new(),
            key: CacheKey::root("scratch"),
        };
        // Without cache lookups no layer is known past the base.
        let mut known = if self.use_cache {
            Known::Exact
        } else {
            Known::Stale
        };
        self.files_pending = false;
        let total = stage.steps.len();
        for (i, step) in stage.steps.iter().enumerate() {
            let text = dockerfile::render_instruction(&step.instruction);
            let first_line = text.lines().next().unwrap_or_default().to_string();
            let status = self
                .step(stage, &mut st, &mut known, &step.instruction)
                .map_err(|reason| DryRunError::Step {
                    file: self.file.to_path_buf(),
                    variant: stage.variant.clone(),
                    index: i + 1,
                    instruction: first_line.clone(),
                    reason: Box::new(reason),
                })?;
            self.report.steps.push(DryStep {
                variant: stage.variant.clone(),
                index: i + 1,
                total,
                instruction: first_line,
                status,
            });
        }
        if known == Known::Exact {
            self.complete.insert(stage.variant.clone());
        }
        self.exec
            .stages
            .borrow_mut()
            .insert(stage.variant.clone(), st);
        Ok(())
    }

    fn step(
        &mut self,
        stage: &Stage,
        st: &mut StageState,
        known: &mut Known,
        instr: &Instruction,
    ) -> Result<DryStatus, DryRunProblem> {
        match instr {
            Instruction::Base { image, .. } => {
                if let Some(reference) = image {
                    self.resolve(reference)?;
                    self.exec.base(st, Some(reference))?;
                    check_architecture(st, reference, stage)?;
                } else {
                    self.exec.base(st, None)?;
                }
                Ok(DryStatus::Applied)
            }
            Instruction::Run {
                effective, context, ..
            }
            | Instruction::RunAll {
                effective, context, ..
            } => {
                if native_user_step(effective, context).is_some() {
                    return self.run_step(st, known, instr, context);
                }
                self.check_command(st, context, true)?;
                let status = self.run_step(st, known, instr, context)?;
                self.files_pending |= status == DryStatus::WouldRun;
                Ok(status)
            }
            Instruction::RunScript { context, .. } => {
                self.check_command(st, context, false)?;
                let status = self.run_step(st, known, instr, context)?;
                self.files_pending |= status == DryStatus::WouldRun;
                Ok(status)
            }
            Instruction::Copy(spec) => {
                let ctx = self.exec.context()?;
                let from = format!("the build context {}", ctx.root().display());
                let req = copy_request(spec, Path::new("/"), copy_owner(spec, Owner::Root));
                self.copy_step(st, known, instr, ctx, &req, &from)
            }
            Instruction::CopyFrom {
                from,
                source_workdir,
                copy,
            } => {
                let base = PathBuf::from(source_workdir.as_deref().unwrap_or("/"));
                let req = copy_request(copy, &base, copy_owner(copy, Owner::Keep));
                match from {
                    CopySource::Variant(v) => {
                        if !self.complete.contains(v) {
                            // Its files exist only once its steps have run.
                            *known = Known::Stale;
                            self.files_pending = true;
                            return Ok(DryStatus::WouldRun);
                        }
                        let src = self.variant_view(v)?;
                        let from = format!("variant '{v}'");
                        self.copy_step(st, known, instr, &src, &req, &from)
                    }
                    CopySource::Image(reference) => {
                        self.resolve(reference)?;
                        let img = self.exec.images.image(reference)?;
                        let src = layers_view(self.exec.unpack_image(&img)?);
                        let from = format!("image {reference}");
                        self.copy_step(st, known, instr, &src, &req, &from)
                    }
                }
            }
            Instruction::File { .. } => self.keyed_step(st, known, instr, &[]),
            Instruction::Arg { .. }
            | Instruction::Env { .. }
            | Instruction::User { .. }
            | Instruction::WorkingDirectory { .. }
            | Instruction::EntryPoint { .. }
            | Instruction::Label { .. } => {
                st.key = CacheKey::derive(Some(&st.key), &instruction_json(instr), &[]);
                Ok(DryStatus::Applied)
            }
        }
    }

    /// Resolves an image reference like the build does and records its digest.
    fn resolve(&mut self, reference: &str) -> Result<(), BuildError> {
        if self.report.images.iter().any(|i| i.reference == reference) {
            return Ok(());
        }
        let img = self.exec.images.image(reference)?;
        self.report.images.push(ResolvedImage {
            reference: reference.to_string(),
            digest: img.descriptor.digest().to_string(),
        });
        Ok(())
    }

    fn variant_view(
        &self,
        variant: &str,
    ) -> Result<crate::builder::layers::view::LayerStackView, BuildError> {
        let stages = self.exec.stages.borrow();
        let st = stages
            .get(variant)
            .ok_or_else(|| BuildError::UnknownStage(variant.to_string()))?;
        Ok(st.view())
    }

    /// What a command step needs before it can start: its mount images and variants,
    /// a user the runner can run as, and (for shell lines) a shell.
    fn check_command(
        &mut self,
        st: &StageState,
        ctx: &RunContext,
        needs_shell: bool,
    ) -> Result<(), DryRunProblem> {
        for m in &ctx.mounts {
            match &m.from {
                MountSource::Image(r) => self.resolve(r)?,
                MountSource::Variant(v) => {
                    if !self.exec.stages.borrow().contains_key(v) {
                        return Err(BuildError::UnknownStage(v.clone()).into());
                    }
                }
                MountSource::Local => {
                    self.exec.context()?;
                }
            }
        }
        let view = st.view();
        let (uid, gid) = crate::builder::execute::steps::resolve_user(&view, &ctx.user);
        self.exec.runner.check_user(uid, gid)?;
        // A command or copy before that would run may install the shell.
        if needs_shell && !self.files_pending && !has_file(&view, Path::new("/bin/sh")) {
            return Err(DryRunProblem::NoShell);
        }
        Ok(())
    }

    /// A command step: cached when its key (the executor's) is in the cache.
    fn run_step(
        &mut self,
        st: &mut StageState,
        known: &mut Known,
        instr: &Instruction,
        ctx: &RunContext,
    ) -> Result<DryStatus, DryRunProblem> {
        let mounts_known = ctx.mounts.iter().all(|m| match &m.from {
            MountSource::Variant(v) => self.complete.contains(v),
            MountSource::Image(_) | MountSource::Local => true,
        });
        if *known == Known::Stale || !mounts_known {
            *known = Known::Stale;
            return Ok(DryStatus::WouldRun);
        }
        let key = self.exec.run_key(st, instr, ctx)?;
        Ok(self.lookup(st, known, key)?)
    }

    /// A step whose key needs nothing but the instruction (fixed files).
    fn keyed_step(
        &mut self,
        st: &mut StageState,
        known: &mut Known,
        instr: &Instruction,
        inputs: &[&[u8]],
    ) -> Result<DryStatus, DryRunProblem> {
        if *known == Known::Stale {
            return Ok(DryStatus::WouldRun);
        }
        let key = CacheKey::derive(Some(&st.key), &instruction_json(instr), inputs);
        Ok(self.lookup(st, known, key)?)
    }

    /// A copy: its sources must exist (the executor's copy code says so); cached when
    /// the key of what it would write is in the cache.
    fn copy_step(
        &mut self,
        st: &mut StageState,
        known: &mut Known,
        instr: &Instruction,
        src: &dyn ImageView,
        req: &CopyRequest<'_>,
        from: &str,
    ) -> Result<DryStatus, DryRunProblem> {
        let view = st.view();
        let mut set = EntrySet::new(&view, self.exec.settings.epoch);
        copy_into(&mut set, src, req).map_err(|cause| DryRunProblem::Copy {
            cause,
            from: from.to_string(),
        })?;
        if *known == Known::Stale {
            self.files_pending = true;
            return Ok(DryStatus::WouldRun);
        }
        let entries = set.into_entries();
        let digest = entries_digest(
            &entries,
            &mut self.exec.stats.borrow_mut(),
            self.exec.settings.epoch,
        )
        .map_err(BuildError::from)?;
        let status = self.keyed_step(st, known, instr, &[digest.as_bytes()])?;
        self.files_pending |= status == DryStatus::WouldRun;
        Ok(status)
    }

    fn lookup(
        &mut self,
        st: &mut StageState,
        known: &mut Known,
        key: CacheKey,
    ) -> Result<DryStatus, BuildError> {
        match self.exec.lookup(&key) {
            Some(rec) => {
                self.exec.reuse(st, key, rec)?;
                Ok(DryStatus::Cached)
            }
            None => {
                *known = Known::Stale;
                Ok(DryStatus::WouldRun)
            }
        }
    }
}
