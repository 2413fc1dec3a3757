//! `flense pull` against a real registry filled by skopeo: by tag and digest, OCI and
//! Docker v2s2, multi-platform indexes with `--platform`, rewrites, bad references,
//! and as an unprivileged user.

mod support;

use support::cli::{flense, ok_output, ok_stdout, output};
use support::registry::{
    make_test_image, multi_platform_image, simple_image, TestPlatform, TestRegistry,
};

fn store_index(root: &std::path::Path) -> String {
    std::fs::read_to_string(root.join("index.json")).unwrap()
}

fn blob_exists(root: &std::path::Path, digest: &str) -> bool {
    root.join("blobs/sha256")
        .join(&digest["sha256:".len()..])
        .is_file()
}

#[test]
fn pulls_by_tag_and_by_digest_and_skopeo_reads_the_store() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "base/busybox:v1", &[]);
    let root = tmp.path().join("store");

    let out = ok_stdout(flense(&root).arg("pull").arg(reg.image("base/busybox:v1")));
    assert_eq!(out.trim(), image.digest);
    assert!(blob_exists(&root, &image.manifests[0].2[0]));
    assert!(store_index(&root).contains(&format!("{}/base/busybox:v1", reg.addr)));

    // The store is an OCI layout: skopeo copies the pulled image out of it.
    let check = tmp.path().join("check");
    let status = std::process::Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!(
            "oci:{}:{}/base/busybox:v1",
            root.display(),
            reg.addr
        ))
        .arg(format!("oci:{}:x", check.display()))
        .status()
        .unwrap();
    assert!(status.success());

    let by_digest = format!("{}/base/busybox@{}", reg.addr, image.digest);
    let root2 = tmp.path().join("store2");
    let out = ok_stdout(flense(&root2).arg("pull").arg(&by_digest));
    assert_eq!(out.trim(), image.digest);
    assert!(blob_exists(&root2, &image.manifests[0].2[0]));
}

#[test]
fn pulls_docker_v2s2_images_with_their_original_bytes() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "docker/busybox:v1", &["--format", "v2s2"]);
    let raw = reg.raw_manifest("docker/busybox:v1");
    let root = tmp.path().join("store");
    let out = ok_stdout(
        flense(&root)
            .arg("pull")
            .arg(reg.image("docker/busybox:v1")),
    );
    assert_eq!(out.trim(), support::registry::sha256(&raw));
    let index = store_index(&root);
    assert!(
        index.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{index}"
    );
    // Layers keep their compressed digest.
    assert!(blob_exists(&root, &image.manifests[0].2[0]));
}

#[test]
fn platform_flag_picks_from_a_multi_platform_index() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = multi_platform_image(&tmp.path().join("layout"), "multi");
    image.push_with_skopeo(&reg, "multi/busybox:1", &["--all"]);
    let amd = &image.manifests[1];
    let arm = &image.manifests[0];

    let root = tmp.path().join("default");
    let out = ok_stdout(flense(&root).arg("pull").arg(reg.image("multi/busybox:1")));
    assert_eq!(
        out.trim(),
        amd.1,
        "default is the host platform, linux/amd64"
    );
    assert!(blob_exists(&root, &amd.2[0]) && !blob_exists(&root, &arm.2[0]));

    let root = tmp.path().join("arm");
    let out = ok_stdout(
        flense(&root)
            .args(["pull", "--platform", "linux/arm64"])
            .arg(reg.image("multi/busybox:1")),
    );
    assert_eq!(out.trim(), arm.1);
    assert!(blob_exists(&root, &arm.2[0]) && !blob_exists(&root, &amd.2[0]));

    let out = output(
        flense(&root)
            .args(["pull", "--platform", "linux/s390x"])
            .arg(reg.image("multi/busybox:1")),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no manifest for platform linux/s390x"),
        "{err}"
    );
    assert!(err.contains("linux/arm64, linux/amd64"), "{err}");

    let out = output(
        flense(&root)
            .args(["pull", "--platform", "linux"])
            .arg(reg.image("multi/busybox:1")),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_and_missing_references_are_explained() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let out = output(flense(&root).args(["pull", "Not/Valid:tag!"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"Not/Valid:tag!\""), "{err}");

    let out = output(flense(&root).arg("pull").arg(reg.image("nothing/here:v9")));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("manifest v9 not found") && err.contains("nothing/here"),
        "{err}"
    );
}

