//! The steps of one stage, in PipelineLib's fixed order: build -> run -> copy ->
//! publish -> promote -> deploy -> exports -> trigger; notify on failure.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use serde_yaml::{Mapping, Value};

use super::error::StepError;
use super::exec::{rand8, Executor};
use super::interp::{stringify, Namespace, Scope};
use super::model::{Pipeline, Stage};
use super::output::StageLog;
use super::setup::SetupInfo;
use crate::error_chain::ErrorChain;

mod build_run;
mod outputs;
mod services;

use build_run::{step_build, step_run};
pub use outputs::{check_image_name, deep_merge, sanitise_name};
use outputs::{notify, step_copy, step_publish, step_publish_files};

/// Options of a pipeline run that steps need.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The project root (the directory holding `.pipeline/`).
    pub project_dir: PathBuf,
    /// Where stage logs go (`None`: no files).
    pub log_dir: Option<PathBuf>,
    /// How many stages run at once (0 = no limit).
    pub jobs: usize,
    /// Start each stage as soon as its own predecessors finish (instead of frames).
    pub dag: bool,
    /// Registry (and repository) to publish to: `HOST[:PORT][/REPO]`.
    pub registry: Option<String>,
    /// Directory for archived copies and `publish.files`.
    pub artifacts: Option<PathBuf>,
    /// Variables `$NAME`/`${NAME}` in `run.env` values expand from (params and allowed host env).
    pub env_vars: BTreeMap<String, String>,
    /// Host environment variables allowed as `run.credentials` ids: id -> value.
    pub credentials: BTreeMap<String, String>,
    /// The setup bindings.
    pub setup: SetupInfo,
    /// Push each image a build step makes to `registry` (as
    /// `<registry>/<project>-<variant>:sha256-<image ID>`) and bind that reference as
    /// `imageLocalName`, so that jobs on other machines can pull it (`--stage`).
    pub push_builds: bool,
    /// Only one stage runs (`--stage`): earlier stages ran in other CI jobs.
    pub single_stage: bool,
}

/// One build, shared by every stage that asks for the same inputs: the image ID or the error.
type SharedBuild = Arc<OnceLock<Result<String, Arc<StepError>>>>;

/// Where a container's copy sources were saved, and which sources (by index).
type Capture = (Arc<tempfile::TempDir>, Vec<String>);

/// State shared by the stages of one pipeline run.
#[derive(Debug, Default)]
pub struct Shared {
    builds: Mutex<HashMap<String, SharedBuild>>,
    /// image ID -> local name.
    images: Mutex<HashMap<String, String>>,
    /// container name -> image reference it ran.
    containers: Mutex<HashMap<String, String>>,
    /// container name -> (directory, sources) saved when its program exited.
    captures: Mutex<HashMap<String, Capture>>,
    /// Bumped whenever a copy writes into the workspace (build contexts changed).
    workspace_generation: AtomicU64,
    /// image ID -> reference of an image an earlier CI job made (fetched when used).
    earlier: Mutex<HashMap<String, String>>,
}

impl Shared {
    /// The reference to pass to `flense run`/`push` for image ID `id`: the local name of
    /// an image built in this run, else `sha256:<id>` (an image already in the store, as
    /// upstream accepts any local image ID); `None` when `id` is not a hex digest.
    pub fn local_image(&self, id: &str) -> Option<String> {
        let id = id.strip_prefix("sha256:").unwrap_or(id);
        self.image_ref(id).or_else(|| {
            (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| format!("sha256:{id}"))
        })
    }

    /// A fresh directory, writable by any user, for the paths `container` saves on exit.
    pub fn capture_dir(&self, container: &str, sources: &[String]) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("flense-copy-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        let path = dir.path().to_path_buf();
        self.captures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(container.to_string(), (Arc::new(dir), sources.to_vec()));
        Ok(path)
    }

    /// Where `source` of `container` was saved, if it was.
    pub fn captured(&self, container: &str, source: &str) -> Option<PathBuf> {
        let captures = self.captures.lock().unwrap_or_else(|e| e.into_inner());
        let (dir, sources) = captures.get(container)?;
        let i = sources.iter().position(|s| s == source)?;
        let path = dir.path().join(i.to_string());
        path.symlink_metadata().is_ok().then_some(path)
    }

