//! The local image verbs through the CLI: import, images, inspect, tag, save, load,
//! prune; peers (umoci, skopeo, podman) reading what flense writes; reproducibility;
//! rootless use.

mod support;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::cli::{flense, flense_bin, ok_stdout, output};
use support::fixtures::{hostile_tar, import_fixture, rootfs_tar};
use support::users::{as_test_user, give_to_test_user};

fn inspect(root: &Path, reference: &str) -> Value {
    serde_json::from_str(&ok_stdout(flense(root).args(["inspect", reference]))).unwrap()
}

fn images_json(root: &Path) -> Vec<Value> {
    serde_json::from_str(&ok_stdout(flense(root).args(["images", "--json"]))).unwrap()
}

fn digest_of(root: &Path, reference: &str) -> String {
    inspect(root, reference)["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A small rootfs tarball with late mtimes, odd owners and unsorted entries.
fn small_rootfs(dir: &Path, marker: &str) -> PathBuf {
    let path = dir.join(format!("small-{marker}.tar"));
    let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8], mtime: u64, uid: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(mtime);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_username("someone").unwrap();
        builder.append_data(&mut h, name, data).unwrap();
    };
    add(
        "zeta",
        tar::EntryType::Regular,
        marker.as_bytes(),
        4_000_000_000,
        1000,
    );
    add("etc", tar::EntryType::Directory, b"", 1_700_000_000, 0);
    add(
        "etc/hostname",
        tar::EntryType::Regular,
        b"box\n",
        1_700_000_000,
        0,
    );
    add("alpha", tar::EntryType::Regular, b"a", 5, 33);
    builder.finish().unwrap();
    path
}

#[test]
fn import_lists_inspects_and_tags_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let reference = import_fixture(&root, "busybox");
    assert_eq!(reference, "localhost/busybox:latest");

    let table = ok_stdout(flense(&root).arg("images"));
    assert!(table.starts_with("REFERENCE"), "{table}");
    let info = inspect(&root, "busybox");
    let digest = info["digest"].as_str().unwrap();
    assert!(
        table.contains("localhost/busybox:latest") && table.contains(digest),
        "{table}"
    );
    assert_eq!(info["reference"], "localhost/busybox:latest");
    assert_eq!(info["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        info["config"]["rootfs"]["diff_ids"][0],
        info["layers"][0]["diffId"]
    );
    assert_eq!(info["config"]["created"], "1970-01-01T00:00:00Z");
    assert_eq!(
        info["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    ok_stdout(flense(&root).args(["tag", "busybox", "localhost:5000/x/y:tag"]));
    let list = images_json(&root);
    let refs: Vec<&str> = list
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        vec!["localhost/busybox:latest", "localhost:5000/x/y:tag"]
    );
    assert!(list
        .iter()
        .all(|i| i["digest"] == digest && i["size"].as_u64().unwrap() > 500_000));
    assert_eq!(digest_of(&root, &format!("@{digest}")), digest);
    assert_eq!(digest_of(&root, "localhost:5000/x/y:tag"), digest);

    // Short names also find Docker Hub names (what `pull busybox` stores).
    ok_stdout(flense(&root).args(["tag", "busybox", "docker.io/library/hubonly:1"]));
    assert_eq!(
        inspect(&root, "hubonly:1")["reference"],
        "docker.io/library/hubonly:1"
    );
}

#[test]
fn bad_references_and_unknown_images_exit_2_with_the_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    for args in [
        vec!["inspect", "nothere"],
        vec!["tag", "nothere", "x"],
        vec!["inspect", "Bad:Name:x"],
    ] {
        let out = output(flense(&root).args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(args[1]) || stderr.contains("nothere"),
            "{stderr}"
        );
    }
    let out = output(
        flense(&root)
            .args(["load"])
            .arg(tmp.path().join("missing.tar")),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn umoci_and_skopeo_read_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let reference = import_fixture(&root, "busybox");
    let info = inspect(&root, &reference);

    let bundle = tmp.path().join("bundle");
    let out = output(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{reference}", root.display()))
            .arg(&bundle),
    );
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert_eq!(
        fs::read_link(bundle.join("rootfs/bin/sh")).unwrap(),
        PathBuf::from("/bin/busybox")
    );

    let out = ok_stdout(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{reference}", root.display())),
    );
    let skopeo: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(skopeo["Digest"], info["digest"]);
    assert_eq!(skopeo["Layers"][0], info["layers"][0]["digest"]);
}

#[test]
fn save_and_load_round_trip_in_both_archive_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let reference = import_fixture(&root, "busybox");
    ok_stdout(flense(&root).args(["tag", &reference, "localhost/other:v1"]));
    let digest = digest_of(&root, &reference);

    for format in ["oci-archive", "docker-archive"] {
        let archive = tmp.path().join(format!("{format}.tar"));
        ok_stdout(
            flense(&root)
                .args(["save", "busybox", "other:v1", "--format", format, "-o"])
                .arg(&archive),
        );
        let fresh = tmp.path().join(format!("fresh-{format}"));
        let loaded = ok_stdout(flense(&fresh).arg("load").arg(&archive));
        assert!(
            loaded.contains("localhost/busybox:latest") && loaded.contains("localhost/other:v1"),
            "{loaded}"
        );
        // Layers are re-gzipped reproducibly, so even a docker-archive (plain tar
        // layers) loads back to the very same manifest.
        assert_eq!(digest_of(&fresh, "busybox"), digest, "{format}");
        assert_eq!(digest_of(&fresh, "other:v1"), digest, "{format}");
        let transport = if format == "oci-archive" {
            format!("oci-archive:{}:localhost/busybox:latest", archive.display())
        } else {
            format!(
                "docker-archive:{}:localhost/busybox:latest",
                archive.display()
            )
        };
        ok_stdout(Command::new("skopeo").arg("inspect").arg(transport));
    }
    // Saving is reproducible too.
    let again = tmp.path().join("again.tar");
    ok_stdout(
        flense(&root)
            .args(["save", "busybox", "other:v1", "-o"])
            .arg(&again),
    );
    assert_eq!(
        fs::read(&again).unwrap(),
        fs::read(tmp.path().join("oci-archive.tar")).unwrap()
    );
}

