//! The state of one stage while it is compiled: the build environment, user and
//! working directory, and the image config, updated as each instruction is emitted so
//! that every instruction can carry its effective values.

use std::collections::BTreeMap;

use super::expand::{expand, Unknown};
use super::instruction::{
    ArgDefault, Cache, CopySource, CopySpec, EnvVar, Instruction, Mount, Owner, Phase, RunContext,
    Step,
};
use super::{ImageConfig, PlanError};
use crate::image::oci::DEFAULT_PATH;

/// A stage being compiled.
pub(crate) struct StageState<'a> {
    /// The variant name.
    pub variant: String,
    /// The phase whose instructions are being emitted.
    pub phase: Phase,
    /// `--build-arg` values.
    build_args: &'a BTreeMap<String, String>,
    /// Variables of the base image, when known.
    base_env: Option<Vec<EnvVar>>,
    /// `BUILDPLATFORM` and friends.
    platform_env: &'a [EnvVar],
    /// Variables the plan has set, in order.
    env: Vec<EnvVar>,
    /// The effective user (bare UID string).
    user: String,
    /// The effective working directory.
    workdir: String,
    /// Emitted steps.
    pub steps: Vec<Step>,
    /// Image config changes.
    pub image: ImageConfig,
    /// Declared build arguments and their effective values.
    pub build_args_declared: Vec<EnvVar>,
    /// Variants read through copies, requirements or mounts, in first-use order.
    pub depends_on: Vec<String>,
}

