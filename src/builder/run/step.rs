//! Run, RunAll and RunScript steps: their cache keys (instruction and mounted
//! contents), the environment, native user creation, and commands in the sandbox on
//! the stage's layers, whose captured tree may become the new layer's directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::plan::{CacheAccess, Instruction, MountSource, Plan, RunContext};
use crate::store::CacheDir;

use crate::builder::copy::{copy_into, CopyRequest, Owner};
use crate::builder::events::StepStatus;
use crate::builder::execute::steps::{keep_existing_owners, resolve_user};
use crate::builder::execute::{instruction_json, Executor, StageState};
use crate::builder::imageconfig::{env_pairs, set_env, DEFAULT_PATH};
use crate::builder::layers::adopt::StepWrites;
use crate::builder::layers::cache::{entries_digest, CacheKey};
use crate::builder::layers::entries::EntrySet;
use crate::builder::layers::view::{image_relative, EmptyView, ImageView, LayerStackView};
use crate::builder::run::mounts::{cache_dir, materialize};
use crate::builder::run::runner::{StepMount, StepRequest};
use crate::builder::users::{parse_user_step, user_entries, UserStep};
use crate::builder::{io_err, BuildError};

impl Executor<'_> {
    /// The environment of an exec: base image Env, platform variables, the plan's build
    /// environment, proxy variables; PATH defaulted like BuildKit.
    fn exec_env(&self, plan: &Plan, st: &StageState, ctx: &RunContext) -> Vec<(String, String)> {
        let mut env = env_pairs(&st.base_env());
        for v in plan
            .platform_env
            .iter()
            .chain(&ctx.env)
            .chain(&plan.proxy_env)
        {
            set_env(&mut env, &v.name, v.value.clone());
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
        }
        env
    }

    /// Cache-key inputs of a step's mounts: what each mounted filesystem is.
    fn mount_inputs(&self, ctx: &RunContext) -> Result<Vec<String>, BuildError> {
        let mut out = Vec::new();
        for m in &ctx.mounts {
            out.push(match &m.from {
                MountSource::Variant(v) => {
                    let stages = self.stages.borrow();
                    let st = stages
                        .get(v)
                        .ok_or_else(|| BuildError::UnknownStage(v.clone()))?;
                    format!("variant:{}", st.key.as_str())
                }
                MountSource::Image(r) => {
                    format!("image:{}", self.images.image(r)?.descriptor.digest())
                }
                MountSource::Local => {
                    let ctx = self.context()?;
                    let mut set = EntrySet::new(&EmptyView, 0);
                    copy_into(
                        &mut set,
                        ctx,
                        &CopyRequest {
                            sources: &[".".to_string()],
                            source_base: Path::new("/"),
                            destination: "/",
                            workdir: Path::new("/"),
                            owner: Owner::Keep,
                            exclude: &[],
                        },
                    )
                    .map_err(|e| BuildError::Image {
                        reference: "local".into(),
                        detail: e.to_string(),
                    })?;
                    let d = entries_digest(
                        &set.into_entries(),
                        &mut self.stats.borrow_mut(),
                        self.settings.epoch,
                    )?;
                    format!("local:{d}")
                }
            });
        }
        Ok(out)
    }

    /// The cache key of a Run step: the parent key, the instruction and the contents of
    /// its mounts.
    pub(crate) fn run_key(
        &self,
        st: &StageState,
        instr: &Instruction,
        ctx: &RunContext,
    ) -> Result<CacheKey, BuildError> {
        let inputs = self.mount_inputs(ctx)?;
        let input_refs: Vec<&[u8]> = inputs.iter().map(|s| s.as_bytes()).collect();
        Ok(CacheKey::derive(
            Some(&st.key),
            &instruction_json(instr),
            &input_refs,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_shell(
        &self,
        plan: &Plan,
        st: &mut StageState,
        index: usize,
        instr: &Instruction,
        text: &str,
        effective: &str,
        ctx: &RunContext,
    ) -> Result<StepStatus, BuildError> {
        let key = self.run_key(st, instr, ctx)?;
        if let Some(step) = native_user_step(effective, ctx) {
            let epoch = self.settings.epoch;
            return self.layer_step(st, key, text, |st| {
                user_entries(&st.view(), &[step.account], &step.owned_dirs, epoch)
                    .map(StepWrites::from)
                    .map_err(|source| BuildError::Users {
                        variant: st.variant.clone(),
                        source,
                    })
            });
        }
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            effective.to_string(),
        ];
        self.layer_step(st, key, text, |st| {
            self.exec(plan, st, index, text, ctx, argv, Vec::new())
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_script(
        &self,
        plan: &Plan,
        st: &mut StageState,
        index: usize,
        instr: &Instruction,
        text: &str,
        script: &str,
        sha256: &str,
        ctx: &RunContext,
    ) -> Result<StepStatus, BuildError> {
        let key = self.run_key(st, instr, ctx)?;
        self.layer_step(st, key, text, |st| {
            let dir = self.scratch_dir("script-")?;
            let file = dir.join("script");
            fs::write(&file, script).map_err(io_err(&file))?;
            fs::set_permissions(&file, fs::Permissions::from_mode(0o555)).map_err(io_err(&file))?;
            let mount = StepMount::Bind {
                src: dir,
                dst: PathBuf::from(format!("/{sha256}")),
                readonly: true,
            };
            let argv = vec![format!("/{sha256}/script")];
            self.exec(plan, st, index, text, ctx, argv, vec![mount])
        })
    }

    /// Runs a command in the sandbox on the stage's layers and returns its writes (and
    /// the overlay upper directory they were captured from, when adoptable).
    #[allow(clippy::too_many_arguments)]
    fn exec(
        &self,
        plan: &Plan,
        st: &StageState,
        index: usize,
        text: &str,
        ctx: &RunContext,
        argv: Vec<String>,
        mut mounts: Vec<StepMount>,
    ) -> Result<StepWrites, BuildError> {
        let view = st.view();
        let (uid, gid) = resolve_user(&view, &ctx.user);
        let state_dir = self.scratch_dir("step-")?;
        let workdir = PathBuf::from(&ctx.workdir);
        let in_sandbox = |p: &str| -> PathBuf {
            let joined = workdir.join(p);
            Path::new("/").join(image_relative(&joined))
        };
        let mut locks = Vec::new();
        for (i, m) in ctx.mounts.iter().enumerate() {
            let src_view: Box<dyn ImageView> = match &m.from {
                MountSource::Variant(v) => {
                    let stages = self.stages.borrow();
                    let s = stages
                        .get(v)
                        .ok_or_else(|| BuildError::UnknownStage(v.clone()))?;
                    Box::new(s.view())
                }
                MountSource::Image(r) => {
                    let img = self.images.image(r)?;
                    let layers = self.unpack_image(&img)?;
                    Box::new(LayerStackView::new(
                        layers.into_iter().map(|l| l.dir).collect(),
                    ))
                }
                MountSource::Local => Box::new(self.context()?.clone()),
            };
            let host = state_dir.join(format!("mount-{i}"));
            let from = Path::new("/").join(m.source.as_deref().unwrap_or("/"));
            materialize(src_view.as_ref(), &from, &host)?;
            mounts.push(StepMount::Bind {
                src: host,
                dst: in_sandbox(&m.destination),
                readonly: false,
            });
        }
        for (i, c) in ctx.caches.iter().enumerate() {
            let src = match c.access {
                CacheAccess::Private => {
                    let p = state_dir.join(format!("cache-{i}"));
                    fs::create_dir_all(&p).map_err(io_err(&p))?;
                    p
                }
                CacheAccess::Shared | CacheAccess::Locked => {
                    cache_dir(&self.store.cache_dir(CacheDir::Mounts), &c.id, c.owner)?
                }
            };
            if c.access == CacheAccess::Locked {
                let lock_path = src.with_extension("lock");
                let f = fs::File::create(&lock_path).map_err(io_err(&lock_path))?;
                fs2::FileExt::lock_exclusive(&f).map_err(io_err(&lock_path))?;
                locks.push(f);
            }
            mounts.push(StepMount::Cache {
                src,
                dst: in_sandbox(&c.destination),
            });
        }
        let req = StepRequest {
            argv,
            env: self.exec_env(plan, st, ctx),
            cwd: workdir.clone(),
            uid,
            gid,
            groups: Vec::new(),
            lowers: view.layers().to_vec(),
            state_dir: state_dir.join("overlay"),
            mounts,
            network: self.settings.network,
            capture: true,
        };
        let outcome = self.runner.run(&req)?;
        drop(locks);
        if outcome.exit_code != 0 {
            return Err(BuildError::StepFailed {
                variant: st.variant.clone(),
                index,
                step: text.lines().next().unwrap_or_default().to_string(),
                code: outcome.exit_code,
                hint: self.runner.failure_hint(&req, outcome.exit_code),
            });
        }
        let mut entries = outcome.entries;
        if outcome.owners_assumed {
            keep_existing_owners(&view, &mut entries);
        }
        Ok(StepWrites {
            entries,
            tree: outcome.tree,
        })
    }
}

/// The user-creation step that `effective` is, when the executor writes it natively
/// (as tar entries) instead of running it: a root step without mounts or caches whose
/// command is Blubber's getent/groupadd/useradd line.
pub(crate) fn native_user_step(effective: &str, ctx: &RunContext) -> Option<UserStep> {
    if ctx.user == "0" && ctx.mounts.is_empty() && ctx.caches.is_empty() {
        parse_user_step(effective)
    } else {
        None
    }
}
