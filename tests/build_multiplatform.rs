//! Multi-platform builds (`--platform linux/amd64,linux/arm64`): arm64 steps run under
//! QEMU user emulation (binfmt_misc, which scripts/test sets up), the result is an
//! OCI index pushed with every manifest, and `run --platform` picks one. The base is
//! a real two-platform index in a real registry: the busybox fixture and its arm64
//! twin (`fixtures/base-images/arm64-busybox.sh`), made into an index by
//! `flense manifest create`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::{flense, flense_bin, ok_stdout, output};
use support::fixtures::rootfs_tar;
use support::registry::TestRegistry;
use support::users::{as_test_user, give_to_test_user};

const BOTH: &str = "linux/amd64,linux/arm64";

fn blubber(base: &str) -> String {
    format!(
        r#"version: v4
base: {base}
variants:
  arch:
    builder:
      command: [sh, -c, "uname -m > /srv/app/arch"]
    entrypoint: [cat, /srv/app/arch]
"#
    )
}

fn project(dir: &Path, base: &str) -> PathBuf {
    let p = dir.join("multi");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), blubber(base)).unwrap();
    p
}

/// Imports the busybox fixtures as `localhost/bb:amd64` and `localhost/bb:arm64` into
/// the store at `store` and names an index over both `localhost/bb:multi`.
fn two_platform_base(store: &Path) {
    ok_stdout(
        flense(store)
            .args(["import", "--tag", "localhost/bb:amd64"])
            .arg(rootfs_tar("busybox")),
    );
    ok_stdout(
        flense(store)
            .args(["import", "--platform", "linux/arm64"])
            .args(["--tag", "localhost/bb:arm64"])
            .arg(rootfs_tar("arm64-busybox")),
    );
    ok_stdout(flense(store).args([
        "manifest",
        "create",
        "localhost/bb:multi",
        "localhost/bb:amd64",
        "localhost/bb:arm64",
    ]));
}

/// A registry with `base/busybox:multi` (amd64 and arm64) and `base/busybox:amd64`
/// (a single amd64 image), pushed by flense from a seed store in `tmp`.
fn seeded_registry(tmp: &Path) -> TestRegistry {
    let registry = TestRegistry::start();
    let seed = tmp.join("seed");
    two_platform_base(&seed);
    for (local, remote) in [("multi", "multi"), ("amd64", "amd64")] {
        ok_stdout(
            flense(&seed)
                .args(["push", &format!("localhost/bb:{local}")])
                .arg(registry.image(&format!("base/busybox:{remote}"))),
        );
    }
    registry
}

