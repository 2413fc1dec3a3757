use super::*;
use std::os::unix::fs::PermissionsExt;

fn entry(path: &str, kind: EntryKind, mode: u32, mtime: u64) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime,
        xattrs: Vec::new(),
    }
}

fn file(tree: &Path, path: &str, mode: u32, mtime: u64) -> LayerEntry {
    entry(
        path,
        EntryKind::File(Content::File(tree.join(path))),
        mode,
        mtime,
    )
}

#[test]
fn the_tree_loses_what_is_not_an_entry_and_takes_the_entries_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("upper");
    fs::create_dir_all(tree.join("srv/app")).unwrap();
    fs::create_dir_all(tree.join("mnt/stub")).unwrap();
    fs::write(tree.join("srv/app/a.js"), "a").unwrap();
    fs::write(tree.join("etc-hosts"), "stub").unwrap();
    fs::hard_link(tree.join("srv/app/a.js"), tree.join("srv/app/b.js")).unwrap();
    std::os::unix::fs::symlink("a.js", tree.join("srv/app/c.js")).unwrap();
    let entries = vec![
        entry("srv", EntryKind::Dir, 0o755, 50),
        entry("srv/app", EntryKind::Dir, 0o555, 2_000),
        file(&tree, "srv/app/a.js", 0o640, 3_000),
        entry(
            "srv/app/b.js",
            EntryKind::Hardlink("srv/app/a.js".into()),
            0o640,
            3_000,
        ),
        entry("srv/app/c.js", EntryKind::Symlink("a.js".into()), 0o777, 10),
    ];
    let report = prepare_tree(&tree, &entries, 1_000).unwrap();
    assert_eq!(report.whiteouts, Vec::<PathBuf>::new());
    assert!(report.whiteout_devices);
    assert!(!tree.join("mnt").exists());
    assert!(!tree.join("etc-hosts").exists());
    let meta = |p: &str| fs::symlink_metadata(tree.join(p)).unwrap();
    assert_eq!(meta("srv").mtime(), 50);
    assert_eq!(meta("srv/app").mtime(), 1_000, "clamped to the epoch");
    assert_eq!(meta("srv/app").mode() & 0o7777, 0o555);
    assert_eq!(meta("srv/app/a.js").mode() & 0o7777, 0o640);
    assert_eq!(meta("srv/app/b.js").ino(), meta("srv/app/a.js").ino());
    assert_eq!(meta("srv/app/c.js").mtime(), 10);
    fs::set_permissions(tree.join("srv/app"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn unusual_trees_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("upper");
    fs::create_dir_all(tree.join("srv")).unwrap();
    fs::write(tree.join("srv/a"), "a").unwrap();
    fs::write(tmp.path().join("outside"), "x").unwrap();
    fs::hard_link(tree.join("srv/a"), tmp.path().join("elsewhere")).unwrap();
    let dir = entry("srv", EntryKind::Dir, 0o755, 0);
    let a = file(&tree, "srv/a", 0o644, 0);
    let cases = [
        vec![a.clone()],              // parent directory missing
        vec![dir.clone(), a.clone()], // hard link outside the layer
        vec![
            dir.clone(),
            LayerEntry {
                xattrs: vec![("user.k".into(), b"v".to_vec())],
                ..a.clone()
            },
        ],
        vec![
            dir.clone(),
            entry("srv/a", EntryKind::CharDevice(1, 3), 0o644, 0),
        ],
        vec![dir.clone(), file(tmp.path(), "outside", 0o644, 0)],
    ];
    for entries in cases {
        assert!(
            matches!(
                prepare_tree(&tree, &entries, 0),
                Err(AdoptError::Unsupported { .. })
            ),
            "{entries:?}"
        );
    }
}

#[test]
fn markers_are_reported_in_tar_order() {
    let entries = vec![
        entry("b", EntryKind::Whiteout, 0, 0),
        entry("a/x", EntryKind::Whiteout, 0, 0),
        entry("a-b", EntryKind::Opaque, 0, 0),
        entry("a", EntryKind::Opaque, 0, 0),
    ];
    let report = report_of(&entries);
    // ".wh.b" sorts before "a/.wh.x" in the tar ('.' < 'a'), unlike "a/x" < "b".
    assert_eq!(report.whiteouts, vec![PathBuf::from("b"), "a/x".into()]);
    assert_eq!(report.opaque, vec![PathBuf::from("a"), "a-b".into()]);
}
