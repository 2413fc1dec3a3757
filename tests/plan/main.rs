//! `flense plan --json`: the compiled instructions and their effective values, checked
//! against every rendered-instruction expectation of the Blubber examples
//! (`fixtures/plan/examples`, copied from the spec's EXPECTATIONS.md set).

#[path = "../support/mod.rs"]
mod support;

mod builders;
mod corpus;
mod derived;
mod environment;
mod languages;
mod repo;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::{flense, ok_stdout, output};

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plan")
}

/// `flense plan VARIANT -f fixtures/plan/FILE --json [ARGS...]`, parsed.
pub(crate) fn plan(file: &str, variant: &str, extra: &[&str]) -> Value {
    let root = tempfile::tempdir().unwrap();
    let text = ok_stdout(
        flense(root.path())
            .arg("plan")
            .arg(variant)
            .arg("-f")
            .arg(fixtures().join(file))
            .arg("--json")
            .args(extra),
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"))
}

pub(crate) fn example(path: &str, variant: &str) -> Value {
    plan(&format!("examples/{path}.blubber.yaml"), variant, &[])
}

pub(crate) fn stage<'a>(plan: &'a Value, variant: &str) -> &'a Value {
    plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["variant"] == variant)
        .unwrap_or_else(|| panic!("no stage {variant} in {plan:#}"))
}

pub(crate) fn target(plan: &Value) -> &Value {
    plan["stages"].as_array().unwrap().last().unwrap()
}

pub(crate) fn steps<'a>(stage: &'a Value, kind: &str) -> Vec<&'a Value> {
    stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

/// Every executed shell line of a stage (Run and RunAll), expanded.
pub(crate) fn effective_runs(stage: &Value) -> Vec<String> {
    stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "run" || s["kind"] == "run-all")
        .map(|s| s["effective"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn run_step<'a>(stage: &'a Value, effective: &str) -> &'a Value {
    stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["effective"] == effective)
        .unwrap_or_else(|| {
            panic!(
                "no run {effective:?}; runs are {:#?}",
                effective_runs(stage)
            )
        })
}

/// `NAME=VALUE` pairs of a list of `{name, value}` objects.
pub(crate) fn pairs(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{}={}",
                v["name"].as_str().unwrap(),
                v["value"].as_str().unwrap()
            )
        })
        .collect()
}

pub(crate) fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn copies(stage: &Value) -> Vec<&Value> {
    stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "copy" || s["kind"] == "copy-from")
        .collect()
}

pub(crate) fn owner(copy: &Value) -> Option<(u64, u64)> {
    let chown = &copy["chown"];
    (!chown.is_null()).then(|| {
        (
            chown["uid"].as_u64().unwrap(),
            chown["gid"].as_u64().unwrap(),
        )
    })
}

// ---- CLI ------------------------------------------------------------------------------

#[test]
fn text_plan_shows_effective_commands() {
    let root = tempfile::tempdir().unwrap();
    let text = ok_stdout(
        flense(root.path())
            .arg("plan")
            .arg("make")
            .arg("-f")
            .arg(fixtures().join("build-arguments.blubber.yaml"))
            .args(["--build-arg", "MAKE_TARGET=bar"]),
    );
    assert!(text.starts_with("images: debian:stable\n"), "{text}");
    assert!(text.contains("stage make (from debian:stable)"), "{text}");
    assert!(text.contains("-> as 65533 in /srv/app: make bar"), "{text}");
}

#[test]
fn plan_of_invalid_config_exits_2() {
    let root = tempfile::tempdir().unwrap();
    let out = output(
        flense(root.path())
            .arg("plan")
            .arg("build")
            .arg("-f")
            .arg(fixtures().join("examples/derived/10-command-then-script-conflict.blubber.yaml"))
            .arg("--json"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not allowed if any of field(s)"));
}

#[test]
fn library_lists_images_and_layers_env_for_the_executor() {
    let file = fixtures()
        .join("examples/acceptance/04-builders/06-builder-mounts-from-variant.blubber.yaml");
    let config = flense::config::load(&file).unwrap();
    let plan = flense::plan::compile(&config, "webserver", &Default::default()).unwrap();
    assert_eq!(plan.images(), ["node:22-bookworm", "golang:1.23"]);
    let build = plan.stage("build").unwrap();
    let base_env = vec![
        "PATH=/usr/local/go/bin:/usr/bin".to_string(),
        "GOPATH=/go".to_string(),
    ];
    let image_env = build.image.env_over(&base_env);
    assert_eq!(
        image_env,
        [
            "PATH=/usr/local/go/bin:/usr/bin",
            "GOPATH=/go",
            "HOME=/home/runuser",
            "CGO_ENABLED=0",
            "GOCACHE=/var/cache/go"
        ]
    );
    let run = build
        .steps
        .iter()
        .find_map(|s| match &s.instruction {
            flense::plan::Instruction::Run { context, .. } => Some(context),
            _ => None,
        })
        .unwrap();
    let exec_env = run.exec_env(&base_env, &plan);
    assert!(exec_env.contains(&"HOME=/home/somebody".to_string()));
    assert!(exec_env.contains(&"LIVES_UID=65533".to_string()));
    assert!(exec_env
        .iter()
        .any(|e| e.starts_with("TARGETPLATFORM=linux/")));
}

#[test]
fn platform_option_sets_the_platform_variables() {
    let p = plan(
        "platform.blubber.yaml",
        "build",
        &["--platform", "linux/arm64/v8"],
    );
    run_step(target(&p), "echo building for linux/arm64/v8 on arm64");
    assert!(pairs(&p["platform_env"]).contains(&"TARGETVARIANT=v8".to_string()));
    let root = tempfile::tempdir().unwrap();
    let out = output(
        flense(root.path())
            .arg("plan")
            .arg("build")
            .arg("-f")
            .arg(fixtures().join("platform.blubber.yaml"))
            .args(["--platform", "arm64"]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("os/arch"));
}
