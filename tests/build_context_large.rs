//! Large build contexts (issue 19): a context of 20,000 small files copied by
//! `copies: [local]`, rebuilt in one store after each kind of change — a file's
//! content, a deletion, a rename, a chmod, a file replaced by a symlink, a
//! `.dockerignore` change — gives the image a `--no-cache` build of the same tree in a
//! fresh store gives. (Rebuilds decide "unchanged" from stat data: the stat cache and
//! the context's stat fingerprint; this checks that no change slips through.) Each
//! rebuild's layer is rewritten from the previous one: only the entries that changed
//! are read from the context, which the build's debug log counts.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::process::Command;

use support::cli::{build_test_variant, flense, flense_bin, ok_stdout, output};
use support::fixtures::{busybox_tar_for_test_user, import_fixture};
use support::users::{as_test_user, give_to_test_user};

const BLUBBER: &str = r#"version: v4
lives:
  in: /srv/app
variants:
  test:
    base: localhost/busybox:latest
    copies: [local]
    entrypoint: [/bin/sh]
"#;

const DIRS: usize = 80;
const FILES_PER_DIR: usize = 250;

fn project(dir: &Path) -> PathBuf {
    project_of(dir, DIRS)
}

/// A project whose context has `dirs` directories of [`FILES_PER_DIR`] files.
fn project_of(dir: &Path, dirs: usize) -> PathBuf {
    let p = dir.join("large");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    for d in 0..dirs {
        let sub = p.join(format!("src/d{d:03}"));
        fs::create_dir_all(&sub).unwrap();
        for f in 0..FILES_PER_DIR {
            fs::write(sub.join(format!("f{f:03}.txt")), format!("file {d}/{f}\n")).unwrap();
        }
    }
    fs::write(p.join(".dockerignore"), "*.log\n").unwrap();
    p
}

/// The image a `--no-cache` build of `project` gives in a fresh store.
fn fresh_build(tmp: &Path, round: &str, project: &Path) -> String {
    let root = tmp.join(format!("fresh-{round}"));
    import_fixture(&root, "busybox");
    let digest = build_test_variant(&root, project, &["--no-cache"]);
    fs::remove_dir_all(&root).unwrap();
    digest
}

/// A rebuild of `project` in `store`: the image digest, and how many of the copy
/// layer's entries were taken from the layer the previous build wrote, of how many
/// (`None`: the layer was written afresh, or not at all).
fn rebuild(store: &Path, project: &Path) -> (String, Option<(usize, usize)>) {
    rebuild_with(flense(store), project)
}

/// [`rebuild`] with `flense` (a command naming the store) run as given.
fn rebuild_with(mut flense: Command, project: &Path) -> (String, Option<(usize, usize)>) {
    let out = output(
        flense
            .args(["-vv", "build", "test", "-q", "-C"])
            .arg(project),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
    let reused = stderr
        .lines()
        .find(|l| l.contains("entries and"))
        .and_then(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let of = words.iter().position(|w| *w == "of")?;
            Some((words[of - 1].parse().ok()?, words[of + 1].parse().ok()?))
        });
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        reused,
    )
}

/// How many entries of the rebuilt layer were not taken from the previous one.
fn written_afresh(reused: Option<(usize, usize)>) -> usize {
    let (reused, total) = reused.expect("the layer is rewritten from the previous one");
    assert!(total > 1_000, "{total} entries");
    total - reused
}

