//! The store as a library: hostile layers, whiteouts, digest verification, diff-ID
//! records, concurrent tagging and reproducible layers.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flense::image::{Content, EntryKind, LayerEntry, LayerOptions};
use flense::store::extract::extract_tar_with_threads;
use flense::store::{Store, StoreError};

fn hostile(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hostile")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every path below `dir`, except those below `skip`.
fn snapshot(dir: &Path, skip: &Path) -> BTreeSet<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| !e.path().starts_with(skip))
        .map(|e| e.unwrap().path().to_path_buf())
        .collect()
}

/// Extracts a hostile tar into `<tmp>/a/b/target` next to `<tmp>/outside/secret`, and
/// checks that nothing outside the target changed. Returns the result and the target.
fn extract_hostile(
    name: &str,
) -> (
    Result<flense::store::extract::ExtractReport, String>,
    tempfile::TempDir,
    PathBuf,
) {
    // Inline and with writer threads alike (the default depends on the core count).
    let mut results = Vec::new();
    for threads in [4, 1] {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("a/b/target");
        fs::create_dir_all(&target).unwrap();
        fs::create_dir_all(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
        let before = snapshot(tmp.path(), &target);
        let result = extract_tar_with_threads(&hostile(name)[..], &target, threads)
            .map_err(|e| e.to_string());
        let after = snapshot(tmp.path(), &target);
        assert_eq!(
            before, after,
            "{name} wrote outside the target ({threads} threads)"
        );
        assert_eq!(
            fs::read(tmp.path().join("outside/secret")).unwrap(),
            b"secret"
        );
        assert!(!Path::new("/etc/flense-escaped-symlink").exists());
        results.push((result, tmp, target));
    }
    let (result, tmp, target) = results.pop().unwrap();
    let (with_threads, ..) = &results[0];
    assert_eq!(&result, with_threads, "{name}: 1 and 4 threads differ");
    (result, tmp, target)
}

#[test]
fn dotdot_paths_are_refused() {
    for name in ["dotdot.tar", "dotdot-nested.tar"] {
        let (result, ..) = extract_hostile(name);
        let err = result.expect_err(name);
        assert!(
            err.contains("..") && err.contains("escaped"),
            "{name}: {err}"
        );
    }
}

#[test]
fn absolute_paths_are_kept_inside_the_target() {
    let (result, _tmp, target) = extract_hostile("absolute.tar");
    result.unwrap();
    assert_eq!(
        fs::read(target.join("escaped-absolute")).unwrap(),
        b"contained"
    );
}

#[test]
fn writing_through_a_symlink_is_refused() {
    for name in ["symlink-then-write.tar", "symlink-absolute-then-write.tar"] {
        let (result, ..) = extract_hostile(name);
        let err = result.expect_err(name);
        assert!(err.contains("symlink"), "{name}: {err}");
    }
}

#[test]
fn a_file_replaces_a_symlink_instead_of_following_it() {
    let passwd = fs::read("/etc/passwd").unwrap();
    let (result, _tmp, target) = extract_hostile("symlink-then-overwrite.tar");
    result.unwrap();
    let meta = fs::symlink_metadata(target.join("passwd")).unwrap();
    assert!(meta.is_file());
    assert_eq!(fs::read("/etc/passwd").unwrap(), passwd);
}

#[test]
fn hard_links_outside_the_layer_are_refused() {
    for name in [
        "hardlink-outside.tar",
        "hardlink-absolute.tar",
        "hardlink-via-symlink.tar",
    ] {
        let (result, ..) = extract_hostile(name);
        assert!(result.is_err(), "{name} was accepted");
    }
}

#[test]
fn device_nodes_stay_inside_or_are_skipped() {
    let (result, _tmp, target) = extract_hostile("device.tar");
    let report = result.unwrap();
    let node = target.join("dev/evil-mem");
    if nix::unistd::geteuid().is_root() {
        assert!(fs::symlink_metadata(&node)
            .unwrap()
            .file_type()
            .is_char_device());
    } else {
        assert_eq!(report.skipped_devices, vec![PathBuf::from("dev/evil-mem")]);
        assert!(!node.exists());
    }
}

#[test]
fn whiteouts_become_overlay_whiteouts_and_are_listed() {
    let (result, _tmp, target) = extract_hostile("whiteouts.tar");
    let report = result.unwrap();
    assert_eq!(report.whiteouts, vec![PathBuf::from("etc/gone")]);
    assert_eq!(report.opaque, vec![PathBuf::from("var/cache")]);
    assert!(report.whiteout_devices);
    let gone = fs::symlink_metadata(target.join("etc/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert_eq!(
        xattr::get(target.join("var/cache"), "user.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read(target.join("var/cache/kept")).unwrap(), b"new");
}

fn sample_entries(dir: &Path) -> Vec<LayerEntry> {
    let host = dir.join("host-file");
    fs::write(&host, vec![7u8; 3 << 20]).unwrap();
    let e = |path: &str, kind| LayerEntry {
        path: path.into(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 1_900_000_000,
        xattrs: vec![],
    };
    vec![
        e("usr", EntryKind::Dir),
        e("usr/bin", EntryKind::Dir),
        e("usr/bin/big", EntryKind::File(Content::File(host))),
        e(
            "usr/bin/small",
            EntryKind::File(Content::Bytes(b"#!/bin/sh\necho hi\n".to_vec())),
        ),
        e("usr/bin/sh", EntryKind::Symlink("busybox".into())),
        e("etc/old", EntryKind::Whiteout),
        e("var", EntryKind::Opaque),
    ]
}

#[test]
fn layers_round_trip_through_the_store_and_unpack_by_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let opts = LayerOptions {
        epoch: 1_000,
        level: 6,
        threads: 2,
    };
    let layer = store
        .write_layer(sample_entries(tmp.path()), &opts)
        .unwrap();
    assert!(store.has_blob(&layer.digest));
    assert_eq!(
        store.recorded_diff_id(&layer.digest).unwrap().as_ref(),
        Some(&layer.diff_id)
    );
    assert_eq!(
        store.blob_of_diff_id(&layer.diff_id).unwrap().as_ref(),
        Some(&layer.digest)
    );

    let unpacked = store
        .unpack_layer(&layer.digest, Some(&layer.diff_id))
        .unwrap();
    assert_eq!(
        unpacked.diff,
        store.layer_dir(&layer.diff_id).unwrap().join("diff")
    );
    assert_eq!(
        fs::read(unpacked.diff.join("usr/bin/small")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(
        fs::metadata(unpacked.diff.join("usr/bin/big"))
            .unwrap()
            .len(),
        3 << 20
    );
    assert_eq!(
        fs::metadata(unpacked.diff.join("usr/bin/small"))
            .unwrap()
            .mtime(),
        1_000,
        "mtime clamped to the epoch"
    );
    assert_eq!(
        fs::read_link(unpacked.diff.join("usr/bin/sh")).unwrap(),
        PathBuf::from("busybox")
    );
    assert_eq!(unpacked.report.whiteouts, vec![PathBuf::from("etc/old")]);
    assert_eq!(unpacked.report.opaque, vec![PathBuf::from("var")]);
    // A second call finds the unpacked layer instead of extracting again.
    assert_eq!(store.unpack_layer(&layer.digest, None).unwrap(), unpacked);
    assert_eq!(
        store.unpacked_layer(&layer.diff_id).unwrap(),
        Some(unpacked)
    );
}

#[test]
fn the_same_entries_give_the_same_layer_in_two_stores_with_any_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::open(&tmp.path().join("a")).unwrap();
    let b = Store::open(&tmp.path().join("b")).unwrap();
    let one = a
        .write_layer(
            sample_entries(tmp.path()),
            &LayerOptions {
                epoch: 0,
                level: 6,
                threads: 1,
            },
        )
        .unwrap();
    let two = b
        .write_layer(
            sample_entries(tmp.path()),
            &LayerOptions {
                epoch: 0,
                level: 6,
                threads: 2,
            },
        )
        .unwrap();
    assert_eq!(one, two);
    assert_eq!(
        fs::read(a.blob_path(&one.digest).unwrap()).unwrap(),
        fs::read(b.blob_path(&two.digest).unwrap()).unwrap()
    );
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let digest = store.put_blob(b"{\"hello\":1}").unwrap();
    assert_eq!(store.read_blob(&digest).unwrap(), b"{\"hello\":1}");
    fs::write(store.blob_path(&digest).unwrap(), b"{\"hello\":2}").unwrap();
    assert!(matches!(
        store.read_blob(&digest),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.verify_blob(&digest),
        Err(StoreError::Corrupt { .. })
    ));

    // A corrupted layer never unpacks, and leaves no layer directory behind.
    let layer = store
        .write_layer(
            sample_entries(tmp.path()),
            &LayerOptions {
                epoch: 0,
                level: 1,
                threads: 1,
            },
        )
        .unwrap();
    let path = store.blob_path(&layer.digest).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 9] ^= 0xff; // inside the gzip trailer's CRC: the content still inflates
    fs::write(&path, &bytes).unwrap();
    assert!(store
        .unpack_layer(&layer.digest, Some(&layer.diff_id))
        .is_err());
    assert!(store.unpacked_layer(&layer.diff_id).unwrap().is_none());
    let leftovers: Vec<_> = fs::read_dir(store.root().join("layers")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn received_blobs_with_the_wrong_digest_never_land() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let claimed = flense::image::digest::sha256_digest(b"expected");
    let err = store
        .put_blob_verified(&mut &b"something else"[..], &claimed, 8)
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(!store.has_blob(&claimed));
    assert!(store.list_blobs().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0,
        "temp file left behind"
    );
}

#[test]
fn concurrent_tagging_loses_no_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let store = Store::open(&root).unwrap();
    let digest = store.put_blob(b"{}").unwrap();
    let descriptor =
        oci_spec::image::Descriptor::new(oci_spec::image::MediaType::ImageManifest, 2, digest);
    std::thread::scope(|s| {
        for t in 0..4 {
            let descriptor = descriptor.clone();
            let root = root.clone();
            s.spawn(move || {
                let store = Store::open(&root).unwrap();
                for i in 0..10 {
                    store
                        .set_tag(&format!("localhost/t{t}:v{i}"), &descriptor)
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(store.tags().unwrap().len(), 40);
}

const INNER: &str = "FLENSE_TEST_INNER_UNPRIVILEGED";

#[test]
fn extraction_as_an_unprivileged_user_skips_devices_and_still_makes_whiteouts() {
    if std::env::var_os(INNER).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = support::cli::output(support::users::as_test_user(&exe).env(INNER, "1").args([
        "--exact",
        "unprivileged_extraction_inner",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inner test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run by the test above as the unprivileged test user (it needs a non-root process).
#[test]
#[ignore = "runs as the unprivileged user, started by extraction_as_an_unprivileged_user_..."]
fn unprivileged_extraction_inner() {
    if std::env::var_os(INNER).is_none() {
        return;
    }
    assert!(!nix::unistd::geteuid().is_root(), "must run unprivileged");
    let (result, _tmp, target) = extract_hostile("device.tar");
    let report = result.unwrap();
    assert_eq!(report.skipped_devices, vec![PathBuf::from("dev/evil-mem")]);
    assert!(!target.join("dev/evil-mem").exists());

    let (result, _tmp, target) = extract_hostile("whiteouts.tar");
    let report = result.unwrap();
    assert!(
        report.whiteout_devices,
        "mknod 0/0 is allowed unprivileged since Linux 5.8"
    );
    assert!(fs::symlink_metadata(target.join("etc/gone"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(
        xattr::get(target.join("var/cache"), "user.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );

    for name in [
        "dotdot.tar",
        "symlink-then-write.tar",
        "hardlink-outside.tar",
    ] {
        assert!(extract_hostile(name).0.is_err(), "{name}");
    }
}

#[test]
fn prune_waits_for_writers_holding_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let hold = store.hold_blobs().unwrap();
    let digest = store.put_blob(b"not tagged yet").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let pruner = store.clone();
        s.spawn(move || {
            let report = pruner.prune().unwrap();
            tx.send(report).unwrap();
        });
        // Wait until the prune is blocked on gc.lock (a waiter shows in /proc/locks),
        // then check that it has not deleted the held blob.
        let inode = fs::metadata(store.root().join("gc.lock")).unwrap().ino();
        if !wait_for_lock_waiter(inode, Duration::from_secs(30)) {
            let finished = rx.try_recv().is_ok();
            drop(hold); // lets a blocked prune end, so the scope can join it
            panic!(
                "prune never waited on gc.lock within 30 s (it {})",
                if finished {
                    "finished without waiting"
                } else {
                    "is still running"
                }
            );
        }
        assert!(rx.try_recv().is_err());
        assert!(store.has_blob(&digest));
        drop(hold);
        let report = rx.recv().unwrap();
        assert_eq!(report.blobs, 1);
    });
    assert!(!store.has_blob(&digest));
}

/// Waits until /proc/locks shows a process blocked on the lock of file `inode` (a
/// `->` line); false when none shows up before `limit`.
fn wait_for_lock_waiter(inode: u64, limit: Duration) -> bool {
    let needle = format!(":{inode} ");
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let locks = fs::read_to_string("/proc/locks").unwrap();
        if locks
            .lines()
            .any(|l| l.contains("->") && l.contains(&needle))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A tar of many small files with the orderings that matter to parallel extraction:
/// a path written twice, a hard link to a just-written file, a whiteout of a
/// just-written file and a directory replaced by a file.
fn busy_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o640
        });
        h.set_mtime(1_234_567);
        h.set_uid(0);
        h.set_gid(0);
        match link {
            Some(l) => b.append_link(&mut h, name, l).unwrap(),
            None => b.append_data(&mut h, name, data).unwrap(),
        }
    };
    for d in 0..10 {
        add(&format!("d{d}"), tar::EntryType::Directory, b"", None);
        for f in 0..30 {
            add(
                &format!("d{d}/f{f}"),
                tar::EntryType::Regular,
                format!("{d}/{f}").as_bytes(),
                None,
            );
        }
    }
    add("d0/f0", tar::EntryType::Regular, b"second version", None);
    add("d1/link", tar::EntryType::Link, b"", Some("d2/f3"));
    add("d3/.wh.f1", tar::EntryType::Regular, b"", None);
    add("d9", tar::EntryType::Regular, b"a file now", None);
    add("big", tar::EntryType::Regular, &vec![9u8; 3 << 20], None);
    b.into_inner().unwrap()
}

/// (path, kind, mode, size, mtime, content) of everything below `dir`.
fn describe(dir: &Path) -> Vec<(String, String, u32, u64, i64, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let content = if m.is_file() {
                fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            let kind = format!("{:?}", m.file_type());
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                kind,
                m.mode(),
                m.len(),
                m.mtime(),
                content,
            )
        })
        .collect()
}

#[test]
fn parallel_extraction_gives_the_same_tree_as_sequential() {
    let tar = busy_tar();
    let tmp = tempfile::tempdir().unwrap();
    let (one, four) = (tmp.path().join("one"), tmp.path().join("four"));
    fs::create_dir(&one).unwrap();
    fs::create_dir(&four).unwrap();
    let r1 = flense::store::extract::extract_tar_with_threads(&tar[..], &one, 1).unwrap();
    let r4 = flense::store::extract::extract_tar_with_threads(&tar[..], &four, 4).unwrap();
    assert_eq!(r1, r4);
    let (d1, d4) = (describe(&one), describe(&four));
    let differ: Vec<_> = d1
        .iter()
        .zip(&d4)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (&a.0, &a.1, a.2, a.4, &b.0, &b.1, b.2, b.4))
        .collect();
    assert!(differ.is_empty() && d1.len() == d4.len(), "{differ:?}");
    assert_eq!(fs::read(four.join("d0/f0")).unwrap(), b"second version");
    assert_eq!(
        fs::metadata(four.join("d1/link")).unwrap().ino(),
        fs::metadata(four.join("d2/f3")).unwrap().ino()
    );
    assert!(fs::symlink_metadata(four.join("d3/f1"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(fs::read(four.join("d9")).unwrap(), b"a file now");
    assert_eq!(
        fs::metadata(four.join("d9")).unwrap().mode() & 0o7777,
        0o640,
        "not the old directory's mode"
    );
    assert_eq!(
        fs::metadata(four.join("d5/f7")).unwrap().mode() & 0o7777,
        0o640
    );
    assert_eq!(fs::metadata(four.join("d5/f7")).unwrap().mtime(), 1_234_567);
}

#[test]
fn plain_truncated_and_mislabelled_layer_blobs_unpack_or_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("root")).unwrap();
    let tar = busy_tar();
    let no_leftovers = |store: &Store| {
        let left: Vec<_> = fs::read_dir(store.root().join("layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    };

    // An uncompressed layer: its diff-ID is its digest.
    let plain = store.put_blob(&tar).unwrap();
    let unpacked = store.unpack_layer(&plain, Some(&plain)).unwrap();
    assert_eq!(unpacked.diff_id, plain);
    assert_eq!(
        fs::read(unpacked.diff.join("d0/f0")).unwrap(),
        b"second version"
    );

    // A gzip layer whose config names another diff-ID is refused, naming both.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let gzipped = store.put_blob(&gz).unwrap();
    let wrong = flense::image::digest::digest_of(b"another layer");
    let err = store
        .unpack_layer(&gzipped, Some(&wrong))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(gzipped.as_ref()) && err.contains(wrong.as_ref()),
        "{err}"
    );
    assert!(store.unpacked_layer(&wrong).unwrap().is_none());
    no_leftovers(&store);

    // A truncated gzip stream fails (whichever entry it stops in) and leaves nothing.
    let truncated = store.put_blob(&gz[..gz.len() / 2]).unwrap();
    let err = store
        .unpack_layer(&truncated, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains(truncated.as_ref()), "{err}");
    no_leftovers(&store);

    // The same bytes gzipped unpack to the same tree as the plain blob.
    let from_gzip = store.unpack_layer(&gzipped, None).unwrap();
    assert_eq!(
        from_gzip.diff_id, plain,
        "the diff-ID of a gzip layer is its tar's"
    );
    assert_eq!(
        from_gzip.diff, unpacked.diff,
        "already unpacked under that diff-ID"
    );
}
