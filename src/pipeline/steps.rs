//! The steps of one stage, in PipelineLib's fixed order: build -> run -> copy ->
//! publish -> promote -> deploy -> exports -> trigger; notify on failure.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_yaml::{Mapping, Value};

use super::exec::{rand8, sanitise_relative, BuildRequest, CopyRequest, Executor, RunRequest};
use super::interp::{is_falsy, stringify, Namespace, Scope};
use super::model::{normalise_copy, Pipeline, Stage};
use super::output::StageLog;
use super::setup::SetupInfo;

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
}

/// One build, shared by every stage that asks for the same inputs: the image ID or the error.
type SharedBuild = Arc<OnceLock<Result<String, String>>>;

/// State shared by the stages of one pipeline run.
#[derive(Debug, Default)]
pub struct Shared {
    builds: Mutex<HashMap<String, SharedBuild>>,
    /// image ID -> local name.
    images: Mutex<HashMap<String, String>>,
    /// container name -> image reference it ran.
    containers: Mutex<HashMap<String, String>>,
    /// Bumped whenever a copy writes into the workspace (build contexts changed).
    workspace_generation: AtomicU64,
}

impl Shared {
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
    /// `Err(message)` when a step failed.
    pub result: Result<(), String>,
    /// The image built or published, for the summary.
    pub image: Option<String>,
}

type StepResult<T> = Result<T, String>;

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
        other => Err(format!(
            "expected a list, found {}",
            super::schema::describe(other)
        )),
    }
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
    if let Err(msg) = &result {
        log.line(&format!("error: {msg}"));
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

fn err<E: std::fmt::Display>(step: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("step {step}: {e}")
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
        *image = Some(format!("sha256:{}", &id[..12.min(id.len())]));
    }
    if let Some(run) = &stage.run {
        log.line(&format!("step: run, config: {}", yaml(run)));
        step_run(ctx, run, scope, log).map_err(err("run"))?;
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
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{prefix}{}", rand8()));
    std::fs::write(&path, content).map_err(|e| format!("{}: {e}", path.display()))?;
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

fn step_build(
    ctx: &StageCtx,
    stage: &Stage,
    build: &Value,
    scope: &mut Scope,
    log: &StageLog,
) -> StepResult<String> {
    let pipeline_dir = ctx.opts.project_dir.join(".pipeline");
    let bf = stage
        .blubberfile
        .as_ref()
        .unwrap_or(&ctx.pipeline.blubberfile);
    let bf = scope.interpolate(bf).map_err(|e| e.to_string())?;
    let mut temp = None;
    let blubberfile = match &bf {
        Value::String(rel) => {
            let p = pipeline_dir.join(rel);
            if !p.is_file() {
                return Err(format!(
                    "failed to build image: no Blubber config found at {}",
                    p.display()
                ));
            }
            p
        }
        Value::Mapping(_) => {
            let body = serde_yaml::to_string(&bf).map_err(|e| e.to_string())?;
            log.line(&format!("inline blubberfile, resolved: {}", yaml(&bf)));
            let p = write_temp(&pipeline_dir, "blubber.yaml.", &body)?;
            temp = Some(p.clone());
            p
        }
        other => {
            return Err(format!(
                "blubberfile must be a path or a map, found {}",
                super::schema::describe(other)
            ))
        }
    };
    let b = scope.interpolate(build).map_err(|e| e.to_string())?;
    let variant = text(&b["variant"]);
    let context = text(&b["context"]);
    let excludes = b
        .get("excludes")
        .map(strings)
        .transpose()?
        .unwrap_or_default();
    let pull = text(&b["imagePullPolicy"]) == "always";
    if context.contains("://") {
        if !excludes.is_empty() {
            return Err(format!(
                "excludes cannot be used with a URL context ({context})"
            ));
        }
        return Err(format!(
            "URL build contexts are not supported by flense ({context})"
        ));
    }
    let context_dir = clean_join(&ctx.opts.project_dir, &[&ctx.pipeline.directory, &context]);
    let _swap = if excludes.is_empty() {
        None
    } else {
        let target = context_dir.join(".dockerignore");
        let backup = if target.exists() {
            let b = pipeline_dir.join(format!("dockerignore.bak.{}", rand8()));
            std::fs::rename(&target, &b).map_err(|e| format!("{}: {e}", target.display()))?;
            Some(b)
        } else {
            None
        };
        let swap = IgnoreSwap {
            target: target.clone(),
            backup,
        };
        std::fs::write(
            &target,
            excludes
                .iter()
                .map(|e| format!("{e}\n"))
                .collect::<String>(),
        )
        .map_err(|e| format!("{}: {e}", target.display()))?;
        Some(swap)
    };
    let content = std::fs::read_to_string(&blubberfile).unwrap_or_default();
    let key = format!(
        "{content}\0{variant}\0{}\0{}\0{pull}\0{}",
        context_dir.display(),
        excludes.join("\n"),
        ctx.shared.workspace_generation.load(Ordering::SeqCst)
    );
    let req = BuildRequest {
        blubberfile: blubberfile.clone(),
        variant,
        context: context_dir,
        pull,
        local_name: format!("localhost/plib-image-{}", rand8()),
    };
    let cell = ctx
        .shared
        .builds
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone();
    let mut built_here = false;
    let result = cell
        .get_or_init(|| {
            built_here = true;
            let r = ctx.exec.build(&req, log);
            if let Ok(id) = &r {
                ctx.shared
                    .images
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), req.local_name.clone());
            }
            r
        })
        .clone();
    if let Some(t) = temp {
        let _ = std::fs::remove_file(t);
    }
    let id = result?;
    let local = ctx
        .shared
        .image_ref(&id)
        .unwrap_or_else(|| req.local_name.clone());
    if !built_here {
        log.line(&format!(
            "reusing the image built for an identical build in this run: {local}"
        ));
    }
    scope
        .bind("imageID", Value::String(id.clone()))
        .map_err(|e| e.to_string())?;
    scope
        .bind("imageLocalName", Value::String(local))
        .map_err(|e| e.to_string())?;
    Ok(id)
}

