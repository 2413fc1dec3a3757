//! The one walk over a compiled plan: stages dependencies first, each stage's
//! instructions in order, each instruction handed to a [`StepVisitor`] as the kind of
//! step it is. The executor ([`crate::builder::execute`]) and the dry run
//! ([`crate::builder::dryrun`], which is also a build's preflight) are the two visitors.
//!
//! Data flow: [`walk`] keeps the state of the stage being built ([`StageState`]: its
//! layers and cache key) and the stages finished before it ([`Stages`]); instructions
//! that only change the image config advance the cache key here; every other one goes
//! to the visitor's method for its kind. What the visitors share — images, the build
//! context, cache keys, the layers in the store — is a [`Session`].

mod session;

pub use session::{step_key, RunKind, Session, SourcesError};

use std::path::Path;
use std::time::{Duration, Instant};

use crate::plan::{dockerfile, CopySource, CopySpec, Instruction, Plan, RunContext, Stage};

use super::copy::{CopyRequest, Owner};
use super::events::StepStatus;
use super::layers::stage::{StageState, Stages};
use super::users::{native_user_step, UserStep};

/// Where the walk is: the instruction, its stage and plan, and the stages built before.
pub struct StepAt<'w> {
    /// The plan.
    pub plan: &'w Plan,
    /// The stage the instruction belongs to.
    pub stage: &'w Stage,
    /// 1-based index of the instruction within its stage.
    pub index: usize,
    /// The instruction.
    pub instruction: &'w Instruction,
    /// Its Dockerfile rendering (the history's `created_by`).
    pub text: String,
    /// The stages finished before this one.
    pub done: &'w Stages,
}

impl StepAt<'_> {
    /// The first line of the instruction's rendering, for messages.
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }
}

/// A command a Run step runs in the sandbox.
#[derive(Debug, Clone, Copy)]
pub enum Command<'p> {
    /// A shell line, run with `/bin/sh -c`.
    Shell(&'p str),
    /// A script mounted at `/<sha256>/script` and run directly.
    Script {
        /// The script text.
        script: &'p str,
        /// Its sha256 (the mount directory).
        sha256: &'p str,
    },
}

/// Where a copy's sources are.
#[derive(Debug, Clone, Copy)]
pub enum CopyFrom<'p> {
    /// The build context.
    Context,
    /// The filesystem of a variant built before.
    Variant(&'p str),
    /// An image (from the store, or pulled).
    Image(&'p str),
}

/// A copy step.
#[derive(Debug, Clone, Copy)]
pub struct CopyStep<'p> {
    /// Where the sources are.
    pub from: CopyFrom<'p>,
    /// What to copy where.
    pub spec: &'p CopySpec,
    /// The directory relative sources are in (variants and images; `/` by default).
    pub source_workdir: Option<&'p str>,
}

impl<'p> CopyStep<'p> {
    /// A copy of `spec` from `from`, relative sources in `source_workdir`.
    pub fn new(from: CopyFrom<'p>, spec: &'p CopySpec, source_workdir: Option<&'p str>) -> Self {
        Self {
            from,
            spec,
            source_workdir,
        }
    }

    /// The copy code's request for this step: sources relative to the context root or
    /// the source's working directory, owned by the `--chown` user, else root for the
    /// build context and the source's own owners for variants and images.
    pub fn request(&self) -> CopyRequest<'_> {
        let (base, default_owner) = match self.from {
            CopyFrom::Context => (Path::new("/"), Owner::Root),
            CopyFrom::Variant(_) | CopyFrom::Image(_) => {
                (Path::new(self.source_workdir.unwrap_or("/")), Owner::Keep)
            }
        };
        let spec = self.spec;
        CopyRequest {
            sources: &spec.sources,
            source_base: base,
            destination: &spec.destination,
            workdir: Path::new(&spec.workdir),
            owner: spec
                .chown
                .as_ref()
                .map(|o| Owner::Chown(o.uid, o.gid))
                .unwrap_or(default_owner),
            exclude: &spec.exclude,
        }
    }
}

/// A Run step that runs a command in the sandbox.
#[derive(Debug, Clone, Copy)]
pub struct RunStep<'p> {
    /// The command.
    pub command: Command<'p>,
    /// Its user, working directory, environment, mounts and caches.
    pub ctx: &'p RunContext,
}

/// A Run step that is Blubber's user-creation line, written natively.
#[derive(Debug, Clone)]
pub struct UsersStep<'p> {
    /// The account and directories it creates.
    pub users: UserStep,
    /// The Run step's context (its mounts are part of the cache key).
    pub ctx: &'p RunContext,
}