#[test]
fn podman_loads_a_docker_archive() {
    assert!(
        Command::new("podman").arg("--version").output().is_ok(),
        "podman is not installed (scripts/test installs it: apt-get install podman)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_fixture(&root, "busybox");
    let archive = tmp.path().join("docker.tar");
    ok_stdout(
        flense(&root)
            .args(["save", "busybox", "--format", "docker-archive", "-o"])
            .arg(&archive),
    );
    let podman = |args: &[&str]| {
        let mut cmd = Command::new("podman");
        cmd.arg("--root").arg(tmp.path().join("podman-root"));
        cmd.arg("--runroot").arg(tmp.path().join("podman-run"));
        cmd.args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]);
        cmd.args(args);
        cmd
    };
    let loaded = ok_stdout(&mut podman(&["load", "-i", archive.to_str().unwrap()]));
    assert!(loaded.contains("localhost/busybox:latest"), "{loaded}");
    let listed = ok_stdout(&mut podman(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]));
    assert!(listed.contains("localhost/busybox:latest"), "{listed}");
}

#[test]
fn prune_removes_what_no_tag_reaches_and_keeps_tagged_images() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let first = small_rootfs(tmp.path(), "first");
    let second = small_rootfs(tmp.path(), "second");
    ok_stdout(
        flense(&root)
            .arg("import")
            .arg(&first)
            .args(["--tag", "app"]),
    );
    let old = inspect(&root, "app");
    ok_stdout(
        flense(&root)
            .arg("import")
            .arg(&second)
            .args(["--tag", "app"]),
    );
    let import_busybox = import_fixture(&root, "busybox");
    let kept = inspect(&root, &import_busybox);
    let new = inspect(&root, "app");
    assert_ne!(old["digest"], new["digest"]);

    let blob = |d: &Value| {
        root.join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    assert!(blob(&old["digest"]).is_file());
    let out = ok_stdout(flense(&root).arg("prune"));
    assert!(out.contains("Removed 3 blobs"), "{out}"); // old manifest, config and layer
    assert!(!blob(&old["digest"]).exists());
    assert!(!blob(&old["layers"][0]["digest"]).exists());
    for image in [&kept, &new] {
        assert!(blob(&image["digest"]).is_file());
        assert!(blob(&image["configDigest"]).is_file());
        assert!(blob(&image["layers"][0]["digest"]).is_file());
    }
    assert_eq!(digest_of(&root, "app"), new["digest"].as_str().unwrap());
    assert!(ok_stdout(flense(&root).arg("prune")).contains("Removed 0 blobs"));
}

