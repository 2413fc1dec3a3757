//! `flense push` to a real registry, checked with skopeo: the registry ends up with the
//! very manifest and blobs of the store (a pulled layer is never recompressed), blobs
//! are mounted within a registry, a repeated push sends nothing.

mod support;

use std::process::Command;

use support::cli::{flense, ok_output, ok_stdout, output};
use support::registry::{multi_platform_image, simple_image, TestRegistry};

fn layer_digests(manifest: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pushes_pulled_image_with_original_blobs_mounts_and_noop() {
    let source = TestRegistry::start();
    let dest = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&source, "base/busybox:v1", &["--format", "v2s2"]);
    let source_manifest = source.raw_manifest("base/busybox:v1");
    let root = tmp.path().join("store");
    ok_stdout(
        flense(&root)
            .arg("pull")
            .arg(source.image("base/busybox:v1")),
    );

    // Another registry: every blob is uploaded, byte for byte.
    let out = ok_output(
        flense(&root)
            .arg("push")
            .arg(source.image("base/busybox:v1"))
            .arg(dest.image("team/app:1")),
    );
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("uploaded"), "{stderr}");
    let pushed = dest.raw_manifest("team/app:1");
    assert_eq!(pushed, source_manifest, "manifest bytes unchanged");
    assert_eq!(digest, support::registry::sha256(&pushed));
    assert_eq!(layer_digests(&pushed), image.manifests[0].2);
    dest.copy_out_with_skopeo("team/app:1", &tmp.path().join("copy1"), "out", &[]);

    // Same registry, other repository: blobs are mounted, not uploaded.
    let out = ok_output(
        flense(&root)
            .arg("push")
            .arg(source.image("base/busybox:v1"))
            .arg(source.image("other/app:2")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mounted") && !stderr.contains("uploaded"),
        "{stderr}"
    );
    assert_eq!(source.raw_manifest("other/app:2"), source_manifest);

    // Again: nothing to send.
    let out = output(
        flense(&root)
            .arg("push")
            .arg(source.image("base/busybox:v1"))
            .arg(dest.image("team/app:1")),
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already in the registry") && !stderr.contains("uploaded"),
        "{stderr}"
    );
}

#[test]
fn pushes_an_image_another_tool_put_in_the_store_by_default_name() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    let root = tmp.path().join("store");
    // skopeo writes into the store's OCI layout under the destination's full name.
    let name = reg.image("made/elsewhere:3");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(image.skopeo_ref())
        .arg(format!("oci:{}:{name}", root.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ok_stdout(flense(&root).arg("push").arg(&name));
    assert_eq!(out.trim(), image.digest);
    let pushed = reg.raw_manifest("made/elsewhere:3");
    assert_eq!(support::registry::sha256(&pushed), image.digest);
    reg.copy_out_with_skopeo("made/elsewhere:3", &tmp.path().join("copy"), "out", &[]);
}

#[test]
fn push_errors_are_usage_errors_when_the_source_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let out = output(flense(&root).args(["push", "127.0.0.1:1/not/there:1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not/there"));
    let out = output(flense(&root).args(["push", "Bad Ref"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unreachable_registry_fails_with_the_registry_named() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "base/busybox:v1", &[]);
    let root = tmp.path().join("store");
    ok_stdout(flense(&root).arg("pull").arg(reg.image("base/busybox:v1")));
    // A port nobody listens on (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = output(
        flense(&root)
            .arg("push")
            .arg(reg.image("base/busybox:v1"))
            .arg(format!("127.0.0.1:{port}/x:1")),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn unprivileged_user_pushes() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "base/busybox:v1", &[]);
    let home = tempfile::tempdir().unwrap();
    support::users::give_to_test_user(home.path());
    let root = home.path().join("store");
    let run = |args: &[String]| {
        let out = ok_output(
            support::users::as_test_user(&support::cli::flense_bin())
                .env("HOME", home.path())
                .arg("--root")
                .arg(&root)
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(&["pull".into(), reg.image("base/busybox:v1")]);
    let digest = run(&[
        "push".into(),
        reg.image("base/busybox:v1"),
        reg.image("user/copy:1"),
    ]);
    assert_eq!(digest, image.digest);
    assert_eq!(
        support::registry::sha256(&reg.raw_manifest("user/copy:1")),
        image.digest
    );
}

#[test]
fn pushes_a_multi_platform_index_with_every_platform() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = multi_platform_image(&tmp.path().join("layout"), "multi");
    let root = tmp.path().join("store");
    let name = "localhost/multi/busybox:1";
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--all"])
        .arg(image.skopeo_ref())
        .arg(format!("oci:{}:{name}", root.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ok_stdout(
        flense(&root)
            .arg("push")
            .arg(name)
            .arg(reg.image("multi/busybox:1")),
    );
    assert_eq!(out.trim(), image.digest, "the index itself is pushed");
    let index = reg.raw_manifest("multi/busybox:1");
    assert_eq!(support::registry::sha256(&index), image.digest);
    // Each platform's manifest and layers arrived: skopeo copies them all back out.
    let check = tmp.path().join("check");
    reg.copy_out_with_skopeo("multi/busybox:1", &check, "x", &["--all"]);
    for (_, manifest, layers) in &image.manifests {
        for digest in std::iter::once(manifest).chain(layers) {
            assert!(check
                .join("blobs/sha256")
                .join(&digest["sha256:".len()..])
                .is_file());
        }
    }
}