#[test]
fn an_unreachable_registry_names_each_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = output(flense(&tmp.path().join("store")).args(["pull", "127.0.0.1:1/x"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("127.0.0.1:1: GET manifest latest failed: "),
        "{err}"
    );
    for cause in ["error sending request", "Connection refused"] {
        assert_eq!(err.matches(cause).count(), 1, "{cause:?} in {err}");
    }
}

#[test]
fn rewrites_send_a_production_name_to_a_local_mirror() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "nodejs-devel:0.1", &[]);
    let config = tmp.path().join("registries.toml");
    std::fs::write(
        &config,
        format!(
            "[[rewrite]]\nfrom = \"docker-registry.wikimedia.org/nodejs*\"\nto = \"{}/nodejs-devel\"\n",
            reg.addr
        ),
    )
    .unwrap();
    let root = tmp.path().join("store");
    let out = ok_stdout(
        flense(&root)
            .arg("pull")
            .arg("--registries-config")
            .arg(&config)
            .arg("docker-registry.wikimedia.org/nodejs20-devel:0.1"),
    );
    assert_eq!(out.trim(), image.digest);
    // Stored under the name the user asked for, so builds find it.
    assert!(store_index(&root).contains("docker-registry.wikimedia.org/nodejs20-devel:0.1"));

    // The same through the environment variable.
    let root = tmp.path().join("store2");
    ok_stdout(
        flense(&root)
            .env("FLENSE_REGISTRIES_CONFIG", &config)
            .arg("pull")
            .arg("docker-registry.wikimedia.org/nodejs22-devel:0.1"),
    );

    std::fs::write(&config, "[[rewrite]]\nfrom = 'x'\n").unwrap();
    let out = output(
        flense(&root)
            .arg("pull")
            .arg("--registries-config")
            .arg(&config)
            .arg("busybox"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("registries.toml") && err.contains("to"),
        "{err}"
    );
}

#[test]
fn unprivileged_user_pulls_into_its_own_store() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "base/busybox:v1", &[]);
    let home = tempfile::tempdir().unwrap();
    support::users::give_to_test_user(home.path());
    let root = home.path().join("store");
    let out = ok_output(
        support::users::as_test_user(&support::cli::flense_bin())
            .env("HOME", home.path())
            .arg("--root")
            .arg(&root)
            .arg("pull")
            .arg(reg.image("base/busybox:v1")),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), image.digest);
    assert!(blob_exists(&root, &image.manifests[0].2[0]));
}

#[test]
fn mirrors_are_tried_first_and_the_registry_last() {
    let origin = TestRegistry::start();
    let mirror = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let cached = simple_image(&tmp.path().join("cached"), "v1");
    cached.push_with_skopeo(&mirror, "base/busybox:v1", &[]);
    let fresh = simple_image(&tmp.path().join("fresh"), "v2");
    fresh.push_with_skopeo(&origin, "base/busybox:v2", &[]);
    let config = tmp.path().join("registries.toml");
    std::fs::write(
        &config,
        format!(
            "[[mirror]]\nprefix = \"{}\"\nmirrors = [\"{}\"]\n",
            origin.addr, mirror.addr
        ),
    )
    .unwrap();
    let root = tmp.path().join("store");
    // Only the mirror has v1: served from there.
    let out = ok_stdout(
        flense(&root)
            .arg("pull")
            .arg("--registries-config")
            .arg(&config)
            .arg(origin.image("base/busybox:v1")),
    );
    assert_eq!(out.trim(), cached.digest);
    assert!(store_index(&root).contains(&origin.image("base/busybox:v1")));
    // The mirror lacks v2: the registry itself answers.
    let out = ok_stdout(
        flense(&root)
            .arg("pull")
            .arg("--registries-config")
            .arg(&config)
            .arg(origin.image("base/busybox:v2")),
    );
    assert_eq!(out.trim(), fresh.digest);
}

