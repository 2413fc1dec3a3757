//! `--pull always|missing|never` of `flense build`, `run VARIANT` and `pipeline`, and
//! PipelineLib's `imagePullPolicy`, against a real registry whose access log shows
//! every request: `never` fails naming the image without a request, `missing` leaves a
//! stored base alone, `always` picks up a re-pushed tag.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::cli::{flense, ok_stdout, output};
use support::registry::{simple_image, TestImage, TestRegistry};

/// A project whose variant `app` prints the base image's marker file.
fn project(dir: &Path, base: &str) -> PathBuf {
    let p = dir.join("policy-app");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(
        p.join(".pipeline/blubber.yaml"),
        format!(
            "version: v4\nbase: {base}\nvariants:\n  app:\n    entrypoint: [/bin/sh, -c, 'read m < /etc/flense-platform; echo \"$m\"']\n"
        ),
    )
    .unwrap();
    p
}

/// Pushes a busybox image marked `amd64 <marker>` as `base/busybox:1`.
fn push_base(reg: &TestRegistry, tmp: &Path, marker: &str) -> TestImage {
    let image = simple_image(&tmp.join(format!("layout-{marker}")), marker);
    image.push_with_skopeo(reg, "base/busybox:1", &[]);
    image
}

/// `flense run app` with `args`: the marker of the base it was built on.
fn run_app(root: &Path, project: &Path, args: &[&str]) -> String {
    ok_stdout(
        flense(root)
            .args(["run", "app", "-q", "-C"])
            .arg(project)
            .args(args),
    )
    .trim()
    .to_string()
}

#[test]
fn pull_policies_of_build_run_and_pipeline() {
    let reg = TestRegistry::start_with_access_log();
    let tmp = tempfile::tempdir().unwrap();
    let base = reg.image("base/busybox:1");
    push_base(&reg, tmp.path(), "v1");
    let p = project(tmp.path(), &base);
    let root = tmp.path().join("store");

    // never: exit 1, the image named, not one request.
    let before = reg.requests().len();
    assert!(before > 0, "the access log records the push");
    let out = output(
        flense(&root)
            .args(["build", "app", "--pull", "never", "-C"])
            .arg(&p),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&base) && err.contains("--pull never"), "{err}");
    assert_eq!(reg.requests().len(), before, "{:?}", reg.requests());

    // missing (the default) pulls what the store lacks...
    assert_eq!(run_app(&root, &p, &[]), "amd64 v1");
    // ...and leaves a stored base alone, without a request, when the tag moves.
    let v2 = push_base(&reg, tmp.path(), "v2");
    let before = reg.requests().len();
    assert_eq!(run_app(&root, &p, &[]), "amd64 v1");
    assert_eq!(run_app(&root, &p, &["--pull", "never"]), "amd64 v1");
    assert_eq!(reg.requests().len(), before, "{:?}", reg.requests());

    // always re-resolves the tag; blobs the store has are not fetched again.
    assert_eq!(run_app(&root, &p, &["--pull", "always"]), "amd64 v2");
    let before = reg.requests().len();
    ok_stdout(
        flense(&root)
            .args(["build", "app", "-q", "--pull", "always", "-C"])
            .arg(&p),
    );
    let requests = reg.requests()[before..].to_vec();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("GET /v2/base/busybox/manifests/1 ")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.contains("/blobs/")),
        "{requests:?}"
    );
    let stored = ok_stdout(flense(&root).args(["images"]));
    assert!(stored.contains(&v2.digest[7..19]), "{stored}");

    // The pipeline: no imagePullPolicy leaves the stored base; `Always` pulls.
    push_base(&reg, tmp.path(), "v3");
    let config = |policy: &str| {
        fs::write(
            p.join(".pipeline/config.yaml"),
            format!(
                "pipelines:\n  test:\n    blubberfile: blubber.yaml\n    stages:\n      - name: app\n        build: {{variant: app{policy}}}\n        run: true\n"
            ),
        )
        .unwrap();
    };
    let pipeline = |extra: &[&str]| {
        ok_stdout(
            flense(&root)
                .args(["pipeline", "-C"])
                .arg(&p)
                .args(extra)
                .env("NO_COLOR", "1"),
        );
        fs::read_to_string(p.join(".pipeline/logs/test.app.log")).unwrap()
    };
    config("");
    assert!(pipeline(&[]).contains("amd64 v2"));
    config(", imagePullPolicy: Always");
    // `--pull` of the pipeline wins over the stage's policy.
    let log = pipeline(&["--pull", "never"]);
    assert!(
        log.contains("--pull=never") && log.contains("amd64 v2"),
        "{log}"
    );
    let log = pipeline(&[]);
    assert!(
        log.contains("--pull=always") && log.contains("amd64 v3"),
        "{log}"
    );
}