/// A file with fixed content, written as a layer.
#[derive(Debug, Clone, Copy)]
pub struct FixedFile<'p> {
    /// Absolute path in the image.
    pub path: &'p str,
    /// The content.
    pub content: &'p str,
    /// The file mode.
    pub mode: u32,
}

/// How a visitor handled a step.
pub type Visit<E> = Result<StepStatus, E>;

/// What a walk does with each kind of step. Every method gets the stage's state so far
/// and returns how the step was handled; [`StepStatus::Ran`] means "ran" to the
/// executor and "would run" to the dry run.
pub trait StepVisitor {
    /// Why a step fails.
    type Error;

    /// A stage starts.
    fn stage_started(&mut self, _stage: &Stage) {}

    /// The stage's base image (`None`: scratch).
    fn base(&mut self, at: &StepAt, st: &mut StageState, image: Option<&str>)
        -> Visit<Self::Error>;

    /// A Run step that is Blubber's user-creation line.
    fn users(&mut self, at: &StepAt, st: &mut StageState, step: UsersStep) -> Visit<Self::Error>;

    /// A Run step that runs a command in the sandbox.
    fn command(&mut self, at: &StepAt, st: &mut StageState, run: RunStep) -> Visit<Self::Error>;

    /// A copy from the build context, a variant or an image.
    fn copy(&mut self, at: &StepAt, st: &mut StageState, copy: CopyStep) -> Visit<Self::Error>;

    /// A file with fixed content.
    fn file(&mut self, at: &StepAt, st: &mut StageState, file: FixedFile) -> Visit<Self::Error>;

    /// A step finished (after `elapsed`) with `status`.
    fn step_finished(&mut self, _at: &StepAt, _status: StepStatus, _elapsed: Duration) {}

    /// A stage finished; `st` is its final state.
    fn stage_finished(&mut self, _st: &StageState) {}
}

/// Walks `plan`'s stages (dependencies first) and their instructions (in order) through
/// `visitor`; returns the finished stages.
pub fn walk<V: StepVisitor>(plan: &Plan, visitor: &mut V) -> Result<Stages, V::Error> {
    let mut done = Stages::default();
    for stage in &plan.stages {
        visitor.stage_started(stage);
        let mut st = StageState::new(&stage.variant);
        for (i, step) in stage.steps.iter().enumerate() {
            let started = Instant::now();
            let at = StepAt {
                plan,
                stage,
                index: i + 1,
                instruction: &step.instruction,
                text: dockerfile::render_instruction(&step.instruction),
                done: &done,
            };
            let status = visit(visitor, &at, &mut st)?;
            visitor.step_finished(&at, status, started.elapsed());
        }
        visitor.stage_finished(&st);
        done.insert(st);
    }
    Ok(done)
}

/// Hands one instruction to the visitor's method for its kind.
fn visit<V: StepVisitor>(visitor: &mut V, at: &StepAt, st: &mut StageState) -> Visit<V::Error> {
    let run = |command, ctx| RunStep { command, ctx };
    match at.instruction {
        Instruction::Base { image, .. } => visitor.base(at, st, image.as_deref()),
        Instruction::Run {
            effective,
            context: ctx,
            ..
        }
        | Instruction::RunAll {
            effective,
            context: ctx,
            ..
        } => match native_user_step(effective, ctx) {
            Some(users) => visitor.users(at, st, UsersStep { users, ctx }),
            None => visitor.command(at, st, run(Command::Shell(effective), ctx)),
        },
        Instruction::RunScript {
            script,
            sha256,
            context: ctx,
        } => visitor.command(at, st, run(Command::Script { script, sha256 }, ctx)),
        Instruction::Copy(spec) => {
            visitor.copy(at, st, CopyStep::new(CopyFrom::Context, spec, None))
        }
        Instruction::CopyFrom {
            from,
            source_workdir,
            copy,
        } => {
            let from = match from {
                CopySource::Variant(v) => CopyFrom::Variant(v),
                CopySource::Image(r) => CopyFrom::Image(r),
            };
            let workdir = source_workdir.as_deref();
            visitor.copy(at, st, CopyStep::new(from, copy, workdir))
        }
        Instruction::File {
            path,
            content,
            mode,
        } => {
            let mode = *mode;
            visitor.file(
                at,
                st,
                FixedFile {
                    path,
                    content,
                    mode,
                },
            )
        }
        Instruction::Arg { .. }
        | Instruction::Env { .. }
        | Instruction::User { .. }
        | Instruction::WorkingDirectory { .. }
        | Instruction::EntryPoint { .. }
        | Instruction::Label { .. } => {
            st.key = step_key(st, at.instruction, &[]);
            Ok(StepStatus::Applied)
        }
    }
}
