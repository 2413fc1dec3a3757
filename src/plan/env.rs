//! Helpers for the build executor: the full environment of an exec and the final image
//! `Env`, layered over a base image's `KEY=VALUE` list the way BuildKit layers them.

use super::instruction::{CopySource, EnvVar, Instruction, MountSource, RunContext};
use super::{ImageConfig, Plan};

/// `base` with each of `over` applied in order: a variable of the same name is replaced
/// in place, a new one is appended.
pub fn layer_env(base: &[String], over: &[EnvVar]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for var in over {
        let entry = format!("{}={}", var.name, var.value);
        let prefix = format!("{}=", var.name);
        match out
            .iter_mut()
            .find(|e| e.starts_with(&prefix) || **e == var.name)
        {
            Some(existing) => *existing = entry,
            None => out.push(entry),
        }
    }
    out
}

impl ImageConfig {
    /// The image `Env` of the stage, given its base image's `Env` (empty for scratch).
    pub fn env_over(&self, base_env: &[String]) -> Vec<String> {
        layer_env(base_env, &self.env)
    }
}

impl RunContext {
    /// The environment of the exec, given the stage's base image `Env`: base, then the
    /// platform variables, then the variables the plan set, then the proxy variables.
    pub fn exec_env(&self, base_env: &[String], plan: &Plan) -> Vec<String> {
        let env = layer_env(base_env, &plan.platform_env);
        let env = layer_env(&env, &self.env);
        layer_env(&env, &plan.proxy_env)
    }
}

impl Plan {
    /// Image references the build needs besides its own stages, in first-use order:
    /// stage bases, images copied from and images mounted.
    pub fn images(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if !out.iter().any(|o| o == name) {
                out.push(name.to_string());
            }
        };
        for stage in &self.stages {
            if let Some(base) = &stage.base {
                add(base);
            }
            for step in &stage.steps {
                match &step.instruction {
                    Instruction::CopyFrom {
                        from: CopySource::Image(image),
                        ..
                    } => add(image),
                    Instruction::Run { context, .. }
                    | Instruction::RunAll { context, .. }
                    | Instruction::RunScript { context, .. } => {
                        for mount in &context.mounts {
                            if let MountSource::Image(image) = &mount.from {
                                add(image);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_replaces_in_place_and_appends() {
        let base = vec!["PATH=/usr/bin".to_string(), "LANG=C".to_string()];
        let over = [
            EnvVar::new("HOME", "/root"),
            EnvVar::new("PATH", "/venv/bin:/usr/bin"),
            EnvVar::new("HOME", "/home/runuser"),
        ];
        assert_eq!(
            layer_env(&base, &over),
            ["PATH=/venv/bin:/usr/bin", "LANG=C", "HOME=/home/runuser"]
        );
    }
}