impl<'a> StageState<'a> {
    /// A fresh stage; `base_env` is the base image `Env` (`KEY=VALUE` strings) when known.
    pub fn new(
        variant: &str,
        scratch: bool,
        build_args: &'a BTreeMap<String, String>,
        base_env: Option<&Vec<String>>,
        platform_env: &'a [EnvVar],
    ) -> Self {
        let base_env = if scratch {
            Some(vec![EnvVar::new("PATH", DEFAULT_PATH)])
        } else {
            base_env.map(|list| {
                list.iter()
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => EnvVar::new(k, v),
                        None => EnvVar::new(kv.as_str(), ""),
                    })
                    .collect()
            })
        };
        let image_env = if scratch {
            vec![EnvVar::new("PATH", DEFAULT_PATH)]
        } else {
            Vec::new()
        };
        StageState {
            variant: variant.to_string(),
            phase: Phase::Privileged,
            build_args,
            base_env,
            platform_env,
            env: Vec::new(),
            user: String::new(),
            workdir: "/".into(),
            steps: Vec::new(),
            image: ImageConfig {
                user: None,
                working_dir: "/".into(),
                entrypoint: None,
                env: image_env,
                labels: Vec::new(),
            },
            build_args_declared: Vec::new(),
            depends_on: Vec::new(),
        }
    }

    /// The value of a build-state variable: plan-set, then platform, then base image.
    fn lookup(&self, name: &str) -> Option<String> {
        let find = |list: &[EnvVar]| {
            list.iter()
                .rev()
                .find(|v| v.name == name)
                .map(|v| v.value.clone())
        };
        find(&self.env)
            .or_else(|| find(self.platform_env))
            .or_else(|| self.base_env.as_deref().and_then(find))
    }

    /// Blubber's expansion (§5.9) against the current build state. Variables that are
    /// unknown become empty when the base image env is known, and stay verbatim otherwise.
    pub fn expand(&self, text: &str) -> String {
        let unknown = if self.base_env.is_some() {
            Unknown::Empty
        } else {
            Unknown::Keep
        };
        expand(text, |name| self.lookup(name), unknown)
    }

    fn set_env(list: &mut Vec<EnvVar>, var: EnvVar) {
        match list.iter_mut().find(|v| v.name == var.name) {
            Some(existing) => existing.value = var.value,
            None => list.push(var),
        }
    }

    fn push(&mut self, instruction: Instruction) {
        self.steps.push(Step {
            phase: self.phase,
            instruction,
        });
    }

    /// Records a variant this stage reads from.
    pub fn depend_on(&mut self, variant: &str) {
        if !self.depends_on.iter().any(|v| v == variant) {
            self.depends_on.push(variant.to_string());
        }
    }

    /// `FROM`.
    pub fn base(&mut self, image: Option<String>) {
        let stage = self.variant.clone();
        self.push(Instruction::Base { image, stage });
    }

    /// `ARG`: binds the `--build-arg` value when given, else the default (unexpanded).
    pub fn arg(&mut self, name: &str, default: ArgDefault) {
        let value = self
            .build_args
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.as_env_value());
        Self::set_env(&mut self.env, EnvVar::new(name, value.clone()));
        Self::set_env(
            &mut self.build_args_declared,
            EnvVar::new(name, value.clone()),
        );
        self.push(Instruction::Arg {
            name: name.to_string(),
            default,
            value,
        });
    }

    /// `ENV` with the definitions in the given order.
    pub fn env(&mut self, definitions: Vec<EnvVar>) {
        let image_values: Vec<EnvVar> = definitions
            .iter()
            .map(|d| EnvVar::new(d.name.clone(), self.expand(&d.value)))
            .collect();
        let mut build_values = Vec::new();
        for d in &definitions {
            let value = EnvVar::new(d.name.clone(), self.expand(&d.value));
            Self::set_env(&mut self.env, value.clone());
            build_values.push(value);
        }
        for v in &image_values {
            Self::set_env(&mut self.image.env, v.clone());
        }
        self.push(Instruction::Env {
            definitions,
            image_values,
            build_values,
        });
    }

    /// `USER`.
    pub fn user(&mut self, name: &str) {
        let uid = self.expand(name);
        self.user = uid.clone();
        self.image.user = Some(uid.clone());
        self.push(Instruction::User {
            name: name.to_string(),
            uid,
        });
    }

    /// `WORKDIR`; a relative path resolves against the current directory.
    pub fn workdir_to(&mut self, path: &str) {
        let expanded = self.expand(path);
        let effective = if expanded.starts_with('/') {
            crate::config::paths::clean(&expanded)
        } else {
            crate::config::paths::clean(&format!("{}/{}", self.workdir, expanded))
        };
        self.workdir = effective.clone();
        self.image.working_dir = effective.clone();
        self.push(Instruction::WorkingDirectory {
            path: path.to_string(),
            effective,
        });
    }

    fn context(&self, mounts: Vec<Mount>, caches: Vec<Cache>) -> RunContext {
        RunContext {
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            env: self.env.clone(),
            mounts,
            caches,
        }
    }

    /// `RUN <line>`.
    pub fn run(&mut self, command: String) {
        self.run_with(command, Vec::new(), Vec::new());
    }

    /// `RUN <line>` with builder mounts and caches.
    pub fn run_with(&mut self, command: String, mounts: Vec<Mount>, caches: Vec<Cache>) {
        let effective = self.expand(&command);
        let context = self.context(mounts, caches);
        self.push(Instruction::Run {
            command,
            effective,
            context,
        });
    }

    /// One `RUN` of several lines joined with ` && `.
    pub fn run_all(&mut self, commands: Vec<String>) {
        let effective = self.expand(&commands.join(" && "));
        let context = self.context(Vec::new(), Vec::new());
        self.push(Instruction::RunAll {
            commands,
            effective,
            context,
        });
    }

    /// A builder script (never expanded).
    pub fn run_script(&mut self, script: String, mounts: Vec<Mount>, caches: Vec<Cache>) {
        let sha256 = crate::image::digest::sha256(script.as_bytes());
        let context = self.context(mounts, caches);
        self.push(Instruction::RunScript {
            script,
            sha256,
            context,
        });
    }

    /// The owner of copies in the current phase: `None` for scratch.
    pub fn owner(&self, user: &str, group: &str) -> Result<Owner, PlanError> {
        let number = |name: &str| -> Result<u32, PlanError> {
            let value = self.expand(name);
            value.parse().map_err(|_| PlanError::NotNumeric {
                variant: self.variant.clone(),
                name: name.trim_start_matches('$').to_string(),
                value,
            })
        };
        Ok(Owner {
            user: user.to_string(),
            group: group.to_string(),
            uid: number(user)?,
            gid: number(group)?,
        })
    }

    /// A copy spec at the current working directory.
    pub fn copy_spec(
        &self,
        sources: Vec<String>,
        destination: String,
        exclude: Vec<String>,
        chown: Option<Owner>,
    ) -> CopySpec {
        CopySpec {
            sources,
            destination,
            exclude,
            chown,
            workdir: self.workdir.clone(),
        }
    }

    /// `COPY` from the build context.
    pub fn copy(&mut self, spec: CopySpec) {
        self.push(Instruction::Copy(spec));
    }

    /// `COPY --from`.
    pub fn copy_from(&mut self, from: CopySource, source_workdir: Option<String>, spec: CopySpec) {
        if let CopySource::Variant(v) = &from {
            self.depend_on(v);
        }
        self.push(Instruction::CopyFrom {
            from,
            source_workdir,
            copy: spec,
        });
    }

    /// A root-owned file with fixed content.
    pub fn file(&mut self, path: &str, content: String, mode: u32) {
        self.push(Instruction::File {
            path: path.to_string(),
            content,
            mode,
        });
    }

    /// `ENTRYPOINT` (clears `Cmd`).
    pub fn entrypoint(&mut self, command: Vec<String>) {
        self.image.entrypoint = Some(command.clone());
        self.push(Instruction::EntryPoint { command });
    }
}
