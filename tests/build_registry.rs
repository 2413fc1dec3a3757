//! `flense build` with a real registry (Debian's docker-registry): the base image is
//! pulled through a registries-config rewrite (a Wikimedia name served by a local
//! mirror), and `--push` sends the result, which `skopeo inspect` reads back.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::cli::{flense, ok_stdout};
use support::fixtures::import_fixture;
use support::registry::TestRegistry;

const BLUBBER: &str = r#"version: v4
base: docker-registry.wikimedia.org/busybox:stable
runs:
  environment:
    GREETING: hello
variants:
  app:
    copies: [local]
    entrypoint: [/bin/sh, -c, 'echo "$GREETING"']
"#;

fn project(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("mirror-app");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    fs::write(p.join("hello.txt"), "hello\n").unwrap();
    p
}

/// A registry holding the busybox fixture as `base/busybox:stable`, and a registries
/// config that maps the Wikimedia name to it.
fn mirror(tmp: &Path) -> (TestRegistry, std::path::PathBuf) {
    let registry = TestRegistry::start();
    let seed = tmp.join("seed");
    let local = import_fixture(&seed, "busybox");
    ok_stdout(
        flense(&seed)
            .args(["push", &local])
            .arg(registry.image("base/busybox:stable")),
    );
    let config = tmp.join("registries.toml");
    fs::write(
        &config,
        format!(
            "[[rewrite]]\nfrom = \"docker-registry.wikimedia.org/busybox\"\nto = \"{}\"\n",
            registry.image("base/busybox")
        ),
    )
    .unwrap();
    (registry, config)
}

#[test]
fn base_is_pulled_through_a_mirror_rewrite() {
    let tmp = tempfile::tempdir().unwrap();
    let (_registry, config) = mirror(tmp.path());
    let p = project(tmp.path());
    let root = tmp.path().join("store");
    let digest = ok_stdout(
        flense(&root)
            .args(["build", "app", "-q", "--registries-config"])
            .arg(&config)
            .arg("-C")
            .arg(&p),
    );
    assert!(digest.trim().starts_with("sha256:"));
    // The base is now in the store under its Wikimedia name.
    let images = ok_stdout(flense(&root).arg("images"));
    assert!(
        images.contains("docker-registry.wikimedia.org/busybox:stable"),
        "{images}"
    );
    assert!(images.contains("mirror-app:app"), "{images}");
}

#[test]
fn push_sends_an_image_whose_config_skopeo_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (registry, config) = mirror(tmp.path());
    let p = project(tmp.path());
    let root = tmp.path().join("store");
    let dest = registry.image("apps/mirror-app:1");
    let digest = ok_stdout(
        flense(&root)
            .args(["build", "app", "-q", "--registries-config"])
            .arg(&config)
            .args(["--push", &dest, "-C"])
            .arg(&p),
    );
    let out = Command::new("skopeo")
        .args(["inspect", "--config", "--tls-verify=false"])
        .arg(format!("docker://{dest}"))
        .output()
        .expect("skopeo is installed (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "900");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["Entrypoint"][2], "echo \"$GREETING\"");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"GREETING=hello"), "{env:?}");
    assert!(env.contains(&"HOME=/home/runuser"), "{env:?}");
    assert_eq!(c["Labels"]["blubber.variant"], "app");
    let manifest = registry.raw_manifest("apps/mirror-app:1");
    assert_eq!(support::registry::sha256(&manifest), digest.trim());
}
