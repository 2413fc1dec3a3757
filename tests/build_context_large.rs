//! Large build contexts (issue 19): a context of 20,000 small files copied by
//! `copies: [local]`, rebuilt in one store after each kind of change — a file's
//! content, a deletion, a rename, a chmod, a file replaced by a symlink, a
//! `.dockerignore` change — gives the image a `--no-cache` build of the same tree in a
//! fresh store gives. (Rebuilds decide "unchanged" from stat data: the stat cache and
//! the context's stat fingerprint; this checks that no change slips through.)

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::cli::build_test_variant;
use support::fixtures::import_fixture;

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
    let p = dir.join("large");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    for d in 0..DIRS {
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
    let second = build_test_variant(&store, &p, &[]);
    assert_ne!(second, first, "the changes change the image");
    assert_eq!(
        second,
        fresh_build(tmp.path(), "a", &p),
        "after content, delete, rename, chmod"
    );

    // A file replaced by a symlink; a `.dockerignore` that drops a directory.
    fs::remove_file(p.join("src/d004/f004.txt")).unwrap();
    std::os::unix::fs::symlink("f005.txt", p.join("src/d004/f004.txt")).unwrap();
    fs::write(p.join(".dockerignore"), "*.log\nsrc/d005\n").unwrap();
    let third = build_test_variant(&store, &p, &[]);
    assert_ne!(third, second, "the changes change the image");
    assert_eq!(
        third,
        fresh_build(tmp.path(), "b", &p),
        "after symlink, .dockerignore"
    );

    // Only the `.dockerignore` changes back: the image is the second one again.
    fs::write(p.join(".dockerignore"), "*.log\n").unwrap();
    fs::remove_file(p.join("src/d004/f004.txt")).unwrap();
    fs::write(p.join("src/d004/f004.txt"), "file 4/4\n").unwrap();
    let fourth = build_test_variant(&store, &p, &[]);
    assert_eq!(fourth, fresh_build(tmp.path(), "c", &p), "after reverting");
}