#[test]
fn import_is_reproducible_normalised_and_clamped() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = small_rootfs(tmp.path(), "repro");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok_stdout(
        flense(&a)
            .arg("import")
            .arg(&rootfs)
            .args(["--tag", "repro"]),
    );
    ok_stdout(
        flense(&b)
            .arg("import")
            .arg(&rootfs)
            .args(["--tag", "repro"]),
    );
    assert_eq!(digest_of(&a, "repro"), digest_of(&b, "repro"));

    // SOURCE_DATE_EPOCH moves `created` and the clamp, and so the digest.
    let c = tmp.path().join("c");
    ok_stdout(
        flense(&c)
            .env("SOURCE_DATE_EPOCH", "1000000000")
            .arg("import")
            .arg(&rootfs)
            .args(["--tag", "repro"]),
    );
    let info = inspect(&c, "repro");
    assert_eq!(info["config"]["created"], "2001-09-09T01:46:40Z");
    assert_ne!(info["digest"].as_str().unwrap(), digest_of(&a, "repro"));

    let layer = info["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let mut tar = Vec::new();
    flense_gunzip(&c.join("blobs/sha256").join(layer), &mut tar);
    let mut archive = tar::Archive::new(&tar[..]);
    let entries: Vec<(String, u64, u64, Option<String>)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                h.username().unwrap().map(str::to_owned),
            )
        })
        .collect();
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        vec!["alpha", "etc", "etc/hostname", "zeta"],
        "sorted"
    );
    assert!(
        entries.iter().all(|e| e.1 <= 1_000_000_000),
        "mtimes clamped: {entries:?}"
    );
    assert_eq!(entries[0].1, 5, "earlier mtimes kept");
    assert_eq!((entries[3].2, entries[0].2), (1000, 33), "owners kept");
    assert!(
        entries.iter().all(|e| e.3.as_deref() == Some("")),
        "user names dropped"
    );
}

fn flense_gunzip(path: &Path, out: &mut Vec<u8>) {
    flate2::read::MultiGzDecoder::new(fs::File::open(path).unwrap())
        .read_to_end(out)
        .unwrap();
}

#[test]
fn hostile_rootfs_tarballs_are_refused_on_import() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let out = output(
        flense(&root)
            .arg("import")
            .arg(hostile_tar("dotdot.tar"))
            .args(["--tag", "evil"]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("escaped-dotdot"));
    // An absolute path is normalised into the image, not refused.
    ok_stdout(
        flense(&root)
            .arg("import")
            .arg(hostile_tar("absolute.tar"))
            .args(["--tag", "abs"]),
    );
    assert!(!Path::new("/escaped-absolute").exists());
}

