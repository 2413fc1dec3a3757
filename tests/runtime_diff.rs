//! Diff capture after a sandboxed step: created, modified and deleted files and a
//! replaced directory give the expected entries, whiteouts and opaque marker; the copy
//! fallback gives the same entries as the kernel overlay; and the layer written from the
//! diff has the same digest in root, subuid and single modes. (Here rather than in
//! runtime/tests: the layers are written by the flense crate.)

use std::path::{Path, PathBuf};

use flense::builder::layers::diff::to_layer_entries;
use flense::image::{write_layer, LayerOptions};
use flense_runtime::{DiffEntry, DiffKind, IdMode, Overlay, RootFs, Sandbox, Stdio};
use flense_test_support::rerun::*;
use flense_test_support::users;

const STEP: &str = "
    echo changed >> /data/modify
    rm /data/delete
    echo new > /data/new
    chmod 600 /data/new
    ln -s new /data/link
    rm -rf /dir
    mkdir /dir
    echo fresh > /dir/fresh
";

/// A base layer (busybox plus /data and /dir) and a second layer on top of it.
fn layers(base: &Path) -> Vec<PathBuf> {
    let lower = base.join("lower");
    busybox_rootfs(&lower);
    std::fs::create_dir_all(lower.join("data")).unwrap();
    for f in ["keep", "modify", "delete"] {
        std::fs::write(lower.join("data").join(f), format!("{f}\n")).unwrap();
    }
    std::fs::create_dir_all(lower.join("dir/sub")).unwrap();
    std::fs::write(lower.join("dir/old"), "old\n").unwrap();
    std::fs::write(lower.join("dir/sub/older"), "older\n").unwrap();
    let top = base.join("top");
    std::fs::create_dir_all(top.join("data")).unwrap();
    std::fs::write(top.join("data/keep"), "kept from the top layer\n").unwrap();
    vec![lower, top]
}

fn run_step(base: &Path, name: &str, mode: IdMode, force_copy: bool) -> Vec<DiffEntry> {
    let overlay = Overlay::new(layers(&base.join(name)), base.join(name).join("state"))
        .force_copy(force_copy);
    let mut sandbox = Sandbox::new(RootFs::Overlay(overlay), ["/bin/sh", "-ec", STEP])
        .env("PATH", "/bin")
        .id_mode(mode)
        .stdout(Stdio::Null);
    let mut child = sandbox.spawn().expect("spawn");
    assert!(child.wait().unwrap().success());
    assert_eq!(child.uses_copy_fallback(), force_copy);
    child.diff((0, 0)).expect("diff")
}

/// Path, kind (without host paths), mode and owner of each entry.
fn summary(entries: &[DiffEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                DiffKind::File(host) => {
                    format!("file {:?}", std::fs::read_to_string(host).unwrap())
                }
                DiffKind::Symlink(t) => format!("symlink {}", t.display()),
                other => format!("{other:?}"),
            };
            format!(
                "{} {kind} {:o} {}:{}",
                e.path.display(),
                e.mode,
                e.uid,
                e.gid
            )
        })
        .collect()
}

fn layer_digest(entries: Vec<DiffEntry>) -> String {
    let opts = LayerOptions {
        epoch: 0,
        level: 6,
        threads: 1,
    };
    let (_, digests) = write_layer(to_layer_entries(entries), std::io::sink(), &opts).unwrap();
    digests.digest.to_string()
}

fn mode_for_user_run(mode: &str) -> IdMode {
    mode.parse().unwrap()
}

#[test]
fn step_changes_become_entries_whiteouts_and_opaque_markers() {
    let tmp = scratch();
    let mode = if is_user_run() {
        IdMode::Single
    } else {
        IdMode::Root
    };
    let entries = run_step(tmp.path(), "overlay", mode, false);
    assert_eq!(
        summary(&entries),
        [
            "data Dir 755 0:0",
            "data/delete Whiteout 0 0:0",
            "data/link symlink new 777 0:0",
            "data/modify file \"modify\\nchanged\\n\" 644 0:0",
            "data/new file \"new\\n\" 600 0:0",
            "dir Dir 755 0:0",
            "dir Opaque 0 0:0",
            "dir/fresh file \"fresh\\n\" 644 0:0",
        ]
    );
    rerun_as_test_user(
        "step_changes_become_entries_whiteouts_and_opaque_markers",
        &[],
    );
}

#[test]
fn the_copy_fallback_gives_the_same_entries_as_overlay() {
    let tmp = scratch();
    let mode = if is_user_run() {
        IdMode::Single
    } else {
        IdMode::Root
    };
    let overlay = run_step(tmp.path(), "overlay", mode, false);
    let copied = run_step(tmp.path(), "copy", mode, true);
    assert_eq!(summary(&copied), summary(&overlay));
    assert_eq!(layer_digest(copied), layer_digest(overlay));
    rerun_as_test_user("the_copy_fallback_gives_the_same_entries_as_overlay", &[]);
}

#[test]
fn the_layer_digest_is_the_same_in_every_id_mode() {
    let tmp = scratch();
    if is_user_run() {
        let mode = std::env::var("FLENSE_TEST_ID_MODE").unwrap();
        let digest = layer_digest(run_step(tmp.path(), &mode, mode_for_user_run(&mode), false));
        println!("DIGEST {mode} {digest}");
        return;
    }
    let root = layer_digest(run_step(tmp.path(), "root", IdMode::Root, false));
    let mut modes = vec!["single"];
    if Path::new("/usr/bin/newuidmap").exists() {
        ensure_subid_ranges();
        modes.push("subuid");
    } else {
        eprintln!("newuidmap missing (apt-get install uidmap): subuid mode not compared");
    }
    for mode in modes {
        let out = rerun_as_test_user(
            "the_layer_digest_is_the_same_in_every_id_mode",
            &[("FLENSE_TEST_ID_MODE", mode)],
        );
        let marker = format!("DIGEST {mode} ");
        let digest = out
            .split_once(&marker)
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no digest from the {mode} run:\n{out}"));
        assert_eq!(digest, root, "{mode} differs from root");
    }
}

/// Gives the test user subordinate ID ranges (as root), once.
fn ensure_subid_ranges() {
    let user = users::TEST_USER;
    users::test_user();
    for file in ["/etc/subuid", "/etc/subgid"] {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .unwrap();
        fs2::FileExt::lock_exclusive(&lock).unwrap();
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{user}:"))) {
            use std::io::Write;
            writeln!(&lock, "{user}:300000:65536").unwrap();
        }
    }
}
