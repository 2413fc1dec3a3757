//! `flense run --service NAME=VARIANT|IMAGE` and its per-service options, turned into
//! the [`Services`] a run starts beside its command.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use clap::Args;

use super::{invalid, Globals};
use flense::builder::images::PullingImages;
use flense::builder::stage::ImageSource as _;
use flense::run::{ServiceSpec, Services};

/// Options of `flense run` that start services beside the command.
#[derive(Args, Debug, Clone, Default)]
pub struct ServiceArgs {
    /// Run a service beside the command, in a private network shared with it where NAME
    /// resolves to it: NAME=VARIANT (with a VARIANT to run: a variant of the same Blubber
    /// config, built when needed) or NAME=IMAGE (repeatable; started in this order).
    #[arg(long = "service", value_name = "NAME=VARIANT|IMAGE")]
    pub services: Vec<String>,
    /// A service's ready check, NAME='CMD ARGS' (shell words): run inside the service
    /// until it exits 0 before the next service or the command starts.
    #[arg(long = "service-ready", value_name = "NAME=CMD")]
    pub service_ready: Vec<String>,
    /// How long a service's ready check may keep failing, NAME=SECS (default 60).
    #[arg(long = "service-timeout", value_name = "NAME=SECS")]
    pub service_timeouts: Vec<String>,
    /// A variable of a service, NAME=K=V (repeatable).
    #[arg(long = "service-env", value_name = "NAME=K=V")]
    pub service_env: Vec<String>,
    /// An argument appended to a service's entrypoint, NAME=ARG (repeatable, in order).
    #[arg(long = "service-arg", value_name = "NAME=ARG")]
    pub service_args: Vec<String>,
    /// Write each service's output to PREFIX<NAME>.log.
    #[arg(long = "service-logs", value_name = "PREFIX")]
    pub service_logs: Option<PathBuf>,
    /// Label of the live service output: `[LABEL/NAME] line` (default `[NAME] line`).
    #[arg(long = "service-label", value_name = "LABEL")]
    pub service_label: Option<String>,
}

impl ServiceArgs {
    /// The services, each image resolved by `image_of` (which builds variants).
    pub fn resolve(
        &self,
        mut image_of: impl FnMut(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<Services> {
        let mut specs: Vec<ServiceSpec> = Vec::new();
        for s in &self.services {
            let (name, target) = split_named("--service", s)?;
            if !valid_name(name) {
                return Err(invalid(anyhow!(
                    "--service {s}: `{name}` is not a host name ([A-Za-z0-9-], not starting with -)"
                )));
            }
            if specs.iter().any(|sp| sp.name == name) {
                return Err(invalid(anyhow!("--service {s}: `{name}` is given twice")));
            }
            specs.push(ServiceSpec::new(name, image_of(target)?));
        }
        let find = |option: &str, value: &str| -> anyhow::Result<(usize, String)> {
            let (name, rest) = split_named(option, value)?;
            let index = specs
                .iter()
                .position(|sp| sp.name == name)
                .ok_or_else(|| invalid(anyhow!("{option} {value}: no --service named `{name}`")))?;
            Ok((index, rest.to_string()))
        };
        let mut updates: Vec<(usize, Update)> = Vec::new();
        for v in &self.service_ready {
            let (i, cmd) = find("--service-ready", v)?;
            let words = shlex::split(&cmd)
                .filter(|w| !w.is_empty())
                .ok_or_else(|| invalid(anyhow!("--service-ready {v}: expected a command")))?;
            updates.push((i, Update::Ready(words)));
        }
        for v in &self.service_timeouts {
            let (i, secs) = find("--service-timeout", v)?;
            match secs.parse::<f64>() {
                Ok(t) if t.is_finite() && t > 0.0 => {
                    updates.push((i, Update::Timeout(Duration::from_secs_f64(t))))
                }
                _ => {
                    return Err(invalid(anyhow!(
                        "--service-timeout {v}: expected seconds > 0"
                    )))
                }
            }
        }
        for v in &self.service_env {
            let (i, kv) = find("--service-env", v)?;
            match kv.split_once('=') {
                Some((k, val)) if !k.is_empty() => {
                    updates.push((i, Update::Env(k.to_string(), val.to_string())))
                }
                _ => return Err(invalid(anyhow!("--service-env {v}: expected NAME=K=V"))),
            }
        }
        for v in &self.service_args {
            let (i, arg) = find("--service-arg", v)?;
            updates.push((i, Update::Arg(arg)));
        }
        for (i, update) in updates {
            let spec = &mut specs[i];
            match update {
                Update::Ready(words) => spec.ready = Some(words),
                Update::Timeout(t) => spec.timeout = t,
                Update::Env(k, v) => spec.env.push((k, v)),
                Update::Arg(a) => spec.args.push(a),
            }
        }
        Ok(Services {
            specs,
            log_prefix: self.service_logs.clone(),
            label: self.service_label.clone(),
        })
    }
}

enum Update {
    Ready(Vec<String>),
    Timeout(Duration),
    Env(String, String),
    Arg(String),
}

fn split_named<'a>(option: &str, value: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    match value.split_once('=') {
        Some((name, rest)) if !name.is_empty() && !rest.is_empty() => Ok((name, rest)),
        _ => Err(invalid(anyhow!("{option} {value:?}: expected NAME=VALUE"))),
    }
}

/// Makes every service image available in `store` as `flense run --pull` says
/// (pulled from its registry when missing, again under `always`, never under `never`).
pub fn pull_images(
    store: &flense::store::Store,
    services: &Services,
    build: &super::build::RunBuildArgs,
) -> anyhow::Result<()> {
    if services.specs.is_empty() {
        return Ok(());
    }
    let settings = flense::registry::RegistrySettings::load(build.registries_config.as_deref())
        .map_err(invalid)?;
    let client =
        flense::registry::Client::new(settings, flense::registry::CredentialSource::from_env())?;
    let platform = flense::image::platform::Platform::host().without_variant();
    let images =
        PullingImages::new(store.clone(), client, platform).with_policy(build.project.pull.into());
    for spec in &services.specs {
        images
            .image(&spec.image)
            .with_context(|| format!("service `{}`", spec.name))?;
    }
    Ok(())
}

/// A host name label: letters, digits and `-`, not starting with `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The image of a service target: with `variants` (the run builds a variant of a
/// Blubber config), a name among them is built; anything else is an image reference.
pub fn image_for_target(
    globals: &Globals,
    target: &str,
    variants: Option<(
        &[String],
        &super::build::RunBuildArgs,
        super::build::RunSandbox,
    )>,
) -> anyhow::Result<String> {
    match variants {
        Some((names, build, sandbox)) if names.iter().any(|n| n == target) => {
            super::build::build_for_run(globals, target, build, sandbox)
        }
        _ => Ok(target.to_string()),
    }
}
