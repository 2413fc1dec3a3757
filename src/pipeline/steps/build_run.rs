//! The build and run steps.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_yaml::Value;

use crate::builder::images::PullPolicy;

use super::super::error::StepError;
use super::super::exec::{rand8, BuildRequest, RunRequest};
use super::super::interp::Scope;
use super::super::model::{normalise_copy, Stage};
use super::super::output::StageLog;
use super::{
    clean_join, credential, strings, text, write_temp, yaml, IgnoreSwap, StageCtx, StepResult,
};

pub(super) fn step_build(
    ctx: &StageCtx,
    stage: &Stage,
    build: &Value,
    scope: &mut Scope,
    log: &StageLog,
) -> StepResult<String> {
    let (id, local) = build_image(ctx, stage, build, scope, log)?;
    let local = if ctx.opts.push_builds {
        let variant = text(&scope.interpolate(build)?["variant"]);
        push_build(ctx, &local, &variant, &id, log)?
    } else {
        local
    };
    scope.bind("imageID", Value::String(id.clone()))?;
    scope.bind("imageLocalName", Value::String(local))?;
    Ok(id)
}

/// Builds the image `build` (`{variant, context, excludes?, imagePullPolicy}`)
/// describes, once per identical build in the run; returns its ID and local name.
pub(super) fn build_image(
    ctx: &StageCtx,
    stage: &Stage,
    build: &Value,
    scope: &Scope,
    log: &StageLog,
) -> StepResult<(String, String)> {
    let pipeline_dir = ctx.opts.project_dir.join(".pipeline");
    let (blubberfile, temp) = resolve_blubberfile(ctx, stage, scope, log, &pipeline_dir)?;
    let b = scope.interpolate(build)?;
    let variant = text(&b["variant"]);
    let context = text(&b["context"]);
    let excludes = b
        .get("excludes")
        .map(strings)
        .transpose()?
        .unwrap_or_default();
    let pull = pull_policy(&b["imagePullPolicy"])?;
    if context.contains("://") {
        if !excludes.is_empty() {
            return Err(StepError::Failed(format!(
                "excludes cannot be used with a URL context ({context})"
            )));
        }
        return Err(StepError::Failed(format!(
            "URL build contexts are not supported by flense ({context})"
        )));
    }
    let context_dir = clean_join(&ctx.opts.project_dir, &[&ctx.pipeline.directory, &context]);
    let _swap = swap_ignore_file(&context_dir, &pipeline_dir, &excludes)?;
    // Identical builds in one run are built once: the key holds the file's digest (a file
    // that cannot be read, or is not UTF-8, fails in the build itself, naming it).
    let content = std::fs::read(&blubberfile)
        .map(|bytes| crate::image::digest::sha256_digest(&bytes))
        .unwrap_or_default();
    let labels = image_labels(scope);
    let key = format!(
        "{content}\0{variant}\0{}\0{}\0{pull:?}\0{}\0{labels:?}",
        context_dir.display(),
        excludes.join("\n"),
        ctx.shared.workspace_generation.load(Ordering::SeqCst)
    );
    let req = BuildRequest {
        blubberfile,
        variant,
        context: context_dir,
        pull,
        labels,
        local_name: format!("localhost/plib-image-{}", rand8()),
    };
    let (result, built_here) = build_once(ctx, key, &req, log);
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
    Ok((id, local))
}

/// `build.imagePullPolicy`: `Always`, `IfNotPresent` or `Never` (any case); `None` when
/// unset or empty.
pub(super) fn pull_policy(value: &Value) -> StepResult<Option<PullPolicy>> {
    let value = text(value);
    if value.is_empty() {
        return Ok(None);
    }
    PullPolicy::from_pipeline(&value).map(Some).ok_or_else(|| {
        StepError::Failed(format!(
            "build.imagePullPolicy '{value}': expected Always, IfNotPresent or Never"
        ))
    })
}

