//! A Run step's captured tree becomes its layer's unpacked directory (no re-unpack of
//! the blob just written), and it is indistinguishable from what unpacking the blob
//! gives: same paths, kinds, modes, sizes, mtimes, link targets, hard links, whiteouts
//! and opaque markers; cold, `--no-cache` and cached builds give the same image. As
//! root and as an unprivileged user (single-ID mode).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::cli::{flense, flense_bin, ok_output, ok_stdout};
use support::fixtures::busybox_tar_for_test_user;
use support::users::{as_test_user, give_to_test_user};

/// The builder deletes a file of the requirements layer (whiteout), replaces a
/// directory (opaque), edits a file of that layer (copied up), and creates files, a
/// symlink, a hard link, a read-only file, a read-only directory and a file older than
/// the epoch (kept) next to new ones (clamped).
const BLUBBER: &str = r#"version: v4
base: localhost/busybox:latest
lives:
  in: /srv/app
variants:
  built:
    builder:
      requirements: [old.txt, keep.txt, olddir/]
      command: >-
        rm old.txt && rm -rf olddir && mkdir olddir && echo fresh > olddir/fresh.txt &&
        mkdir -p out/deep && echo hello > out/deep/a.txt && ln -s deep/a.txt out/link &&
        ln out/deep/a.txt out/hard && echo ro > out/ro.txt && chmod 444 out/ro.txt &&
        echo old > out/stamped && touch -t 202001020304.05 out/stamped &&
        chmod 750 out/deep && mkdir out/ro && echo x > out/ro/f && chmod 555 out/ro &&
        echo more >> keep.txt
    entrypoint: [cat, out/deep/a.txt]
"#;

/// An epoch between the stamped file (2020) and the build (now), so both clamping and
/// keeping an mtime are exercised.
const EPOCH: &str = "1700000000";

