//! Building a variant of a project: load the config, resolve the base images (so that
//! Blubber's variable expansion sees their `Env`), compile the plan once, walk it with
//! the preflight ([`super::dryrun`]) and then with the [`Executor`]. Shared by `flense build`
//! and `flense run VARIANT`; `flense build --dry-run` walks only the dry run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{self, ConfigErrors};
use crate::image::platform::Platform;
use crate::plan::{self, CompileOptions, Plan, PlanError};
use crate::store::Store;

use super::dryrun::{dry_run, DryRunError, DryRunReport, Lookups};
use super::events::{BuildEvent, EventSink};
use super::execute::Executor;
use super::layers::remote::SharedCache;
use super::run::runner::StepRunner;
use super::stage::{BuildSettings, BuiltImage, ImageSource};
use super::walk::Session;
use super::BuildError;

/// Errors before anything runs: the config or the plan is invalid (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The config file is invalid; each error is printed with its position.
    #[error("{} is invalid:\n{errors}", file.display())]
    Config {
        /// The config file.
        file: PathBuf,
        /// The errors.
        errors: ConfigErrors,
    },
    /// The variant cannot be compiled.
    #[error("{}", file.display())]
    Plan {
        /// The config file.
        file: PathBuf,
        /// The cause.
        source: PlanError,
    },
    /// The build failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A step would fail before running (the checks of `--dry-run`).
    #[error(transparent)]
    Preflight(Box<DryRunError>),
    /// One platform of a multi-platform build failed.
    #[error("platform {platform}")]
    Platform {
        /// The platform.
        platform: String,
        /// Why its build failed.
        source: Box<ProjectError>,
    },
}

impl ProjectError {
    /// True for errors in the user's input (config, variant, build arguments).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            ProjectError::Config { .. } | ProjectError::Plan { .. } => true,
            ProjectError::Platform { source, .. } => source.is_invalid_input(),
            _ => false,
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct ProjectBuild {
    /// The Blubber config file.
    pub config_file: PathBuf,
    /// The variant.
    pub variant: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// Target platform (`None`: the host's).
    pub platform: Option<Platform>,
    /// Extra labels of the exported image (`--label K=V`, BuildKit's `label:K=V`),
    /// set after the plan's own.
    pub labels: Vec<(String, String)>,
    /// Executor settings (context, cache, network, epoch, format, tag).
    pub settings: BuildSettings,
    /// Shared caches to import steps from and export them to (`--cache-from`,
    /// `--cache-to`).
    pub shared_cache: Option<Arc<SharedCache>>,
}

/// The default config file of a context directory: `.pipeline/blubber.yaml`.
pub fn default_config_file(context: &Path) -> PathBuf {
    context.join(config::DEFAULT_PATH)
}

/// The default tag of a build: `<context directory name>:<variant>`.
pub fn default_tag(context: &Path, variant: &str) -> String {
    let dir = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "flense".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let name = if name.is_empty() { "flense" } else { name };
    format!("{name}:{variant}")
}

fn plan_error(file: &Path, e: PlanError) -> ProjectError {
    match e {
        PlanError::Config(errors) => ProjectError::Config {
            file: file.to_path_buf(),
            errors,
        },
        source => ProjectError::Plan {
            file: file.to_path_buf(),
            source,
        },
    }
}

/// Loads and compiles the variant, resolving base images through `images` first so
/// that the plan expands base-image variables like Blubber does.
pub fn compile_project(req: &ProjectBuild, images: &dyn ImageSource) -> Result<Plan, ProjectError> {
    let file = &req.config_file;
    let config = config::load(file).map_err(|errors| ProjectError::Config {
        file: file.clone(),
        errors,
    })?;
    let mut options = CompileOptions {
        build_args: req.build_args.clone(),
        platform: req.platform.clone(),
        base_env: BTreeMap::new(),
    };
    let bases = plan::base_images(&config, &req.variant).map_err(|e| plan_error(file, e))?;
    for base in bases {
        if options.base_env.contains_key(&base) {
            continue;
        }
        let image = images.image(&base)?;
        let env = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.env().clone())
            .unwrap_or_default();
        options.base_env.insert(base, env);
    }
    let mut plan =
        plan::compile(&config, &req.variant, &options).map_err(|e| plan_error(file, e))?;
    for (name, value) in &req.labels {
        plan.labels.retain(|l| &l.name != name);
        plan.labels.push(plan::EnvVar::new(name, value));
    }
    Ok(plan)
}

/// Compiles and builds a variant into `store`: the preflight (a dry run without cache
/// lookups) fails the build before any step runs when a later step could not start.
pub fn build_project(
    store: &Store,
    runner: &dyn StepRunner,
    images: &dyn ImageSource,
    events: &dyn EventSink,
    req: &ProjectBuild,
) -> Result<BuiltImage, ProjectError> {
    // Held for the whole build: prune and rmi wait rather than delete a blob or layer
    // the build pulled, uses or is about to tag.
    let _hold = store.hold_blobs().map_err(BuildError::from)?;
    if let Err(e) = store.reclaim_leftovers() {
        tracing::warn!("cannot reclaim the leftovers of killed builds: {e}");
    }
    let plan = compile_project(req, images)?;
    let session = Session::new(store, images, req.settings.clone())
        .with_shared_cache(req.shared_cache.clone());
    dry_run(&session, runner, &plan, &req.config_file, Lookups::Off)
        .map_err(|e| ProjectError::Preflight(Box::new(e)))?;
    let built = Executor::new(&session, runner, events).build(&plan)?;
    session.layers().export_shared();
    for message in session.layers().take_cache_warnings() {
        events.event(&BuildEvent::Warning { message });
    }
    Ok(built)
}

/// Compiles `req` and checks every instruction as a build of it would, without running
/// a step or writing a layer (base and source images may be pulled into `store`).
pub fn dry_run_project(
    store: &Store,
    runner: &dyn StepRunner,
    images: &dyn ImageSource,
    req: &ProjectBuild,
) -> Result<DryRunReport, ProjectError> {
    // Held while base images may be pulled, until they are tagged.
    let _hold = store.hold_blobs().map_err(BuildError::from)?;
    let plan = compile_project(req, images)?;
    let session = Session::new(store, images, req.settings.clone())
        .with_shared_cache(req.shared_cache.clone());
    dry_run(&session, runner, &plan, &req.config_file, Lookups::On)
        .map_err(|e| ProjectError::Preflight(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tag_uses_the_directory_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("Node Service");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(default_tag(&dir, "test"), "node-service:test");
    }
}