/// Pushes a built image for the jobs of later stages; returns the pushed reference
/// (the same image content always gets the same reference).
fn push_build(
    ctx: &StageCtx,
    local: &str,
    variant: &str,
    id: &str,
    log: &StageLog,
) -> StepResult<String> {
    let registry = ctx
        .opts
        .registry
        .as_deref()
        .ok_or("sharing built images needs a registry: pass --registry HOST[:PORT][/REPOSITORY]")?
        .trim_end_matches('/');
    let project = super::sanitise_name(&ctx.opts.setup.project);
    let pushed = format!(
        "{registry}/{project}-{}:sha256-{id}",
        super::sanitise_name(variant)
    );
    ctx.exec.push(local, &pushed, log)?;
    log.line(&format!("later stages pull this image as {pushed}"));
    Ok(pushed)
}

/// The stage's (or the pipeline's) Blubber file: a path under `.pipeline/`, or an
/// inline map written to a temp file there (returned second, for removal).
fn resolve_blubberfile(
    ctx: &StageCtx,
    stage: &Stage,
    scope: &Scope,
    log: &StageLog,
    pipeline_dir: &Path,
) -> StepResult<(PathBuf, Option<PathBuf>)> {
    let bf = stage
        .blubberfile
        .as_ref()
        .unwrap_or(&ctx.pipeline.blubberfile);
    let bf = scope.interpolate(bf)?;
    match &bf {
        Value::String(rel) => {
            let p = pipeline_dir.join(rel);
            if !p.is_file() {
                return Err(StepError::Failed(format!(
                    "failed to build image: no Blubber config found at {}",
                    p.display()
                )));
            }
            Ok((p, None))
        }
        Value::Mapping(_) => {
            let body = serde_yaml::to_string(&bf)?;
            log.line(&format!("inline blubberfile, resolved: {}", yaml(&bf)));
            let p = write_temp(pipeline_dir, "blubber.yaml.", &body)?;
            Ok((p.clone(), Some(p)))
        }
        other => Err(StepError::Failed(format!(
            "blubberfile must be a path or a map, found {}",
            super::super::schema::describe(other)
        ))),
    }
}

/// With `excludes`, replaces `<context>/.dockerignore` by them until the returned guard
/// is dropped (the original is kept aside in `.pipeline/`).
fn swap_ignore_file(
    context_dir: &Path,
    pipeline_dir: &Path,
    excludes: &[String],
) -> StepResult<Option<IgnoreSwap>> {
    if excludes.is_empty() {
        return Ok(None);
    }
    let target = context_dir.join(".dockerignore");
    let backup = if target.exists() {
        let b = pipeline_dir.join(format!("dockerignore.bak.{}", rand8()));
        std::fs::rename(&target, &b).map_err(StepError::io_at(&target))?;
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
    .map_err(StepError::io_at(&target))?;
    Ok(Some(swap))
}

/// Builds `req` unless a build with the same `key` already ran (or runs) in this
/// pipeline run; returns the image ID or the error, and whether this call built it.
fn build_once(
    ctx: &StageCtx,
    key: String,
    req: &BuildRequest,
    log: &StageLog,
) -> (StepResult<String>, bool) {
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
            let r = ctx.exec.build(req, log);
            if let Ok(id) = &r {
                ctx.shared
                    .images
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), req.local_name.clone());
            }
            r.map_err(Arc::new)
        })
        .clone()
        .map_err(StepError::Shared);
    (result, built_here)
}

