//! Command steps (custom builders) in the sandbox give the same image as root and as an
//! unprivileged user (single-ID mode), and a failing builder fails the build.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::cli::{flense, flense_bin, ok_stdout, output};
use support::fixtures::rootfs_tar;
use support::users::{as_test_user, give_to_test_user};

const BLUBBER: &str = r#"version: v4
base: localhost/busybox:latest
variants:
  built:
    builder:
      requirements: [input.txt]
      command: "tr a-z A-Z < input.txt > upper.txt && mkdir -p out && cp upper.txt out/copy.txt"
    entrypoint: [cat, upper.txt]
  broken:
    builder:
      command: "echo about to fail >&2; exit 3"
"#;

fn project(dir: &Path) -> PathBuf {
    let p = dir.join("rootless");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    fs::write(p.join("input.txt"), "shout\n").unwrap();
    p
}

#[test]
fn a_builder_step_gives_the_same_digest_as_root_and_as_a_user() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tar = tmp.path().join("busybox.tar");
    fs::copy(rootfs_tar("busybox"), &tar).unwrap();

    let root_store = tmp.path().join("root-store");
    ok_stdout(
        flense(&root_store)
            .arg("import")
            .arg(&tar)
            .args(["--tag", "localhost/busybox:latest"]),
    );
    let p = project(tmp.path());
    let as_root = ok_stdout(
        flense(&root_store)
            .args(["build", "built", "-q", "-C"])
            .arg(&p),
    );
    let out = output(
        flense(&root_store)
            .args(["run", "built", "-q", "-C"])
            .arg(&p),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");

    let user_dir = tmp.path().join("user");
    fs::create_dir_all(&user_dir).unwrap();
    let user_project = project(&user_dir);
    give_to_test_user(&user_dir);
    fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let user_store = user_dir.join("store");
    let bin = flense_bin();
    ok_stdout(
        as_test_user(&bin)
            .arg("--root")
            .arg(&user_store)
            .arg("import")
            .arg(&tar)
            .args(["--tag", "localhost/busybox:latest"]),
    );
    let as_user = ok_stdout(
        as_test_user(&bin)
            .arg("--root")
            .arg(&user_store)
            .args(["build", "built", "-q", "--userns", "single", "-C"])
            .arg(&user_project),
    );
    assert_eq!(as_user.trim(), as_root.trim());
}

#[test]
fn a_failing_builder_fails_the_build_with_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    ok_stdout(
        flense(&store)
            .arg("import")
            .arg(rootfs_tar("busybox"))
            .args(["--tag", "localhost/busybox:latest"]),
    );
    let p = project(tmp.path());
    let out = output(flense(&store).args(["build", "broken", "-C"]).arg(&p));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("about to fail"),
        "step output is shown: {stderr}"
    );
    assert!(stderr.contains("exit code 3"), "{stderr}");
}