#[test]
fn single_platform_image_for_another_platform_is_pulled_with_a_warning() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = make_test_image(
        &tmp.path().join("layout"),
        "arm",
        &[TestPlatform {
            architecture: "arm64",
            marker: "arm64 only".into(),
        }],
    );
    image.push_with_skopeo(&reg, "arm/busybox:1", &[]);
    let root = tmp.path().join("store");
    let out = output(flense(&root).arg("pull").arg(reg.image("arm/busybox:1")));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is for linux/arm64, not linux/amd64"), "{err}");
    assert!(err.contains("(linux/arm64)"), "{err}");
}

#[test]
fn pull_unpacks_the_layers_unless_told_not_to_and_an_unpack_failure_keeps_the_blobs() {
    use support::unpacked::{assert_unpacked, layer_dir, no_layers_unpacked};
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "unpack/busybox:v1", &[]);
    let name = reg.image("unpack/busybox:v1");

    let root = tmp.path().join("store");
    let out = ok_output(flense(&root).arg("pull").arg(&name));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), image.digest);
    assert_unpacked(&root, &name);
    // Pulling again finds everything in place.
    let again = ok_stdout(flense(&root).arg("pull").arg(&name));
    assert_eq!(again.trim(), image.digest);
    assert_unpacked(&root, &name);

    let lazy = tmp.path().join("lazy");
    let out = ok_stdout(flense(&lazy).args(["pull", "--no-unpack"]).arg(&name));
    assert_eq!(out.trim(), image.digest);
    assert!(no_layers_unpacked(&lazy));
    assert!(blob_exists(&lazy, &image.manifests[0].2[0]));

    // Where the layer should go there is a file: the pull itself succeeds, the unpack
    // fails with exit 1 naming the layer, and the blobs stay for a later try.
    let layer = &image.manifests[0].2[0];
    let (_, diff_id) = support::registry::busybox_layer("amd64 v1");
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(broken.join("layers")).unwrap();
    std::fs::write(layer_dir(&broken, &diff_id), b"in the way").unwrap();
    let out = output(flense(&broken).arg("pull").arg(&name));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(layer.as_str()), "{stderr}");
    assert!(blob_exists(&broken, layer));
    assert!(blob_exists(&broken, &image.digest));
}

#[test]
fn zstd_layers_are_pulled_unpacked_and_run() {
    use support::unpacked::assert_unpacked;
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(
        &reg,
        "zstd/busybox:v1",
        &["--dest-compress-format", "zstd", "--format", "oci"],
    );
    let name = reg.image("zstd/busybox:v1");
    let root = tmp.path().join("store");
    ok_output(flense(&root).arg("pull").arg(&name));
    let inspect: serde_json::Value =
        serde_json::from_str(&ok_stdout(flense(&root).args(["inspect", &name]))).unwrap();
    let layer = &inspect["layers"][0];
    assert_eq!(
        layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "skopeo recompressed the layer: {inspect}"
    );
    // Same files, same diff-ID as the gzip original.
    let (_, diff_id) = support::registry::busybox_layer("amd64 v1");
    assert_eq!(layer["diffId"], diff_id.as_str());
    assert_unpacked(&root, &name);
    let out = ok_stdout(flense(&root).args([
        "run",
        "--image",
        &name,
        "--",
        "/bin/busybox",
        "echo",
        "zstd-ok",
    ]));
    assert_eq!(out.trim(), "zstd-ok");
}