#[test]
fn rebuilds_of_a_large_context_match_no_cache_builds_after_every_kind_of_change() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    import_fixture(&store, "busybox");
    let p = project(tmp.path());
    let first = build_test_variant(&store, &p, &[]);
    assert_eq!(
        build_test_variant(&store, &p, &[]),
        first,
        "a no-op rebuild"
    );

    // Content (same size: only the mtime and the bytes differ), deletion, rename, chmod.
    fs::write(p.join("src/d000/f000.txt"), "FILE 0/0\n").unwrap();
    fs::remove_file(p.join("src/d001/f001.txt")).unwrap();
    fs::rename(p.join("src/d002/f002.txt"), p.join("src/d002/renamed.txt")).unwrap();
    fs::set_permissions(
        p.join("src/d003/f003.txt"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let (second, reused) = rebuild(&store, &p);
    assert_ne!(second, first, "the changes change the image");
    assert_eq!(
        written_afresh(reused),
        3,
        "the changed, renamed and chmod'ed files"
    );
    assert_eq!(
        second,
        fresh_build(tmp.path(), "a", &p),
        "after content, delete, rename, chmod"
    );

    // A file replaced by a symlink; a `.dockerignore` that drops a directory.
    fs::remove_file(p.join("src/d004/f004.txt")).unwrap();
    std::os::unix::fs::symlink("f005.txt", p.join("src/d004/f004.txt")).unwrap();
    fs::write(p.join(".dockerignore"), "*.log\nsrc/d005\n").unwrap();
    let (third, reused) = rebuild(&store, &p);
    assert_ne!(third, second, "the changes change the image");
    assert_eq!(written_afresh(reused), 2, "the symlink and .dockerignore");
    assert_eq!(
        third,
        fresh_build(tmp.path(), "b", &p),
        "after symlink, .dockerignore"
    );

    // Only the `.dockerignore` changes back: the image is the second one again.
    fs::write(p.join(".dockerignore"), "*.log\n").unwrap();
    fs::remove_file(p.join("src/d004/f004.txt")).unwrap();
    fs::write(p.join("src/d004/f004.txt"), "file 4/4\n").unwrap();
    let (fourth, reused) = rebuild(&store, &p);
    assert_eq!(fourth, fresh_build(tmp.path(), "c", &p), "after reverting");
    assert_eq!(fourth, second, "the second build's tree again");
    assert_eq!(reused, None, "its layer is in the cache");

    // The third tree again, but f004 a file and f007 changed: the fourth build wrote no
    // layer, so this one is rewritten from the third build's.
    fs::write(p.join(".dockerignore"), "*.log\nsrc/d005\n").unwrap();
    fs::write(p.join("src/d007/f007.txt"), "file 7/7 changed\n").unwrap();
    let (fifth, reused) = rebuild(&store, &p);
    assert_eq!(
        fifth,
        fresh_build(tmp.path(), "d", &p),
        "after f004 and f007"
    );
    assert_eq!(
        written_afresh(reused),
        2,
        "f007 and f004, a file again, against the third build's layer"
    );

    // Damaged layer indexes are not used: the layer is written afresh, the same.
    for index in fs::read_dir(store.join("cache/layer-index")).unwrap() {
        let path = index.unwrap().path();
        let mut bytes = fs::read(&path).unwrap();
        bytes[100] ^= 1;
        fs::write(&path, bytes).unwrap();
    }
    fs::write(p.join("src/d006/f006.txt"), "changed again\n").unwrap();
    let (sixth, reused) = rebuild(&store, &p);
    assert_eq!(reused, None, "a damaged index is not used");
    assert_eq!(sixth, fresh_build(tmp.path(), "e", &p), "after damage");
}

#[test]
fn an_unprivileged_users_rebuild_is_rewritten_from_the_previous_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = busybox_tar_for_test_user(tmp.path());
    let user_dir = tmp.path().join("user");
    fs::create_dir_all(&user_dir).unwrap();
    let p = project_of(&user_dir, 8);
    give_to_test_user(&user_dir);
    let bin = flense_bin();
    let as_user = |store: &str| {
        let mut cmd = as_test_user(&bin);
        cmd.arg("--root").arg(user_dir.join(store));
        cmd
    };
    for store in ["store", "fresh"] {
        ok_stdout(
            as_user(store)
                .arg("import")
                .arg(&tar)
                .args(["--tag", "localhost/busybox:latest"]),
        );
    }
    let (first, reused) = rebuild_with(as_user("store"), &p);
    assert_eq!(reused, None, "nothing to rewrite from");

    // Written as the user (the test runs as root: the file stays the user's).
    fs::write(p.join("src/d003/f100.txt"), "changed by the user\n").unwrap();
    let (second, reused) = rebuild_with(as_user("store"), &p);
    assert_ne!(second, first);
    assert_eq!(written_afresh(reused), 1, "the changed file");
    let fresh = ok_stdout(
        as_user("fresh")
            .args(["build", "test", "-q", "--no-cache", "-C"])
            .arg(&p),
    );
    assert_eq!(second, fresh.trim(), "the same image as a --no-cache build");
}