fn step_run(ctx: &StageCtx, run: &Value, scope: &mut Scope, log: &StageLog) -> StepResult<()> {
    let mut m = run.as_mapping().cloned().unwrap_or_default();
    let credentials = m.remove("credentials").unwrap_or(Value::Null);
    let tail = m.remove("tail").and_then(|t| t.as_u64()).unwrap_or(0) as usize;
    let r = scope
        .interpolate(&Value::Mapping(m))
        .map_err(|e| e.to_string())?;
    let image_id = text(&r["image"]);
    let image = ctx.shared.image_ref(&image_id).ok_or_else(|| {
        format!("run.image '{image_id}' is not the ID of an image built in this pipeline run")
    })?;
    let arguments = strings(r.get("arguments").unwrap_or(&Value::Null))?;
    let mut env = Vec::new();
    if let Some(map) = r.get("env").and_then(Value::as_mapping) {
        for (k, v) in map {
            let (value, missing) = super::interp::expand_env(&text(v), &ctx.opts.env_vars);
            for name in missing {
                log.line(&format!(
                    "warning: run.env {}: ${name} is not set (pass --param {name}=... or --env-from-host {name}); expanded to \"\"",
                    text(k)
                ));
            }
            env.push((text(k), value));
        }
    }
    for c in credentials.as_sequence().into_iter().flatten() {
        let id = text(&c["id"]);
        let name = c
            .get("name")
            .map(text)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.clone());
        let value = ctx.opts.credentials.get(&id).ok_or_else(|| {
            format!(
                "Invalid Credential: '{id}'. Allowed credentials: [{}] (allow one with --env-from-host {id})",
                ctx.opts.credentials.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        env.push((name, value.clone()));
    }
    let container = format!("plib-run-{}", rand8());
    ctx.shared
        .containers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(container.clone(), image.clone());
    scope
        .bind("container", Value::String(container.clone()))
        .map_err(|e| e.to_string())?;
    let req = RunRequest {
        image,
        arguments,
        env,
        container,
        tail,
    };
    let outcome = ctx.exec.run(&req, log)?;
    let output = if tail == 0 {
        String::new()
    } else {
        outcome
            .stdout_tail
            .iter()
            .map(|l| format!("{l}\n"))
            .collect()
    };
    scope
        .bind("output", Value::String(output))
        .map_err(|e| e.to_string())?;
    if outcome.exit_code != 0 {
        return Err(format!(
            "the container exited with code {}",
            outcome.exit_code
        ));
    }
    Ok(())
}

fn step_copy(ctx: &StageCtx, copy: &Value, scope: &mut Scope, log: &StageLog) -> StepResult<()> {
    let value = scope.interpolate(copy).map_err(|e| e.to_string())?;
    let workdir = clean_join(&ctx.opts.project_dir, &[&ctx.pipeline.directory]);
    let mut urls = Vec::new();
    for item in normalise_copy(&value)? {
        let item = scope
            .interpolate(&Value::Mapping(item))
            .map_err(|e| e.to_string())?;
        let container = text(&item["from"]);
        let image = ctx
            .shared
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&container)
            .cloned()
            .ok_or_else(|| format!("no container '{container}' ran in this pipeline run"))?;
        let dest_rel = sanitise_relative(&text(&item["destination"]));
        let destination = workdir.join(&dest_rel);
        ctx.exec.copy(
            &CopyRequest {
                container,
                image,
                source: text(&item["source"]),
                destination: destination.clone(),
            },
            log,
        )?;
        ctx.shared
            .workspace_generation
            .fetch_add(1, Ordering::SeqCst);
        if item["archive"] == Value::Bool(true) {
            urls.push(archive(ctx, &destination, &dest_rel, log)?);
        } else {
            urls.push(String::new());
        }
    }
    scope
        .bind("artifactURLs", Value::String(urls.join("\n")))
        .map_err(|e| e.to_string())
}

fn artifacts_dir<'a>(ctx: &StageCtx<'a>) -> StepResult<&'a Path> {
    ctx.opts
        .artifacts
        .as_deref()
        .ok_or_else(|| "archiving needs an artifacts directory: pass --artifacts DIR".to_string())
}