    /// Records that image `id` was made by an earlier job (`flense pipeline --stage`)
    /// and is found at `reference`: in this store or in a registry.
    pub fn add_earlier_image(&self, id: &str, reference: &str) {
        let id = id.strip_prefix("sha256:").unwrap_or(id);
        self.earlier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), reference.to_string());
    }

    /// The local reference to use for image ID `id`.
    pub fn image_ref(&self, id: &str) -> Option<String> {
        self.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

/// Everything a stage needs besides its own config and scope.
pub struct StageCtx<'a> {
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// Run options.
    pub opts: &'a RunOptions,
    /// Who does the work.
    pub exec: &'a dyn Executor,
    /// Shared per-run state.
    pub shared: &'a Shared,
}

/// How a stage ended, with its bindings.
#[derive(Debug)]
pub struct StageOutcome {
    /// The stage's namespace after its steps.
    pub namespace: Namespace,
    /// Why a step failed, if one did.
    pub result: Result<(), StepError>,
    /// The image built or published, for the summary.
    pub image: Option<String>,
}

type StepResult<T> = Result<T, StepError>;

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => stringify(other),
    }
}

fn strings(v: &Value) -> StepResult<Vec<String>> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Sequence(xs) => Ok(xs.iter().map(text).collect()),
        other => Err(StepError::Failed(format!(
            "expected a list, found {}",
            super::schema::describe(other)
        ))),
    }
}

/// A `run.credentials` item: the credential's ID and the variable it is passed as
/// (`name`, the ID when empty).
pub fn credential(item: &Value) -> (String, String) {
    let id = text(&item["id"]);
    let name = item
        .get("name")
        .map(text)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.clone());
    (id, name)
}

/// The reference to run or push image `id` by: [`Shared::local_image`], after fetching
/// it into the store when an earlier job made it; `None` when `id` is not an image ID.
fn image_for(ctx: &StageCtx, id: &str, log: &StageLog) -> StepResult<Option<String>> {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    if ctx.shared.image_ref(hex).is_none() {
        let earlier = ctx
            .shared
            .earlier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hex)
            .cloned();
        if let Some(reference) = earlier {
            ctx.exec.fetch(&reference, log)?;
            ctx.shared
                .images
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(hex.to_string(), reference);
        }
    }
    Ok(ctx.shared.local_image(id))
}