pub(super) fn step_run(
    ctx: &StageCtx,
    run: &Value,
    stage: &Stage,
    scope: &mut Scope,
    log: &StageLog,
) -> StepResult<()> {
    let mut m = run.as_mapping().cloned().unwrap_or_default();
    let credentials = m.remove("credentials").unwrap_or(Value::Null);
    let tail = m.remove("tail").and_then(|t| t.as_u64()).unwrap_or(0) as usize;
    let r = scope.interpolate(&Value::Mapping(m))?;
    let image_id = text(&r["image"]);
    let image = super::image_for(ctx, &image_id, log)?.ok_or_else(|| {
        format!("run.image '{image_id}' is not a local image ID (the hex digest of an image built in this run or in the store)")
    })?;
    let arguments = strings(r.get("arguments").unwrap_or(&Value::Null))?;
    let mut env = Vec::new();
    if let Some(map) = r.get("env").and_then(Value::as_mapping) {
        for (k, v) in map {
            let (value, missing) = super::super::interp::expand_env(&text(v), &ctx.opts.env_vars);
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
        let (id, name) = credential(c);
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
    scope.bind("container", Value::String(container.clone()))?;
    let (capture, capture_dir) = plan_captures(ctx, stage, scope, &container, log);
    let services = match &stage.services {
        Some(services) => super::services::resolve(ctx, stage, services, scope, log)?,
        None => Vec::new(),
    };
    let req = RunRequest {
        image,
        arguments,
        env,
        container,
        tail,
        capture,
        capture_dir,
        services,
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
    scope.bind("output", Value::String(output))?;
    if outcome.exit_code != 0 {
        return Err(StepError::Failed(format!(
            "the container exited with code {}",
            outcome.exit_code
        )));
    }
    Ok(())
}

/// The copy sources of this stage's own container, saved when its program exits (the
/// container is not kept): the stage's own copy items from `${.container}`, and the items
/// of later stages that copy from `${<this stage>.container}` with a literal source.
/// Items that cannot be resolved yet are left to the copy step.
fn plan_captures(
    ctx: &StageCtx,
    stage: &Stage,
    scope: &Scope,
    container: &str,
    log: &StageLog,
) -> (Vec<String>, Option<PathBuf>) {
    let own = stage.copy.as_ref().map(|copy| {
        scope
            .interpolate(copy)
            .map_err(|e| e.to_string())
            .and_then(|v| normalise_copy(&v))
            .and_then(|items| {
                items
                    .into_iter()
                    .map(|i| {
                        scope
                            .interpolate(&Value::Mapping(i))
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
    });
    let mut sources: Vec<String> = match own {
        Some(Ok(items)) => items
            .iter()
            .filter(|i| text(&i["from"]) == container)
            .map(|i| text(&i["source"]))
            .collect(),
        Some(Err(_)) | None => Vec::new(),
    };
    for source in later_copies_from(ctx, &stage.name) {
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    if sources.is_empty() {
        return (Vec::new(), None);
    }
    match ctx.shared.capture_dir(container, &sources) {
        Ok(dir) => (sources, Some(dir)),
        Err(e) => {
            log.line(&format!(
                "warning: cannot prepare the copy of {container}: {e}"
            ));
            (Vec::new(), None)
        }
    }
}

/// Literal sources that other stages of the pipeline copy from `${<stage>.container}`.
fn later_copies_from(ctx: &StageCtx, stage: &str) -> Vec<String> {
    let reference = format!("${{{stage}.container}}");
    let mut out = Vec::new();
    for other in ctx.pipeline.stages.iter().filter(|s| s.name != stage) {
        let Some(Ok(items)) = other.copy.as_ref().map(normalise_copy) else {
            continue;
        };
        for item in items {
            let from = text(item.get("from").unwrap_or(&Value::Null));
            let source = text(item.get("source").unwrap_or(&Value::Null));
            if from.replace(' ', "") == reference && !source.contains("${") {
                out.push(source);
            }
        }
    }
    out
}

/// `${setup.imageLabels}` as label pairs (PipelineLib passes them to `docker build
/// --label`); none when the setup stage is not visible.
fn image_labels(scope: &Scope) -> Vec<(String, String)> {
    let Ok(Some(Value::Mapping(m))) = scope.lookup("setup.imageLabels") else {
        return Vec::new();
    };
    let mut labels: Vec<(String, String)> = m.iter().map(|(k, v)| (text(k), text(v))).collect();
    labels.sort();
    labels
}