/// Copies a workspace file into the artifacts directory (a directory as `<dest>.tar.gz`);
/// returns its `file://` URL.
fn archive(ctx: &StageCtx, path: &Path, rel: &str, log: &StageLog) -> StepResult<String> {
    let dir = artifacts_dir(ctx)?;
    let target = if path.is_dir() {
        dir.join(format!("{rel}.tar.gz"))
    } else {
        dir.join(rel)
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    if path.is_dir() {
        let file =
            std::fs::File::create(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all(".", path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        tar.into_inner()
            .and_then(|gz| gz.finish())
            .map_err(|e| format!("{}: {e}", target.display()))?;
    } else {
        std::fs::copy(path, &target).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    log.line(&format!(
        "archived {} as {}",
        path.display(),
        target.display()
    ));
    Ok(format!("file://{}", target.display()))
}

fn step_publish_files(
    ctx: &StageCtx,
    files: &Value,
    scope: &mut Scope,
    log: &StageLog,
) -> StepResult<()> {
    let f = scope.interpolate(files).map_err(|e| e.to_string())?;
    let workdir = clean_join(&ctx.opts.project_dir, &[&ctx.pipeline.directory]);
    let mut urls = Vec::new();
    for p in strings(f.get("paths").unwrap_or(&Value::Null))? {
        let rel = sanitise_relative(&p);
        let src = workdir.join(&rel);
        if !src.exists() {
            return Err(format!("publish.files: {} does not exist", src.display()));
        }
        urls.push(archive(ctx, &src, &rel, log)?);
    }
    scope
        .bind("publishedFiles", Value::String(urls.join("\n")))
        .map_err(|e| e.to_string())
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

/// Lower-case and `/` -> `-` (image names and tags).
pub fn sanitise_name(s: &str) -> String {
    s.to_lowercase().replace('/', "-")
}

/// The project-prefix rule for published names.
pub fn check_image_name(name: &str, project: &str, short: &str) -> StepResult<()> {
    let (p, sp) = (sanitise_name(project), sanitise_name(short));
    let ok = [&p, &sp]
        .iter()
        .any(|pre| name == pre.as_str() || name.starts_with(&format!("{pre}-")));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the published image name (`{name}`) must either match or be prefixed by the full or short project name (`{p}` or `{sp}`)"
        ))
    }
}

fn step_publish(
    ctx: &StageCtx,
    publish: &Value,
    scope: &mut Scope,
    log: &StageLog,
) -> StepResult<String> {
    let p = scope.interpolate(publish).map_err(|e| e.to_string())?;
    let id = text(&p["id"]);
    let name = sanitise_name(&text(&p["name"]));
    check_image_name(
        &name,
        &ctx.opts.setup.project,
        &ctx.opts.setup.project_short_name,
    )?;
    let primary = text(&p["tag"]);
    let mut tags = vec![sanitise_name(&primary)];
    tags.extend(
        strings(p.get("tags").unwrap_or(&Value::Null))?
            .iter()
            .map(|t| sanitise_name(t)),
    );
    tags.retain(|t| !t.is_empty());
    let registry = ctx
        .opts
        .registry
        .as_deref()
        .ok_or("publishing needs a registry: pass --registry HOST[:PORT][/REPOSITORY]")?
        .trim_end_matches('/');
    let full = format!("{registry}/{name}");
    let local = ctx.shared.image_ref(&id).ok_or_else(|| {
        format!("publish.image.id '{id}' is not the ID of an image built in this pipeline run")
    })?;
    for tag in &tags {
        ctx.exec.push(&local, &format!("{full}:{tag}"), log)?;
    }
    let bind = |scope: &mut Scope, k: &str, v: Value| scope.bind(k, v).map_err(|e| e.to_string());
    bind(scope, "imageName", Value::String(name))?;
    bind(scope, "imageFullName", Value::String(full.clone()))?;
    bind(scope, "imageTag", Value::String(primary.clone()))?;
    bind(
        scope,
        "imageTags",
        Value::Sequence(tags.iter().cloned().map(Value::String).collect()),
    )?;
    let published = format!("{full}:{primary}");
    bind(scope, "publishedImage", Value::String(published.clone()))?;
    Ok(published)
}

fn notify(ctx: &StageCtx, stage: &Stage, scope: &Scope, log: &StageLog) {
    let merged = deep_merge(
        &ctx.pipeline.notify,
        stage.notify.as_ref().unwrap_or(&Value::Null),
    );
    let Some(email) = merged.get("email").filter(|e| !is_falsy(e)) else {
        return;
    };
    let mut e = email.as_mapping().cloned().unwrap_or_default();
    if let Some(Value::String(to)) = e.get("to").cloned() {
        e.insert(
            Value::String("to".into()),
            Value::Sequence(vec![Value::String(to)]),
        );
    }
    let defaults = [
        ("subject", "[Pipeline] ${setup.projectShortName} ${setup.pipeline}/${.stage} failed"),
        ("body", "Pipeline ${setup.pipeline} for project ${setup.project} failed during\nstage ${.stage}. See the log for details: ${setup.logURL}"),
    ];
    for (k, d) in defaults {
        if e.get(k).is_none_or(is_falsy) {
            e.insert(Value::String(k.into()), Value::String(d.into()));
        }
    }
    match scope.interpolate(&Value::Mapping(e)) {
        Ok(v) => log.line(&format!(
            "notify: email to {} subject {:?} (not sent outside Wikimedia CI)",
            strings(&v["to"]).unwrap_or_default().join(","),
            text(&v["subject"])
        )),
        Err(err) => log.line(&format!("notify: {err}")),
    }
}

/// Deep merge of maps (nested maps merge, anything else: `b` wins).
pub fn deep_merge(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            let mut out = x.clone();
            for (k, v) in y {
                let merged = match out.get(k) {
                    Some(old) => deep_merge(old, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Mapping(out)
        }
        (_, Value::Null) => a.clone(),
        _ => b.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn deep_merge_nested() {
        let got = deep_merge(
            &y("{foo: {bar: {baz: cat, qux: dog}}}"),
            &y("{foo: {bar: {qux: [goat, boat]}}, tree: rocketship}"),
        );
        assert_eq!(
            got,
            y("{foo: {bar: {baz: cat, qux: [goat, boat]}}, tree: rocketship}")
        );
    }

    #[test]
    fn image_name_rule() {
        assert!(check_image_name(
            "mediawiki-services-mathoid",
            "mediawiki/services/mathoid",
            "mathoid"
        )
        .is_ok());
        assert!(check_image_name("mathoid-extra", "mediawiki/services/mathoid", "mathoid").is_ok());
        let e = check_image_name("some-other-repo-name", "repo1", "repo1").unwrap_err();
        assert_eq!(e, "the published image name (`some-other-repo-name`) must either match or be prefixed by the full or short project name (`repo1` or `repo1`)");
        assert_eq!(sanitise_name("Foo/Bar"), "foo-bar");
    }
}
