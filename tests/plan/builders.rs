//! Examples 04: builders, requirements, scripts, caches and mounts.

use serde_json::Value;

use super::*;

// ---- 04-builders ----------------------------------------------------------------------

#[test]
fn builder_compiles_c_as_lives_user() {
    let p = example("acceptance/04-builders/01-builder-compile-c", "build");
    let t = target(&p);
    let c = copies(t);
    assert_eq!(strings(&c[0]["sources"]), ["main.c"]);
    assert_eq!(c[0]["destination"], "./");
    assert_eq!(c[0]["phase"], "pre-install");
    assert_eq!(owner(c[0]), Some((65533, 65533)));
    let run = run_step(t, "gcc -o hello main.c");
    assert_eq!(run["context"]["user"], "65533");
    assert_eq!(run["context"]["workdir"], "/srv/app");
}

#[test]
fn multiple_custom_builders_run_in_order() {
    let p = example(
        "acceptance/04-builders/02-multiple-custom-builders",
        "build",
    );
    let t = target(&p);
    let kinds: Vec<String> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "pre-install")
        .map(|s| match s["kind"].as_str().unwrap() {
            "copy" => format!("copy {:?}", strings(&s["sources"])),
            _ => s["effective"].as_str().unwrap().to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "copy [\"go.mod\", \"go.sum\"]",
            "go mod download",
            "copy [\"main.go\"]",
            "go build ."
        ]
    );
}

#[test]
fn builder_script_and_copy_into_scratch() {
    let p = example(
        "acceptance/04-builders/03-builder-script-and-copies",
        "application",
    );
    assert_eq!(p["stages"].as_array().unwrap().len(), 2);
    let build = stage(&p, "build");
    let script = steps(build, "run-script");
    assert_eq!(script.len(), 1);
    let text = script[0]["script"].as_str().unwrap();
    assert!(text.starts_with("#!/bin/bash\n"));
    assert!(
        text.contains("\"$CGO_ENABLED\"") && text.contains("$(go list)"),
        "not expanded"
    );
    assert_eq!(script[0]["context"]["user"], "65533");
    assert!(pairs(&script[0]["context"]["env"]).contains(&"CGO_ENABLED=0".to_string()));
    let app = target(&p);
    assert_eq!(app["base"], Value::Null);
    assert_eq!(strings(&app["depends_on_variants"]), ["build"]);
    let c = copies(app);
    assert_eq!(c[0]["kind"], "copy-from");
    assert_eq!(
        c[0]["from"],
        serde_json::json!({"kind": "variant", "name": "build"})
    );
    assert_eq!(strings(&c[0]["sources"]), ["./hello-world-go"]);
    assert_eq!(c[0]["source_workdir"], "/srv/app");
    assert_eq!(c[0]["destination"], "/hello");
    assert_eq!(owner(c[0]), None, "scratch copies keep source ownership");
    assert!(steps(app, "user").is_empty());
}

#[test]
fn requirements_without_source_copy_the_whole_context() {
    let p = example("acceptance/04-builders/04-requirements-exclude", "build");
    let c = copies(target(&p));
    assert_eq!(strings(&c[0]["sources"]), ["./"]);
    assert_eq!(c[0]["destination"], "./");
    assert_eq!(strings(&c[0]["exclude"]), ["*.md"]);
}

#[test]
fn builder_caches_expand_destination_and_belong_to_lives_user() {
    let p = example("acceptance/04-builders/05-builder-caches", "build");
    let t = target(&p);
    let go_build = run_step(t, "go build .");
    let cache = &go_build["context"]["caches"][0];
    assert_eq!(
        cache["destination"], "/var/cache/go",
        "from runs.environment"
    );
    assert_eq!(cache["id"], "/var/cache/go");
    assert_eq!(cache["access"], "shared");
    assert_eq!(cache["owner"], serde_json::json!([65533, 65533]));
    // ${GOPATH} comes from the base image, unknown without it: kept for the executor.
    let download = run_step(t, "go mod download");
    assert_eq!(
        download["context"]["caches"][0]["destination"],
        "${GOPATH}/pkg"
    );
}

#[test]
fn builder_mounts_from_another_variant() {
    let p = example(
        "acceptance/04-builders/06-builder-mounts-from-variant",
        "webserver",
    );
    let order: Vec<&str> = p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["variant"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["assets", "build", "webserver"]);
    let build = stage(&p, "build");
    assert_eq!(strings(&build["depends_on_variants"]), ["assets"]);
    let run = run_step(build, "go build");
    assert_eq!(
        run["context"]["mounts"][0],
        serde_json::json!({"from": {"kind": "variant", "name": "assets"}, "source": "/src/dist", "destination": "./dist"})
    );
    let assets = stage(&p, "assets");
    let c = copies(assets);
    // `./src/` is a directory: it keeps its own destination, so it is a separate copy.
    assert_eq!(strings(&c[1]["sources"]), ["webpack.config.js"]);
    assert_eq!(c[1]["destination"], "./");
    assert_eq!(strings(&c[2]["sources"]), ["src/"]);
    assert_eq!(c[2]["destination"], "./src/");
    assert_eq!(
        target(&p)["image"]["entrypoint"],
        serde_json::json!(["/usr/bin/web-app"])
    );
}
