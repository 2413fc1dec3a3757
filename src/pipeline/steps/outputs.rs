//! The copy and publish steps, artifacts, publish naming rules and failure notifications.

use std::path::Path;
use std::sync::atomic::Ordering;

use serde_yaml::Value;

use super::super::error::StepError;
use super::super::exec::{sanitise_relative, CopyRequest};
use super::super::interp::{is_falsy, Scope};
use super::super::model::{normalise_copy, Stage};
use super::super::output::StageLog;
use super::{clean_join, strings, text, StageCtx, StepResult};

pub(super) fn step_copy(
    ctx: &StageCtx,
    copy: &Value,
    scope: &mut Scope,
    log: &StageLog,
) -> StepResult<()> {
    let value = scope.interpolate(copy)?;
    let workdir = clean_join(&ctx.opts.project_dir, &[&ctx.pipeline.directory]);
    let mut urls = Vec::new();
    for item in normalise_copy(&value)? {
        let item = scope.interpolate(&Value::Mapping(item))?;
        let container = text(&item["from"]);
        let image = ctx
            .shared
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&container)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "no container '{container}' ran in this pipeline run{}",
                    if ctx.opts.single_stage {
                        " (with --stage, in this job: a copy from another stage's container does not cross CI jobs)"
                    } else {
                        ""
                    }
                )
            })?;
        let dest_rel = sanitise_relative(&text(&item["destination"]));
        let destination = workdir.join(&dest_rel);
        let source = text(&item["source"]);
        match ctx.shared.captured(&container, &source) {
            Some(saved) => {
                log.line(&format!(
                    "copying {container}:{source} to {}",
                    destination.display()
                ));
                copy_tree(&saved, &destination)?;
            }
            None => ctx.exec.copy(
                &CopyRequest {
                    container,
                    image,
                    source,
                    destination: destination.clone(),
                },
                log,
            )?,
        }
        ctx.shared
            .workspace_generation
            .fetch_add(1, Ordering::SeqCst);
        if item["archive"] == Value::Bool(true) {
            urls.push(archive(ctx, &destination, &dest_rel, log)?);
        } else {
            urls.push(String::new());
        }
    }
    scope.bind("artifactURLs", Value::String(urls.join("\n")))?;
    Ok(())
}

fn artifacts_dir<'a>(ctx: &StageCtx<'a>) -> StepResult<&'a Path> {
    ctx.opts
        .artifacts
        .as_deref()
        .ok_or_else(|| "archiving needs an artifacts directory: pass --artifacts DIR".into())
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
        std::fs::create_dir_all(parent).map_err(StepError::io_at(parent))?;
    }
    if path.is_dir() {
        let file = std::fs::File::create(&target).map_err(StepError::io_at(&target))?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all(".", path)
            .map_err(StepError::io_at(path))?;
        tar.into_inner()
            .and_then(|gz| gz.finish())
            .map_err(StepError::io_at(&target))?;
    } else {
        std::fs::copy(path, &target).map_err(StepError::io_at(path))?;
    }
    log.line(&format!(
        "archived {} as {}",
        path.display(),
        target.display()
    ));
    Ok(format!("file://{}", target.display()))
}

pub(super) fn step_publish_files(
    ctx: &StageCtx,
    files: &Value,
    scope: &mut Scope,
    log: &StageLog,
) -> StepResult<()> {
    let f = scope.interpolate(files)?;
    let workdir = clean_join(&ctx.opts.project_dir, &[&ctx.pipeline.directory]);
    let mut urls = Vec::new();
    for p in strings(f.get("paths").unwrap_or(&Value::Null))? {
        let rel = sanitise_relative(&p);
        let src = workdir.join(&rel);
        if !src.exists() {
            return Err(StepError::Failed(format!(
                "publish.files: {} does not exist",
                src.display()
            )));
        }
        urls.push(archive(ctx, &src, &rel, log)?);
    }
    scope.bind("publishedFiles", Value::String(urls.join("\n")))?;
    Ok(())
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
        Err(StepError::Failed(format!(
            "the published image name (`{name}`) must either match or be prefixed by the full or short project name (`{p}` or `{sp}`)"
        )))
    }
}

pub(super) fn step_publish(
    ctx: &StageCtx,
    publish: &Value,
    scope: &mut Scope,
    log: &StageLog,
) -> StepResult<String> {
    let p = scope.interpolate(publish)?;
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
    let local = super::image_for(ctx, &id, log)?.ok_or_else(|| {
        format!("publish.image.id '{id}' is not a local image ID (the hex digest of an image built in this run or in the store)")
    })?;
    for tag in &tags {
        ctx.exec.push(&local, &format!("{full}:{tag}"), log)?;
    }
    let bind = |scope: &mut Scope, k: &str, v: Value| scope.bind(k, v);
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

pub(super) fn notify(ctx: &StageCtx, stage: &Stage, scope: &Scope, log: &StageLog) {
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

/// Copies a file, symlink or directory tree (merging into an existing directory).
fn copy_tree(src: &Path, dst: &Path) -> StepResult<()> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(StepError::io_at(parent))?;
    }
    for entry in walkdir::WalkDir::new(src).follow_links(false) {
        // walkdir's message already names the path and the I/O error.
        let entry = entry.map_err(|e| StepError::Failed(e.to_string()))?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .map_err(|e| StepError::Failed(e.to_string()))?;
        let target = if rel.as_os_str().is_empty() {
            dst.to_path_buf()
        } else {
            dst.join(rel)
        };
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(StepError::io_at(&target))?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(StepError::io_at(entry.path()))?;
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(link, &target).map_err(StepError::io_at(&target))?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(StepError::io_at(entry.path()))?;
        }
    }
    Ok(())
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
        assert_eq!(e.to_string(), "the published image name (`some-other-repo-name`) must either match or be prefixed by the full or short project name (`repo1` or `repo1`)");
        assert_eq!(sanitise_name("Foo/Bar"), "foo-bar");
    }
}
