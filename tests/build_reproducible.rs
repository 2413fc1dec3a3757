//! Reproducible dependency layers (issue 11 item 6): tool caches are mounted from the
//! store and tools' bookkeeping is dropped, so two cold builds in two empty stores (two
//! CI runners) give the same image — the Node sample as root and as an unprivileged
//! user, an apt variant as root. `--keep-tool-caches` puts `~/.npm` back into the
//! layer, and npm's cache stays in the store for the next build.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::cli::{build_test_variant, flense, flense_bin, ok_stdout};
use support::fixtures::{import_fixture, node_sample, rootfs_tar};
use support::unpacked::{layers_of, tar_listing};
use support::users::{as_test_user, give_to_test_user};

const WMF_BASE: &str = "docker-registry.wikimedia.org/nodejs20-devel:latest";

/// A store with the Node base image.
fn node_store(root: &Path) {
    let local = import_fixture(root, "nodejs-devel");
    ok_stdout(flense(root).args(["tag", &local, WMF_BASE]));
}

/// The store's npm cache directories (one per uid:gid) and whether any holds files.
fn npm_cache_has_files(root: &Path) -> bool {
    let mounts = root.join("cache/mounts");
    let dirs: Vec<PathBuf> = fs::read_dir(&mounts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("tool-cache_npm_"))
        .collect();
    assert!(!dirs.is_empty(), "no npm cache in {}", mounts.display());
    dirs.iter()
        .flat_map(|d| walkdir::WalkDir::new(d).into_iter().flatten())
        .any(|e| e.file_type().is_file())
}

/// Every path of every layer of `reference` above the base image.
fn built_paths(root: &Path, reference: &str) -> Vec<String> {
    layers_of(root, reference)
        .iter()
        .skip(1)
        .flat_map(|(digest, _)| tar_listing(root, digest, false).into_keys())
        .collect()
}

#[test]
fn node_sample_gives_the_same_image_in_two_stores_and_keeps_npms_cache_in_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    node_store(&a);
    node_store(&b);
    let p = node_sample(tmp.path());

    let in_a = build_test_variant(&a, &p, &[]);
    let in_b = build_test_variant(&b, &p, &[]);
    eprintln!("node-service:test as root: {in_a} {in_b}");
    assert_eq!(in_a, in_b, "two cold builds in two stores");
    let paths = built_paths(&a, "node-service:test");
    assert!(
        paths.iter().any(|p| p.ends_with("node_modules/express")),
        "npm installed into the layer"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("home/somebody/.npm")),
        "npm's cache stays out of the layers"
    );
    assert!(npm_cache_has_files(&a), "npm's cache is kept in the store");

    // Blubber's layers: ~/.npm is written into the npm layer, and the key differs.
    let kept = build_test_variant(&a, &p, &["--keep-tool-caches"]);
    assert_ne!(kept, in_a);
    let paths = built_paths(&a, "node-service:test");
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("home/somebody/.npm/_cacache")),
        "--keep-tool-caches keeps ~/.npm in the layer"
    );

    // A changed lockfile re-runs npm on the store's (warm) cache.
    support::fixtures::relock_node_sample(&p);
    let relocked = build_test_variant(&a, &p, &[]);
    assert_ne!(relocked, in_a);
    assert!(npm_cache_has_files(&a));
    assert!(!built_paths(&a, "node-service:test")
        .iter()
        .any(|p| p.starts_with("home/somebody/.npm")));
}

#[test]
fn node_sample_gives_the_same_image_in_two_stores_as_an_unprivileged_user() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let base = tmp.path().join("base.tar");
    fs::copy(rootfs_tar("nodejs-devel"), &base).unwrap();
    let p = node_sample(tmp.path());
    give_to_test_user(tmp.path());
    let bin = flense_bin();
    let mut digests = Vec::new();
    for store in ["a", "b"] {
        let root = tmp.path().join(store);
        let user = |args: &[&str]| {
            let mut cmd = as_test_user(&bin);
            cmd.arg("--root").arg(&root).args(args);
            cmd
        };
        ok_stdout(user(&["import"]).arg(&base).args(["--tag", WMF_BASE]));
        let digest = ok_stdout(user(&["build", "test", "-q", "-C"]).arg(&p));
        digests.push(digest.trim().to_string());
    }
    eprintln!("node-service:test as the test user: {digests:?}");
    assert_eq!(digests[0], digests[1], "two cold builds in two stores");
}

const APT_BLUBBER: &str = r#"version: v4
base: localhost/bookworm:latest
variants:
  withjq:
    apt:
      packages: [jq]
    entrypoint: [jq, --version]
"#;

#[test]
fn an_apt_variant_gives_the_same_image_in_two_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("apt-project");
    fs::create_dir_all(project.join(".pipeline")).unwrap();
    fs::write(project.join(".pipeline/blubber.yaml"), APT_BLUBBER).unwrap();
    let mut digests = Vec::new();
    for store in ["a", "b"] {
        let root = tmp.path().join(store);
        let local = import_fixture(&root, "bookworm");
        ok_stdout(flense(&root).args(["tag", &local, "localhost/bookworm:latest"]));
        let out = ok_stdout(
            flense(&root)
                .args(["build", "withjq", "-q", "-C"])
                .arg(&project),
        );
        digests.push(out.trim().to_string());
    }
    eprintln!("apt withjq as root: {digests:?}");
    assert_eq!(digests[0], digests[1], "two cold builds in two stores");
    let root = tmp.path().join("a");
    let paths = built_paths(&root, "apt-project:withjq");
    assert!(paths.iter().any(|p| p == "usr/bin/jq"), "jq is installed");
    for p in &paths {
        assert!(
            !p.starts_with("var/log/apt/")
                && p != "var/log/dpkg.log"
                && p != "var/cache/apt/pkgcache.bin"
                && !p.starts_with("var/cache/apt/archives/"),
            "bookkeeping or apt's archives in the layer: {p}"
        );
    }
}
