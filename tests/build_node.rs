//! The Node sample (`examples/node-service`) on the `nodejs-devel` fixture, through the
//! CLI: `flense build test`, `flense run test` and `flense run lint`, the cache across
//! rebuilds (a source change re-runs only the local copy; a lockfile change re-runs npm),
//! ownership of what npm installed, and a failing test's exit code.
//!
//! One scenario in one store: importing and unpacking the 450 MB base once.

#[path = "build_node/supply_chain.rs"]
mod supply_chain;
mod support;

use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::cli::{flense, ok_stdout, output};
use support::fixtures::{import_fixture, node_sample as sample};

const WMF_BASE: &str = "docker-registry.wikimedia.org/nodejs20-devel:latest";

/// Builds with `--json` and returns (step instruction, status) of layer steps.
fn build(root: &Path, project: &Path, variant: &str) -> Vec<(String, String)> {
    let out = ok_stdout(
        flense(root)
            .args(["build", variant, "--json", "-C"])
            .arg(project),
    );
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "step" && e["status"] != "applied")
        .map(|e| {
            (
                e["instruction"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ran(steps: &[(String, String)]) -> Vec<&str> {
    steps
        .iter()
        .filter(|(_, s)| s == "ran")
        .map(|(i, _)| i.as_str())
        .collect()
}

fn run(root: &Path, project: &Path, variant: &str) -> Output {
    output(
        flense(root)
            .args(["run", variant, "--quiet", "-C"])
            .arg(project),
    )
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Owner (uid, gid) of `path` in the image's layers (the topmost layer that has it).
fn owner_in_image(root: &Path, reference: &str, path: &str) -> Option<(u64, u64)> {
    let image: Value =
        serde_json::from_str(&ok_stdout(flense(root).args(["inspect", reference]))).unwrap();
    // Top layer first; the base layer (first) never holds the files asked about.
    for layer in image["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .rev()
    {
        let digest = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let file = fs::File::open(root.join("blobs/sha256").join(digest)).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for e in tar.entries().unwrap() {
            let e = e.unwrap();
            if e.path().unwrap().to_string_lossy().trim_end_matches('/') == path {
                return Some((e.header().uid().unwrap(), e.header().gid().unwrap()));
            }
        }
    }
    None
}

#[test]
fn node_sample_builds_tests_lints_and_caches() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let local = import_fixture(&root, "nodejs-devel");
    ok_stdout(flense(&root).args(["tag", &local, WMF_BASE]));
    let p = sample(tmp.path());

    let first = build(&root, &p, "test");
    let first_ran = ran(&first);
    assert!(
        first_ran.iter().any(|i| i.starts_with("RUN npm ci")),
        "{first:?}"
    );
    assert_eq!(
        first_ran.len(),
        first.len(),
        "a cold build runs everything: {first:?}"
    );
    assert_eq!(
        owner_in_image(
            &root,
            "node-service:test",
            "srv/service/node_modules/express/package.json"
        ),
        Some((65533, 65533)),
        "npm runs as the lives user"
    );
    assert_eq!(
        owner_in_image(&root, "node-service:test", "srv/service/src/app.js"),
        Some((65533, 65533))
    );

    let out = run(&root, &p, "test");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 passing"),
        "{}",
        text(&out)
    );
    let out = run(&root, &p, "lint");
    assert!(out.status.success(), "{}", text(&out));

    // An immediate rebuild runs nothing.
    let again = build(&root, &p, "test");
    assert!(ran(&again).is_empty(), "{again:?}");

    // Issue #14 on this image (cached builds only): SBOM, attestations, provenance.
    supply_chain::sbom_lists_lockfile_and_dpkg(&root, &p, "node-service:test", tmp.path());
    let plain = ok_stdout(flense(&root).args(["build", "test", "-q", "-C"]).arg(&p));
    let base: Value =
        serde_json::from_str(&ok_stdout(flense(&root).args(["inspect", WMF_BASE]))).unwrap();
    let base = base["digest"].as_str().unwrap();
    supply_chain::attested_push(&root, &p, plain.trim(), base, tmp.path());

    // A source change re-runs only the local copy; npm ci stays cached.
    let app = p.join("src/app.js");
    let source = fs::read_to_string(&app).unwrap();
    fs::write(&app, source.replace("status: 'ok'", "status: 'fine'")).unwrap();
    let changed = build(&root, &p, "test");
    let changed_ran = ran(&changed);
    assert_eq!(changed_ran.len(), 1, "{changed:?}");
    assert!(
        changed_ran[0].starts_with("COPY") && changed_ran[0].contains(r#"[".", "."]"#),
        "{changed:?}"
    );

    // The changed source makes the test fail: non-zero exit.
    let out = run(&root, &p, "test");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 failing"),
        "{}",
        text(&out)
    );
    fs::write(&app, source).unwrap();

    // A lockfile change re-runs the requirements copy and npm.
    support::fixtures::relock_node_sample(&p);
    let relocked = build(&root, &p, "test");
    let relocked_ran = ran(&relocked);
    assert!(
        relocked_ran.iter().any(|i| i.starts_with("RUN npm ci")),
        "{relocked:?}"
    );
    let out = run(&root, &p, "test");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn node_sample_builds_and_passes_as_an_unprivileged_user() {
    use support::users::{as_test_user, give_to_test_user};
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let base = tmp.path().join("base.tar");
    fs::copy(support::fixtures::rootfs_tar("nodejs-devel"), &base).unwrap();
    let p = sample(tmp.path());
    give_to_test_user(tmp.path());
    let root = tmp.path().join("store");
    let bin = support::cli::flense_bin();
    let user = |args: &[&str]| {
        let mut cmd = as_test_user(&bin);
        cmd.arg("--root").arg(&root).args(args);
        cmd
    };
    ok_stdout(user(&["import"]).arg(&base).args(["--tag", WMF_BASE]));
    ok_stdout(user(&["build", "test", "-q", "-C"]).arg(&p));
    // The SBOM reads the user's own store's layers, no root needed.
    let sbom = ok_stdout(&mut user(&["sbom", "node-service:test"]));
    assert!(sbom.contains("pkg:npm/express@"), "{sbom}");
    assert!(sbom.contains("pkg:deb/debian/nodejs@"), "{sbom}");
    let out = output(user(&["run", "test", "-q", "-C"]).arg(&p));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 passing"),
        "{}",
        text(&out)
    );
}
