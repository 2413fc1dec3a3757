//! Blubber's own `.pipeline/blubber.yaml` (`fixtures/blubber-examples/repo`): multi-level
//! includes, per-variant arguments, `${VAR}` in environment and caches, negated
//! excludes, locked caches, node requirements from other variants, scratch copies.

use serde_json::Value;

use super::*;

fn repo(variant: &str, extra: &[&str]) -> Value {
    plan(
        "../blubber-examples/repo/pipeline.blubber.yaml",
        variant,
        extra,
    )
}

fn variants(p: &Value) -> Vec<String> {
    p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["variant"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn docs_for_publishing_builds_its_dependency_chain_leaves_first() {
    let p = repo("docs-for-publishing", &[]);
    assert_eq!(
        variants(&p),
        [
            "configuration-docs",
            "example-docs",
            "build-docs",
            "docs-for-publishing"
        ]
    );
    let build_docs = stage(&p, "build-docs");
    assert_eq!(
        strings(&build_docs["depends_on_variants"]),
        ["configuration-docs", "example-docs"]
    );
    let from: Vec<String> = copies(build_docs)
        .iter()
        .filter(|c| c["kind"] == "copy-from")
        .map(|c| c["from"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(from, ["configuration-docs", "example-docs"]);
    run_step(build_docs, "npm ci");
    run_step(build_docs, "npm run docs:build");
    let publish = target(&p);
    assert_eq!(publish["base"], Value::Null);
    let c = copies(publish);
    assert_eq!(strings(&c[0]["sources"]), ["/srv/app/.vitepress/dist/"]);
    assert_eq!(owner(c[0]), None);
}

#[test]
fn make_arguments_environment_and_caches() {
    let p = repo("make", &["--build-arg", "MAKE_TARGET=lint"]);
    let t = target(&p);
    let make = run_step(t, "make lint");
    let caches = make["context"]["caches"].as_array().unwrap();
    let dests: Vec<&str> = caches
        .iter()
        .map(|c| c["destination"].as_str().unwrap())
        .collect();
    assert_eq!(dests, ["/opt/lib/go/cache", "/opt/lib/go/pkg"]);
    let download = run_step(t, "go mod download");
    assert_eq!(download["context"]["caches"][0]["access"], "locked");
    run_step(t, "mkdir -p /opt/lib/go/bin");
    // `test` (included by `make`) runs insecurely: the image keeps the lives user.
    assert_eq!(t["image"]["user"], "65533");
    // ${PATH} comes from the base image, which `flense plan` does not read.
    assert!(pairs(&t["image"]["env"]).contains(&"PATH=/opt/lib/go/bin:${PATH}".to_string()));
    let git = copies(t)
        .into_iter()
        .find(|c| strings(&c["sources"]) == [".git/"])
        .unwrap();
    assert_eq!(strings(&git["exclude"]), ["!HEAD", "!refs/**/*"]);
}

#[test]
fn acceptance_copies_relative_sources_from_the_examples_stage() {
    let p = repo("acceptance", &[]);
    assert_eq!(variants(&p), ["examples", "acceptance"]);
    run_step(stage(&p, "examples"), "make examples.test");
    let c = copies(target(&p));
    assert_eq!(c[0]["from"]["name"], "examples");
    assert_eq!(c[0]["source_workdir"], "/srv/app");
    assert_eq!(c[1]["kind"], "copy");
    assert_eq!(strings(&c[1]["sources"]), ["./examples/"]);
}
