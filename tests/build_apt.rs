//! apt in single-ID mode, end to end, as an unprivileged user: only the caller's ID
//! exists in the sandbox, so apt runs with `APT::Sandbox::User "root"`; a package
//! installs and its binary runs from the image, and a package whose maintainer script
//! chowns to another ID fails with the hint on enabling subuid mode. Packages come from
//! deb.debian.org.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::cli::{flense_bin, ok_stdout, output};
use support::fixtures::rootfs_tar;
use support::users::{as_test_user, give_to_test_user};

const BLUBBER: &str = r#"version: v4
base: localhost/bookworm:latest
variants:
  withjq:
    apt:
      packages: [jq]
    entrypoint: [jq, --version]
  snakeoil:
    apt:
      packages: [ssl-cert]
"#;

/// A temp dir the test user can use: the bookworm fixture imported into its store
/// (as the user) and a project with the config above. Returns (store, project).
fn user_setup(tmp: &Path) -> (PathBuf, PathBuf) {
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o755)).unwrap();
    let tar = tmp.join("bookworm.tar");
    fs::copy(rootfs_tar("bookworm"), &tar).unwrap();
    let project = tmp.join("apt-project");
    fs::create_dir_all(project.join(".pipeline")).unwrap();
    fs::write(project.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    give_to_test_user(tmp);
    let store = tmp.join("store");
    ok_stdout(
        as_test_user(&flense_bin())
            .arg("--root")
            .arg(&store)
            .arg("import")
            .arg(&tar)
            .args(["--tag", "localhost/bookworm:latest"]),
    );
    (store, project)
}

fn user_flense(store: &Path, args: &[&str], project: &Path) -> std::process::Command {
    let mut cmd = as_test_user(&flense_bin());
    cmd.arg("--root")
        .arg(store)
        .args(args)
        .args(["--userns", "single", "-C"])
        .arg(project);
    cmd
}

#[test]
fn an_apt_package_installs_and_runs_in_single_mode_as_a_user() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, project) = user_setup(tmp.path());

    let planned = ok_stdout(&mut user_flense(
        &store,
        &["build", "withjq", "--dry-run"],
        &project,
    ));
    assert!(
        planned.contains("apt-get install -y \"jq\"") && planned.contains("(would run)"),
        "{planned}"
    );

    let digest = ok_stdout(&mut user_flense(
        &store,
        &["build", "withjq", "-q"],
        &project,
    ));
    assert!(digest.trim().starts_with("sha256:"), "{digest}");

    let out = output(&mut user_flense(&store, &["run", "withjq", "-q"], &project));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("jq-"),
        "jq --version in the image: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let again = ok_stdout(&mut user_flense(
        &store,
        &["build", "withjq", "--dry-run"],
        &project,
    ));
    assert!(!again.contains("(would run)"), "{again}");
    assert!(again.contains("(cached)"), "{again}");
}

#[test]
fn a_package_that_chowns_to_another_id_fails_with_the_subuid_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, project) = user_setup(tmp.path());

    let out = output(&mut user_flense(
        &store,
        &["build", "snakeoil", "-q"],
        &project,
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("variant 'snakeoil'") && stderr.contains("ssl-cert"),
        "the failing step is named: {stderr}"
    );
    assert!(
        stderr.contains("single-ID mode") && stderr.contains("--add-subuids"),
        "the hint says how to enable subuid mode: {stderr}"
    );
}
