//! Layer writer benchmark: `cargo bench --bench layer_writer [-- TREE]`.
//!
//! Writes TREE (default: the `bookworm` fixture rootfs, unpacked into a temp dir) as a
//! layer at gzip levels 1, 2, 3, 4 and 6 with 1 and 2 compression threads, and compares with
//! `tar -c | gzip -6`; then unpacks the layer through the store and compares with
//! `gzip -dc | tar -x`. Prints sizes and MiB/s of uncompressed tar per second. Run as root (the fixture has root-owned files).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flense::image::tree::{entries_from_dir, TreeOptions};
use flense::image::{write_layer, LayerOptions};
use flense::store::Store;

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs
}

fn sh(script: &str) -> f64 {
    let start = Instant::now();
    let status = Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("sh");
    assert!(status.success(), "{script} failed");
    start.elapsed().as_secs_f64()
}

fn default_tree(scratch: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/base-images/build.sh");
    let out = Command::new(&script)
        .arg("bookworm")
        .output()
        .expect("build.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let tree = scratch.join("tree");
    std::fs::create_dir(&tree).unwrap();
    sh(&format!(
        "tar --numeric-owner -xpf '{tar}' -C '{}'",
        tree.display()
    ));
    tree
}

fn main() {
    let arg = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let scratch =
        tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))
            .unwrap();
    let tree = arg
        .map(PathBuf::from)
        .unwrap_or_else(|| default_tree(scratch.path()));
    let store = Store::open(&scratch.path().join("store")).unwrap();

    let mut tar_size = 0;
    for level in [1, 2, 3, 4, 6] {
        let mut digests = Vec::new();
        for threads in [1, 2] {
            let entries = entries_from_dir(&tree, TreeOptions::default()).unwrap();
            let start = Instant::now();
            let (_, d) = write_layer(
                entries,
                std::io::sink(),
                &LayerOptions {
                    epoch: 0,
                    level,
                    threads,
                },
            )
            .unwrap();
            let secs = start.elapsed().as_secs_f64();
            tar_size = d.tar_size;
            println!(
                "flense layer writer, level {level}, {threads} thread(s): {:.1} MiB tar -> {:.2} MiB gzip in {secs:.2} s = {:.1} MiB/s",
                d.tar_size as f64 / 1048576.0,
                d.size as f64 / 1048576.0,
                mib_per_s(d.tar_size, secs)
            );
            digests.push(d.digest);
        }
        assert_eq!(
            digests[0], digests[1],
            "digest must not depend on the thread count"
        );
    }
    let secs = sh(&format!(
        "tar -C '{}' -cf - . | gzip -6 > /dev/null",
        tree.display()
    ));
    println!(
        "tar | gzip -6: {secs:.2} s = {:.1} MiB/s",
        mib_per_s(tar_size, secs)
    );

    let entries = entries_from_dir(&tree, TreeOptions::default()).unwrap();
    let layer = store
        .write_layer(entries, &LayerOptions::default())
        .unwrap();
    let start = Instant::now();
    store
        .unpack_layer(&layer.digest, Some(&layer.diff_id))
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "flense unpack (verify + gunzip + untar): {secs:.2} s = {:.1} MiB/s",
        mib_per_s(tar_size, secs)
    );
    let blob = store.blob_path(&layer.digest).unwrap();
    let out = scratch.path().join("untar");
    std::fs::create_dir(&out).unwrap();
    let secs = sh(&format!(
        "gzip -dc '{}' | tar -xpf - -C '{}'",
        blob.display(),
        out.display()
    ));
    println!(
        "gzip -dc | tar -x: {secs:.2} s = {:.1} MiB/s",
        mib_per_s(tar_size, secs)
    );
}
