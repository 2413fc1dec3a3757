//! End to end through the real verbs: `flense pipeline` drives `flense run` (rootless
//! runtime) on the busybox fixture image in the store, as root and as the unprivileged
//! user: run arguments and env, `tail` output into a later stage, `copy` into the
//! workspace, exit codes deciding stage results, logs and JUnit.
//! Stages with `build` go through the real `flense build` (test-copy of the systemtest),
//! with `--sbom --provenance` passed on to every build.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::cli::{flense, flense_bin, output};
use support::fixtures::rootfs_tar;
use support::users::{as_test_user, give_to_test_user};

struct Env {
    dir: tempfile::TempDir,
    unprivileged: bool,
}

impl Env {
    fn new(unprivileged: bool) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("flense-pipeline-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::create_dir_all(dir.path().join("store")).unwrap();
        std::fs::create_dir_all(dir.path().join("project/.pipeline")).unwrap();
        std::fs::copy(rootfs_tar("busybox"), dir.path().join("busybox.tar")).unwrap();
        let env = Env { dir, unprivileged };
        if unprivileged {
            give_to_test_user(env.dir.path());
        }
        env
    }

    fn flense(&self) -> Command {
        let store = self.dir.path().join("store");
        if self.unprivileged {
            let mut cmd = as_test_user(&flense_bin());
            cmd.arg("--root").arg(store);
            cmd
        } else {
            flense(&store)
        }
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    /// Imports busybox and returns its digest (hex, no `sha256:`).
    fn import(&self) -> String {
        let out = output(
            self.flense()
                .arg("import")
                .arg(self.dir.path().join("busybox.tar"))
                .args(["--tag", "localhost/busybox:latest"]),
        );
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let digest = text
            .split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .expect("import prints the digest");
        digest.trim_start_matches("sha256:").to_string()
    }

    fn write_config(&self, text: &str) {
        let path = self.project().join(".pipeline/config.yaml");
        std::fs::write(&path, text).unwrap();
        if self.unprivileged {
            give_to_test_user(self.dir.path());
        }
    }

    fn pipeline(&self, args: &[&str]) -> Output {
        let mut cmd = self.flense();
        cmd.arg("pipeline")
            .arg("-C")
            .arg(self.project())
            .args(args)
            .env("WHO", "world")
            .env("NO_COLOR", "1");
        if self.unprivileged {
            // The unprivileged user's binary is a copy: drive that same copy.
            cmd.arg("--flense-bin")
                .arg(support::users::reachable_copy(&flense_bin()));
        }
        output(&mut cmd)
    }
}

const CONFIG: &str = r#"pipelines:
  p:
    stages:
      - name: greet
        run:
          image: '${setup.params.IMAGE}'
          arguments: [sh, -c, 'echo hey; echo "$GREETING"; echo to-stderr >&2']
          env: {GREETING: 'from-$WHO'}
          tail: 1
        copy: [{source: etc/passwd, destination: out/passwd}]
      - name: check
        run:
          image: '${setup.params.IMAGE}'
          arguments: [sh, -c, 'case "$1" in from-world*) exit 0;; *) echo "got $1"; exit 1;; esac', --, '${greet.output}']
      - name: fail
        run: {image: '${setup.params.IMAGE}', arguments: [sh, -c, 'echo failing; exit 7']}
      - name: never
        run: {image: '${setup.params.IMAGE}', arguments: ['true']}
"#;

fn end_to_end(unprivileged: bool) {
    let env = Env::new(unprivileged);
    let digest = env.import();
    env.write_config(CONFIG);
    let junit = env.dir.path().join("junit.xml");
    let image = format!("IMAGE={digest}");
    let out = env.pipeline(&[
        "--param",
        &image,
        "--env-from-host",
        "WHO",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = env.project().join(".pipeline/logs");
    let greet = std::fs::read_to_string(logs.join("p.greet.log")).unwrap();
    assert!(
        greet.contains("hey") && greet.contains("to-stderr"),
        "{greet}"
    );
    assert!(greet.contains("output: from-world\n"), "{greet}");
    let passwd = std::fs::read_to_string(env.project().join("out/passwd")).unwrap();
    assert!(passwd.starts_with("root:"), "{passwd}");
    assert!(stdout.contains("[check] passed"), "{stdout}");
    assert!(stdout.contains("[fail] failing"), "{stdout}");
    assert!(stdout.contains("[fail] FAILED"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("p ") && l.contains("never") && l.contains("skipped")),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<failure message=\"step run: the container exited with code 7\">"),
        "{xml}"
    );
    assert!(logs.join("p.teardown.log").is_file());
}

#[test]
fn runs_real_containers_as_root() {
    end_to_end(false);
}

#[test]
fn runs_real_containers_as_an_unprivileged_user() {
    end_to_end(true);
}

#[test]
fn unknown_images_fail_the_stage_clearly() {
    let env = Env::new(false);
    env.write_config("pipelines:\n  p:\n    stages: [{name: a, run: {image: not-a-digest}}]\n");
    let out = env.pipeline(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("run.image 'not-a-digest' is not a local image ID"),
        "{stdout}"
    );
}

#[test]
fn publishes_to_a_real_registry_with_the_naming_rules() {
    let registry = support::registry::TestRegistry::start();
    let env = Env::new(false);
    let digest = env.import();
    env.write_config(
        "pipelines:\n  p:\n    stages:\n      - name: candidate\n        publish: {image: {id: '${setup.params.IMAGE}', tags: [Extra/Tag, '${setup.tag}']}}\n        exports: {ref: '${.publishedImage}'}\n",
    );
    let image = format!("IMAGE={digest}");
    let dest = format!("{}/wmf", registry.addr);
    let out = env.pipeline(&["--param", &image, "--registry", &dest]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No git checkout: the project is the directory's name; the empty git tag is dropped.
    assert!(
        stdout.contains(&format!("ref: {dest}/project:")),
        "{stdout}"
    );
    let extra = registry.raw_manifest("wmf/project:extra-tag");
    let text = String::from_utf8_lossy(&extra);
    assert!(text.contains("\"layers\""), "{text}");
    let log = std::fs::read_to_string(env.project().join(".pipeline/logs/p.teardown.log")).unwrap();
    assert!(
        log.contains("published by candidate: ") && log.contains("extra-tag"),
        "{log}"
    );
}

const BLUBBER: &str = r#"version: v4
base: localhost/busybox:latest
variants:
  make-file:
    builder:
      command: [sh, -c, 'echo built-hi > /tmp/greeting']
    entrypoint: [sh, -c]
  check:
    copies: [local]
    entrypoint: [sh, -c, 'test "$(cat bar/greeting)" = hi-from-run && test "$(cat bar/built)" = built-hi && echo checked-$0', from-check]
"#;

const BUILD_CONFIG: &str = r#"pipelines:
  test-copy:
    blubberfile: blubber.yaml
    stages:
      - name: make-a-file
        build: make-file
        run: {arguments: ['mkdir -p /tmp/foo && echo hi-from-run > /tmp/foo/greeting && echo for-later > /tmp/foo/later; echo ran; echo last-line'], tail: 1}
        copy: [{source: /tmp/foo/greeting, destination: bar/greeting}, {source: tmp/greeting, destination: bar/built}]
      - name: check-file-contents
        build: check
        run: true
        exports: {seen: '${make-a-file.output}', built: '${.imageLocalName}'}
      - name: copy-from-ancestor
        copy: [{from: '${make-a-file.container}', source: /tmp/foo/later, destination: anc/later}]
"#;

/// The systemtest's test-copy, for real: build a variant, run it, copy a file the run
/// wrote (and one from the image) into the workspace, rebuild another variant whose local
/// copy now includes them, and run its check; a later stage copies from the first
/// stage's container what its run wrote.
fn build_run_copy_rebuild(unprivileged: bool) {
    let env = Env::new(unprivileged);
    env.import();
    std::fs::write(env.project().join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    env.write_config(BUILD_CONFIG);
    let out = env.pipeline(&["--sbom", "--provenance"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Written by the run itself (saved when it exited), and built into the image.
    assert_eq!(
        std::fs::read_to_string(env.project().join("bar/greeting")).unwrap(),
        "hi-from-run\n"
    );
    assert_eq!(
        std::fs::read_to_string(env.project().join("bar/built")).unwrap(),
        "built-hi\n"
    );
    // A later stage copies what the ancestor's run wrote (saved when that run exited).
    assert_eq!(
        std::fs::read_to_string(env.project().join("anc/later")).unwrap(),
        "for-later\n"
    );
    assert!(stdout.contains("[make-a-file] ran"), "{stdout}");
    assert!(
        stdout.contains("[check-file-contents] checked-from-check"),
        "{stdout}"
    );
    assert!(stdout.contains("seen: last-line\n"), "{stdout}");
    // Built images carry `${setup.imageLabels}`, like PipelineLib's `docker build --label`.
    let built = stdout
        .split("exported: [built: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no built export\n{stdout}"));
    let inspected = output(env.flense().args(["inspect", built]));
    let config: serde_json::Value = serde_json::from_slice(&inspected.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&inspected.stderr)));
    let labels = &config["config"]["config"]["Labels"];
    assert_eq!(labels["ci.project"], "project", "{labels}");
    assert_eq!(labels["ci.pipeline"], "test-copy", "{labels}");
    assert_eq!(labels["blubber.variant"], "check", "{labels}");
    // `--sbom --provenance` reached every build.
    let kinds: Vec<&str> = config["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["predicateType"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "https://spdx.dev/Document",
            "https://slsa.dev/provenance/v1"
        ]
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("test-copy")
            && l.contains("make-a-file")
            && l.contains("sha256:")),
        "{stdout}"
    );
}

#[test]
fn builds_runs_copies_and_rebuilds_as_root() {
    build_run_copy_rebuild(false);
}

#[test]
fn builds_runs_copies_and_rebuilds_as_an_unprivileged_user() {
    build_run_copy_rebuild(true);
}

#[test]
fn run_steps_have_a_time_limit() {
    let env = Env::new(false);
    let digest = env.import();
    env.write_config(&format!(
        "pipelines:\n  p:\n    stages: [{{name: slow, run: {{image: '{digest}', arguments: [sleep, '600']}}}}]\n"
    ));
    let out = env.pipeline(&["--run-timeout", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[slow] FAILED"), "{stdout}");
    assert!(
        stdout.contains("timeout") || stdout.contains("timed out"),
        "{stdout}"
    );
}