fn yaml(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Runs every step of `stage` in `scope`; never panics, failures end up in the outcome.
pub fn run_stage(ctx: &StageCtx, stage: &Stage, mut scope: Scope, log: &StageLog) -> StageOutcome {
    let mut image = None;
    let workdir = clean_join(&ctx.opts.project_dir, &[&ctx.pipeline.directory]);
    log.line(&format!(
        "running steps in {} with config: {}",
        workdir.display(),
        describe_stage(stage)
    ));
    let result = steps(ctx, stage, &mut scope, log, &mut image);
    if let Err(e) = &result {
        log.line(&format!("error: {}", ErrorChain(e)));
        notify(ctx, stage, &scope, log);
    } else {
        let exported: Vec<String> = scope
            .own()
            .iter()
            .map(|(k, v)| format!("{k}: {}", text(v)))
            .collect();
        log.line(&format!(
            "stage {} completed. exported: [{}]",
            stage.name,
            exported.join(", ")
        ));
    }
    StageOutcome {
        namespace: scope.own().clone(),
        result,
        image,
    }
}

fn describe_stage(stage: &Stage) -> String {
    let mut m = Mapping::new();
    let mut put = |k: &str, v: &Option<Value>| {
        if let Some(v) = v {
            m.insert(Value::String(k.into()), v.clone());
        }
    };
    put("blubberfile", &stage.blubberfile);
    put("build", &stage.build);
    put("run", &stage.run);
    put("copy", &stage.copy);
    put("publish.image", &stage.publish_image);
    put("publish.files", &stage.publish_files);
    put("promote", &stage.promote);
    put("deploy", &stage.deploy);
    put("exports", &stage.exports.clone().map(Value::Mapping));
    put("trigger", &stage.trigger);
    yaml(&Value::Mapping(m))
}

fn err<E: Into<StepError>>(step: &'static str) -> impl Fn(E) -> StepError {
    move |e| StepError::in_step(step, e)
}

fn steps(
    ctx: &StageCtx,
    stage: &Stage,
    scope: &mut Scope,
    log: &StageLog,
    image: &mut Option<String>,
) -> StepResult<()> {
    scope
        .bind("stage", Value::String(stage.name.clone()))
        .map_err(err("setup"))?;
    if let Some(build) = &stage.build {
        log.line(&format!("step: build, config: {}", yaml(build)));
        let id = step_build(ctx, stage, build, scope, log).map_err(err("build"))?;
        *image = Some(format!("sha256:{id}"));
    }
    if let Some(run) = &stage.run {
        log.line(&format!("step: run, config: {}", yaml(run)));
        step_run(ctx, run, stage, scope, log).map_err(err("run"))?;
    }
    if let Some(copy) = &stage.copy {
        log.line(&format!("step: copy, config: {}", yaml(copy)));
        step_copy(ctx, copy, scope, log).map_err(err("copy"))?;
    }
    if let Some(p) = &stage.publish_image {
        log.line(&format!("step: publish, config: {}", yaml(p)));
        *image = Some(step_publish(ctx, p, scope, log).map_err(err("publish"))?);
    }
    if let Some(files) = &stage.publish_files {
        log.line(&format!("step: publish files, config: {}", yaml(files)));
        step_publish_files(ctx, files, scope, log).map_err(err("publish"))?;
    }
    if let Some(promote) = &stage.promote {
        let resolved = scope.interpolate(promote).map_err(err("promote"))?;
        log.line(&format!(
            "step: promote, config: {} (not run outside Wikimedia CI)",
            yaml(&resolved)
        ));
    }
    if let Some(deploy) = &stage.deploy {
        let mut d = deploy.as_mapping().cloned().unwrap_or_default();
        for key in ["chart", "image", "tag", "timeout", "overrides"] {
            if let Some(v) = d.get(key).cloned() {
                d.insert(
                    Value::String(key.into()),
                    scope.interpolate(&v).map_err(err("deploy"))?,
                );
            }
        }
        log.line(&format!(
            "step: deploy, config: {} (not run outside Wikimedia CI)",
            yaml(&Value::Mapping(d))
        ));
        scope
            .bind("releaseName", Value::String(rand8()))
            .map_err(err("deploy"))?;
    }
    if let Some(exports) = &stage.exports {
        log.line(&format!(
            "step: exports, config: {}",
            yaml(&Value::Mapping(exports.clone()))
        ));
        for (k, v) in exports {
            let value = scope.interpolate(v).map_err(err("exports"))?;
            scope.bind(&text(k), value).map_err(err("exports"))?;
        }
    }
    if let Some(trigger) = &stage.trigger {
        let mut t = trigger.as_mapping().cloned().unwrap_or_default();
        if let Some(p) = t.get("parameters").cloned() {
            t.insert(
                Value::String("parameters".into()),
                scope.interpolate(&p).map_err(err("trigger"))?,
            );
        }
        log.line(&format!(
            "step: trigger, config: {} (not run outside Wikimedia CI)",
            yaml(&Value::Mapping(t))
        ));
    }
    Ok(())
}

fn write_temp(dir: &Path, prefix: &str, content: &str) -> StepResult<PathBuf> {
    std::fs::create_dir_all(dir).map_err(StepError::io_at(dir))?;
    let path = dir.join(format!("{prefix}{}", rand8()));
    std::fs::write(&path, content).map_err(StepError::io_at(&path))?;
    Ok(path)
}

/// Restores (or removes) `<context>/.dockerignore` when dropped.
struct IgnoreSwap {
    target: PathBuf,
    backup: Option<PathBuf>,
}

impl Drop for IgnoreSwap {
    fn drop(&mut self) {
        match &self.backup {
            Some(b) => {
                let _ = std::fs::rename(b, &self.target);
            }
            None => {
                let _ = std::fs::remove_file(&self.target);
            }
        }
    }
}

/// Joins relative parts onto `base`, dropping `.` components (for readable paths).
pub fn clean_join(base: &Path, parts: &[&str]) -> PathBuf {
    let mut out = base.to_path_buf();
    for part in parts {
        for c in Path::new(part).components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.push("..");
                }
                other => out.push(other),
            }
        }
    }
    out
}