#[test]
fn digest_pulls_are_named_kept_by_prune_and_removed_by_rmi() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "pinned/busybox:v1", &[]);
    let root = tmp.path().join("store");
    let by_digest = format!("{}/pinned/busybox@{}", reg.addr, image.digest);
    ok_output(flense(&root).arg("pull").arg(&by_digest));
    let listed = ok_stdout(flense(&root).args(["images"]));
    assert!(
        listed.contains(&format!("{}/pinned/busybox@{}", reg.addr, image.digest))
            || listed.contains("pinned/busybox@sha256:"),
        "{listed}"
    );

    // prune keeps what a name reaches, digest names included.
    ok_output(flense(&root).arg("prune"));
    let layer = &image.manifests[0].2[0];
    assert!(
        blob_exists(&root, layer),
        "prune removed a digest-pulled image"
    );
    ok_stdout(flense(&root).args(["run", "--image", &by_digest, "--", "/bin/busybox", "true"]));

    // A second name: removing one keeps the content, removing the last deletes it.
    ok_output(flense(&root).args(["tag", &by_digest, "local/kept:1"]));
    // A typo removes nothing and exits 2.
    let out = output(flense(&root).args(["rmi", "local/kept:1", "local/nope:1"]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(store_index(&root).contains("local/kept:1"));
    // Removing one of two names keeps the content.
    ok_output(flense(&root).args(["rmi", "local/kept:1"]));
    assert!(!store_index(&root).contains("local/kept:1"));
    assert!(blob_exists(&root, layer));
    ok_output(flense(&root).args(["tag", &by_digest, "local/kept:1"]));

    let out = ok_stdout(flense(&root).args(["rmi", &by_digest]));
    assert!(out.contains("Untagged"), "{out}");
    assert!(
        !store_index(&root).contains("local/kept:1"),
        "a digest removes every name"
    );
    assert!(!blob_exists(&root, layer));
    assert!(!blob_exists(&root, &image.digest));
    assert!(
        root.join("layers").read_dir().unwrap().next().is_none(),
        "unpacked layers stay"
    );
}

#[test]
fn all_platforms_keeps_the_index_complete_for_save_and_an_air_gapped_load() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = multi_platform_image(&tmp.path().join("layout"), "multi");
    image.push_with_skopeo(&reg, "multi/busybox:1", &["--all"]);
    let reference = reg.image("multi/busybox:1");
    let root = tmp.path().join("store");
    let out = ok_output(flense(&root).args(["pull", "--all-platforms", &reference]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), image.digest);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(all platforms)"), "{err}");
    for (_, manifest, layers) in &image.manifests {
        assert!(blob_exists(&root, manifest), "{manifest}");
        assert!(layers.iter().all(|l| blob_exists(&root, l)), "{layers:?}");
    }

    // The oci-archive holds the index whole: skopeo copies every platform out of it.
    let archive = tmp.path().join("multi.tar");
    ok_output(flense(&root).args(["save", &reference, "-o"]).arg(&archive));
    let copy = tmp.path().join("copy");
    let status = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--all"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("oci:{}:x", copy.display()))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(image
        .manifests
        .iter()
        .all(|(_, _, l)| blob_exists(&copy, &l[0])));

    // Loaded where no registry is reachable: every platform, and the host's runs.
    let offline = tmp.path().join("offline");
    ok_output(flense(&offline).arg("load").arg(&archive));
    assert!(image
        .manifests
        .iter()
        .all(|(_, _, l)| blob_exists(&offline, &l[0])));
    let marker = ok_stdout(flense(&offline).args([
        "run",
        "--image",
        &reference,
        "--",
        "sh",
        "-c",
        "read m < /etc/flense-platform; echo $m",
    ]));
    assert_eq!(marker.trim(), "amd64");
}