fn project(dir: &Path) -> PathBuf {
    let p = dir.join("adopt");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::create_dir_all(p.join("olddir/sub")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    fs::write(p.join("old.txt"), "old\n").unwrap();
    fs::write(p.join("keep.txt"), "keep\n").unwrap();
    fs::write(p.join("olddir/gone.txt"), "gone\n").unwrap();
    fs::write(p.join("olddir/sub/deeper.txt"), "deeper\n").unwrap();
    p
}

/// How one path of an unpacked layer looks: kind, mode, size, mtime, link target,
/// device number, hard-link count and overlay attributes.
type PathState = (
    String,
    u32,
    u64,
    i64,
    Option<PathBuf>,
    u64,
    u64,
    Vec<(String, Vec<u8>)>,
);

/// Every path below a layer's `diff/` with its state (the root's mtime is the
/// unpacking time, so it is left out), plus the layer's `whiteouts.json`.
fn layer_state(layer_dir: &Path) -> (BTreeMap<PathBuf, PathState>, Value) {
    let diff = layer_dir.join("diff");
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&diff).min_depth(1) {
        let entry = entry.unwrap();
        let path = entry.path();
        let meta = fs::symlink_metadata(path).unwrap();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        let mut xattrs: Vec<(String, Vec<u8>)> = xattr::list(path)
            .map(|names| names.collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .filter(|n| n.contains(".overlay."))
            .map(|n| {
                let v = xattr::get(path, &n).unwrap().unwrap_or_default();
                (n, v)
            })
            .collect();
        xattrs.sort();
        let size = if ft.is_file() { meta.len() } else { 0 };
        out.insert(
            path.strip_prefix(&diff).unwrap().to_path_buf(),
            (
                kind.to_string(),
                meta.mode() & 0o7777,
                size,
                meta.mtime(),
                fs::read_link(path).ok(),
                meta.rdev(),
                if ft.is_dir() { 0 } else { meta.nlink() },
                xattrs,
            ),
        );
    }
    let report =
        serde_json::from_slice(&fs::read(layer_dir.join("whiteouts.json")).unwrap()).unwrap();
    (out, report)
}

/// Runs flense as root or as the test user.
struct Runner {
    user: bool,
}

impl Runner {
    fn cmd(&self, store: &Path) -> Command {
        let mut cmd = if self.user {
            let mut c = as_test_user(&flense_bin());
            c.arg("--root").arg(store);
            c
        } else {
            flense(store)
        };
        cmd.env("SOURCE_DATE_EPOCH", EPOCH);
        cmd
    }

    fn import(&self, store: &Path, tar: &Path) {
        ok_stdout(
            self.cmd(store)
                .arg("import")
                .arg(tar)
                .args(["--tag", "localhost/busybox:latest"]),
        );
    }

    /// Builds `built`; returns the image digest and the build's stderr.
    fn build(&self, store: &Path, project: &Path, extra: &[&str]) -> (String, String) {
        let mut cmd = self.cmd(store);
        cmd.args(["-vv", "build", "built", "-q"]).args(extra);
        if self.user {
            cmd.args(["--userns", "single"]);
        }
        let out = ok_output(cmd.arg("-C").arg(project));
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Unpacks the built image's layers from their blobs.
    fn unpack(&self, store: &Path) {
        ok_stdout(self.cmd(store).args(["unpack", "adopt:built"]));
    }

    /// The diff-ID of the image's top layer (the builder's).
    fn top_diff_id(&self, store: &Path) -> String {
        let out = ok_stdout(self.cmd(store).args(["inspect", "adopt:built"]));
        let image: Value = serde_json::from_str(&out).unwrap();
        let ids = image["config"]["rootfs"]["diff_ids"].as_array().unwrap();
        ids.last().unwrap().as_str().unwrap().to_string()
    }
}

fn layer_dir(store: &Path, diff_id: &str) -> PathBuf {
    store
        .join("layers")
        .join(diff_id.trim_start_matches("sha256:"))
}

fn adopted_layer_matches_the_unpacked_blob(user: bool) {
    let runner = Runner { user };
    let tmp = tempfile::tempdir().unwrap();
    let tar = busybox_tar_for_test_user(tmp.path());
    let p = project(tmp.path());
    let (cold_store, fresh_store) = (tmp.path().join("cold"), tmp.path().join("fresh"));
    if user {
        give_to_test_user(tmp.path());
    }
    runner.import(&cold_store, &tar);
    runner.import(&fresh_store, &tar);

    let (cold, log) = runner.build(&cold_store, &p, &[]);
    let diff_id = runner.top_diff_id(&cold_store);
    assert!(
        log.contains(&format!("adopted the step's tree as layer {diff_id}")),
        "the builder's layer is adopted, not unpacked:\n{log}"
    );
    let adopted = layer_state(&layer_dir(&cold_store, &diff_id));

    // The same layer unpacked from its blob. A cached build reuses the layer without
    // unpacking it (layers are unpacked on first use); `flense unpack` unpacks it.
    let kept = tmp.path().join("adopted-layer");
    fs::rename(layer_dir(&cold_store, &diff_id), &kept).unwrap();
    let (cached, log) = runner.build(&cold_store, &p, &[]);
    assert_eq!(cached, cold);
    assert!(!log.contains("adopted the step's tree"), "{log}");
    assert!(
        !layer_dir(&cold_store, &diff_id).exists(),
        "unpacked lazily"
    );
    runner.unpack(&cold_store);
    let unpacked = layer_state(&layer_dir(&cold_store, &diff_id));
    assert_eq!(adopted.1, unpacked.1, "whiteouts.json");
    assert_eq!(adopted.0, unpacked.0, "adopted vs unpacked layer directory");

    // A --no-cache build in another store: same image, same layer directory.
    let (no_cache, _) = runner.build(&fresh_store, &p, &["--no-cache"]);
    assert_eq!(no_cache, cold, "cold and --no-cache digests");
    assert_eq!(runner.top_diff_id(&fresh_store), diff_id);
    assert_eq!(layer_state(&layer_dir(&fresh_store, &diff_id)), unpacked);

    // The layer has what the step did, not just the same as itself.
    let (paths, report) = &unpacked;
    let state = |p: &str| {
        paths
            .get(Path::new(p))
            .unwrap_or_else(|| panic!("{p} in {paths:?}"))
    };
    assert_eq!(state("srv/app/old.txt").0, "char", "whiteout device");
    assert_eq!(
        state("srv/app/olddir").7,
        if user {
            vec![("user.overlay.opaque".to_string(), b"y".to_vec())]
        } else {
            vec![
                ("trusted.overlay.opaque".to_string(), b"y".to_vec()),
                ("user.overlay.opaque".to_string(), b"y".to_vec()),
            ]
        }
    );
    assert!(!paths.contains_key(Path::new("srv/app/olddir/sub")));
    assert_eq!(
        state("srv/app/out/link").4,
        Some(PathBuf::from("deep/a.txt"))
    );
    assert_eq!(state("srv/app/out/hard").6, 2, "hard link");
    assert_eq!(state("srv/app/out/ro.txt").1, 0o444);
    assert_eq!(state("srv/app/out/deep").1, 0o750);
    assert_eq!(state("srv/app/out/ro").1, 0o555, "read-only directory");
    assert_eq!(state("srv/app/keep.txt").2, 10, "edited base file");
    assert_eq!(
        state("srv/app/out/stamped").3,
        1_577_934_245,
        "older than the epoch"
    );
    assert_eq!(state("srv/app/out/deep/a.txt").3, 1_700_000_000, "clamped");
    assert_eq!(report["whiteouts"], serde_json::json!(["srv/app/old.txt"]));
    assert_eq!(report["opaque"], serde_json::json!(["srv/app/olddir"]));
    if user {
        // The test user must be able to remove its store.
        ok_output(Command::new("chmod").args(["-R", "u+w"]).arg(&kept));
    }
}

#[test]
fn an_adopted_layer_is_the_unpacked_blob_as_root() {
    adopted_layer_matches_the_unpacked_blob(false);
}

#[test]
fn an_adopted_layer_is_the_unpacked_blob_as_a_user() {
    adopted_layer_matches_the_unpacked_blob(true);
}