/// The `os/architecture` of each entry of an index.
fn index_platforms(raw: &[u8]) -> Vec<String> {
    let index: Value = serde_json::from_slice(raw).unwrap();
    index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {index}"))
        .iter()
        .map(|m| {
            let p = &m["platform"];
            format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn both_platforms_are_built_as_a_user_pushed_as_an_index_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let registry = seeded_registry(tmp.path());
    assert_eq!(
        index_platforms(&registry.raw_manifest("base/busybox:multi")),
        ["linux/amd64", "linux/arm64"]
    );

    let user_dir = tmp.path().join("user");
    fs::create_dir_all(&user_dir).unwrap();
    let p = project(&user_dir, &registry.image("base/busybox:multi"));
    give_to_test_user(&user_dir);
    let store = user_dir.join("store");
    let bin = flense_bin();
    let as_user = |args: &[&str]| {
        let mut cmd = as_test_user(&bin);
        cmd.arg("--root").arg(&store).args(args);
        cmd
    };
    let dest = registry.image("app/arch:multi");
    let index_digest = ok_stdout(
        as_user(&[
            "build",
            "arch",
            "-q",
            "--userns",
            "single",
            "--platform",
            BOTH,
        ])
        .args(["--tag", "localhost/arch:multi", "--push", &dest, "-C"])
        .arg(&p),
    );
    let raw = registry.raw_manifest("app/arch:multi");
    assert_eq!(index_platforms(&raw), ["linux/amd64", "linux/arm64"]);
    assert_eq!(
        support::registry::sha256(&raw),
        index_digest.trim(),
        "the pushed index is the stored one"
    );

    for (platform, machine) in [("linux/arm64", "aarch64\n"), ("linux/amd64", "x86_64\n")] {
        let out = output(&mut as_user(&[
            "run",
            "--image",
            "localhost/arch:multi",
            "--userns",
            "single",
            "--platform",
            platform,
        ]));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            machine,
            "{platform}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The amd64 image of the index is the one a plain build makes (same keys, same
    // digest), and the store lists both platforms under the tag.
    let plain = ok_stdout(as_user(&["build", "arch", "-q", "--userns", "single", "-C"]).arg(&p));
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["manifests"][0]["digest"].as_str(), Some(plain.trim()));
    let images = ok_stdout(&mut as_user(&["images"]));
    let line = images
        .lines()
        .find(|l| l.starts_with("localhost/arch:multi"))
        .unwrap_or_else(|| panic!("{images}"));
    assert!(line.ends_with("linux/amd64,linux/arm64"), "{line}");
}

#[test]
fn a_base_without_the_platform_fails_naming_base_and_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = seeded_registry(tmp.path());
    let base = registry.image("base/busybox:amd64");
    let p = project(tmp.path(), &base);
    let store = tmp.path().join("store");
    let out = output(
        flense(&store)
            .args(["build", "arch", "--platform", BOTH, "-C"])
            .arg(&p),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&base), "{stderr}");
    assert!(stderr.contains("no image for linux/arm64"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Attestations are made per single-platform build: refused up front, not ignored.
    let out = output(
        flense(&store)
            .args(["build", "arch", "--sbom", "--platform", BOTH, "-C"])
            .arg(&p),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("one platform per build"), "{stderr}");
}

#[test]
fn an_unusable_binfmt_handler_fails_before_the_first_step_saying_how_to_fix_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    ok_stdout(
        flense(&store)
            .args(["import", "--platform", "linux/arm64"])
            .args(["--tag", "localhost/bb:arm64"])
            .arg(rootfs_tar("arm64-busybox")),
    );
    let p = project(tmp.path(), "localhost/bb:arm64");
    // A binfmt_misc without the handler (the host's is left alone: other tests use it).
    let binfmt = tmp.path().join("binfmt_misc");
    fs::create_dir_all(&binfmt).unwrap();
    fs::write(binfmt.join("register"), "").unwrap();
    for args in [
        vec!["build", "arch", "--platform", "linux/arm64"],
        vec!["build", "arch", "--platform", BOTH],
        vec![
            "run",
            "--image",
            "localhost/bb:arm64",
            "--platform",
            "linux/arm64",
        ],
    ] {
        let out = output(
            flense(&store)
                .env("FLENSE_BINFMT_MISC", &binfmt)
                .args(&args)
                .arg("-C")
                .arg(&p),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains("linux/arm64"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("update-binfmts --enable qemu-aarch64"),
            "{args:?}: {stderr}"
        );
    }
    let images = ok_stdout(flense(&store).arg("images"));
    assert_eq!(images.lines().count(), 2, "nothing was built: {images}");
}

/// The registration scripts/test relies on: qemu-aarch64 enabled with the F flag.
#[test]
fn the_hosts_qemu_aarch64_handler_has_the_fix_binary_flag() {
    let handler = fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .expect("scripts/test registers qemu-aarch64 (qemu-user-static)");
    assert!(handler.starts_with("enabled\n"), "{handler}");
    let flags = handler
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or_else(|| panic!("{handler}"));
    assert!(flags.contains('F'), "{handler}");
}

#[test]
fn dry_run_run_variant_and_pipeline_cover_every_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    two_platform_base(&store);
    let p = project(tmp.path(), "localhost/bb:multi");
    // The dry run shows each platform's plan, with its own base.
    let plan = ok_stdout(
        flense(&store)
            .args(["build", "arch", "--dry-run", "--platform", BOTH, "-C"])
            .arg(&p),
    );
    let (amd64, arm64) = plan
        .split_once("platform linux/arm64:\n")
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(amd64.starts_with("platform linux/amd64:\n"), "{plan}");
    for part in [amd64, arm64] {
        assert!(
            part.contains("uname -m > /srv/app/arch\"  (would run)"),
            "{plan}"
        );
    }
    assert_ne!(
        amd64.lines().find(|l| l.starts_with("image ")),
        arm64.lines().find(|l| l.starts_with("image ")),
        "{plan}"
    );
    // `run VARIANT --platform` builds that platform and runs it.
    let ran = ok_stdout(
        flense(&store)
            .args(["run", "arch", "-q", "--platform", "linux/arm64", "-C"])
            .arg(&p),
    );
    assert_eq!(ran, "aarch64\n");
    fs::write(
        p.join(".pipeline/config.yaml"),
        "pipelines:\n  p:\n    blubberfile: blubber.yaml\n    stages:\n      - name: arch\n        build: arch\n        run: true\n",
    )
    .unwrap();
    let out = output(
        flense(&store)
            .args(["pipeline", "--platform", BOTH, "-C"])
            .arg(&p),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("x86_64"),
        "the host's image ran: {stdout}\n{stderr}"
    );
    let images = ok_stdout(flense(&store).args(["images", "--json"]));
    let images: Value = serde_json::from_str(&images).unwrap();
    // The stage's image (named by the pipeline) is an index of both platforms.
    let both = serde_json::json!(["linux/amd64", "linux/arm64"]);
    let stage_images: Vec<&Value> = images
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            let name = i["reference"].as_str().unwrap();
            !name.starts_with("localhost/bb:") && name != "localhost/multi:arch"
        })
        .collect();
    assert!(
        !stage_images.is_empty() && stage_images.iter().all(|i| i["platforms"] == both),
        "{images}"
    );
}