#[test]
fn a_corrupted_blob_is_refused_on_read() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    ok_stdout(
        flense(&root)
            .arg("import")
            .arg(small_rootfs(tmp.path(), "c"))
            .args(["--tag", "c"]),
    );
    let config = inspect(&root, "c")["configDigest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let path = root.join("blobs/sha256").join(config);
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 1;
    fs::write(&path, bytes).unwrap();
    let out = output(flense(&root).args(["inspect", "c"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("corrupt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unprivileged_user_imports_and_lists_images_in_its_own_store() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("busybox.tar");
    fs::copy(rootfs_tar("busybox"), &rootfs).unwrap();
    let data = tmp.path().join("xdg-data");
    fs::create_dir(&data).unwrap();
    give_to_test_user(tmp.path());
    let tmp_mode = fs::metadata(tmp.path()).unwrap();
    assert!(tmp_mode.is_dir());

    // No --root: the default store is $XDG_DATA_HOME/flense.
    let run = |args: &[&str]| {
        let mut cmd = as_test_user(&flense_bin());
        cmd.env("XDG_DATA_HOME", &data).args(args);
        cmd
    };
    let imported = ok_stdout(&mut run(&[
        "import",
        rootfs.to_str().unwrap(),
        "--tag",
        "busybox",
    ]));
    assert!(
        imported.starts_with("localhost/busybox:latest sha256:"),
        "{imported}"
    );
    let listed = ok_stdout(&mut run(&["images"]));
    assert!(listed.contains("localhost/busybox:latest"), "{listed}");
    assert!(data.join("flense/index.json").is_file());

    // Same rootfs, same digest as when root imports it.
    let as_root = tmp.path().join("root-store");
    import_fixture(&as_root, "busybox");
    assert!(imported.trim().ends_with(&digest_of(&as_root, "busybox")));
}

#[test]
fn import_can_write_a_docker_v2s2_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let rootfs = small_rootfs(tmp.path(), "docker");
    ok_stdout(
        flense(&root)
            .arg("import")
            .arg(&rootfs)
            .args(["--tag", "d", "--format", "docker"]),
    );
    ok_stdout(
        flense(&root)
            .arg("import")
            .arg(&rootfs)
            .args(["--tag", "o"]),
    );
    let docker = inspect(&root, "d");
    let oci = inspect(&root, "o");
    assert_eq!(
        docker["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        docker["manifest"]["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        docker["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    // Same blobs, different manifest.
    assert_eq!(docker["layers"][0]["digest"], oci["layers"][0]["digest"]);
    assert_eq!(docker["configDigest"], oci["configDigest"]);
    assert_ne!(docker["digest"], oci["digest"]);
}

#[test]
fn import_and_load_unpack_the_layers_unless_told_not_to() {
    use support::unpacked::{assert_unpacked, no_layers_unpacked};
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let reference = import_fixture(&root, "busybox");
    assert_unpacked(&root, &reference);

    let lazy = tmp.path().join("lazy");
    ok_stdout(
        flense(&lazy)
            .arg("import")
            .arg(rootfs_tar("busybox"))
            .args(["--tag", "busybox", "--no-unpack"]),
    );
    assert!(no_layers_unpacked(&lazy));
    // Unpacking changes no digest: the lazy store holds the very same image.
    assert_eq!(digest_of(&lazy, "busybox"), digest_of(&root, &reference));
    ok_stdout(flense(&lazy).args(["unpack", "busybox"]));
    assert_unpacked(&lazy, "busybox");

    for format in ["oci-archive", "docker-archive"] {
        let archive = tmp.path().join(format!("{format}.tar"));
        ok_stdout(
            flense(&root)
                .args(["save", "busybox", "--format", format, "-o"])
                .arg(&archive),
        );
        let loaded = tmp.path().join(format!("loaded-{format}"));
        ok_stdout(flense(&loaded).arg("load").arg(&archive));
        assert_unpacked(&loaded, "busybox");
        let not_unpacked = tmp.path().join(format!("not-unpacked-{format}"));
        ok_stdout(
            flense(&not_unpacked)
                .args(["load", "--no-unpack"])
                .arg(&archive),
        );
        assert!(no_layers_unpacked(&not_unpacked), "{format}");
        assert_eq!(
            digest_of(&not_unpacked, "busybox"),
            digest_of(&root, "busybox")
        );
    }
}

#[test]
fn an_unprivileged_import_unpacks_user_owned_files() {
    let tmp = tempfile::tempdir().unwrap();
    give_to_test_user(tmp.path());
    let root = tmp.path().join("store");
    let rootfs = tmp.path().join("small.tar");
    fs::copy(small_rootfs(tmp.path(), "user"), &rootfs).unwrap();
    give_to_test_user(tmp.path());
    let out = output(
        as_test_user(&flense_bin())
            .arg("--root")
            .arg(&root)
            .arg("import")
            .arg(&rootfs)
            .args(["--tag", "small"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Same paths, modes, sizes, links and mtimes as the layer; the user's own files.
    support::unpacked::assert_unpacked_with(&root, "small", false);
    let (uid, _) = support::users::test_user();
    let layers = support::unpacked::layers_of(&root, "small");
    let diff = support::unpacked::layer_dir(&root, &layers[0].1).join("diff");
    for name in ["zeta", "alpha", "etc/hostname"] {
        let meta = fs::symlink_metadata(diff.join(name)).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), uid, "{name}");
    }
    assert_eq!(fs::read(diff.join("zeta")).unwrap(), b"user");
    // The true owners, for rootless builds, are indexed from the tar at import time.
    let hex = &layers[0].1["sha256:".len()..];
    let owners = fs::read_to_string(root.join(format!("cache/owners/{hex}.tsv"))).unwrap();
    assert!(
        owners.contains("zeta") && owners.contains("1000"),
        "{owners}"
    );
}
