use super::*;
use crate::image::gzip::DEFAULT_LEVEL;
use crate::image::layer::write_layer;

/// A context of `n` files (a few large enough to span gzip blocks) as layer entries.
fn context(dir: &Path, n: usize) -> Vec<LayerEntry> {
    let mut entries = vec![dir_entry("app")];
    for i in 0..n {
        let path = dir.join(format!("f{i:05}"));
        let len = if i % 500 == 7 { 700_000 } else { 50 + i % 900 };
        let bytes: Vec<u8> = (0..len).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
        std::fs::write(&path, bytes).unwrap();
        entries.push(LayerEntry {
            path: format!("app/f{i:05}").into(),
            kind: EntryKind::File(Content::File(path)),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1,
            xattrs: vec![],
        });
    }
    entries.push(LayerEntry {
        kind: EntryKind::Symlink("f00001".into()),
        ..dir_entry("app/link")
    });
    entries
}

fn dir_entry(path: &str) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        kind: EntryKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 1,
        xattrs: vec![],
    }
}

fn new_vec() -> io::Result<Vec<u8>> {
    Ok(Vec::new())
}

fn opts() -> LayerOptions {
    LayerOptions {
        epoch: 100,
        level: DEFAULT_LEVEL,
        threads: 2,
    }
}

/// What a stat cache would say: the real size and sha256 of each file.
fn truthful(path: &Path) -> Option<(u64, [u8; 32])> {
    let bytes = std::fs::read(path).ok()?;
    Some((bytes.len() as u64, Sha256::digest(&bytes).into()))
}

/// Writes `entries` from `earlier` (kept as a blob file in `dir`) and checks the bytes
/// against a fresh write; returns the new layer, also kept.
fn rewrite(
    dir: &Path,
    entries: &[LayerEntry],
    earlier: Option<&EarlierLayer>,
) -> (EarlierLayer, SpliceReport) {
    let (fresh, fresh_digests) = write_layer(entries.to_vec(), Vec::new(), &opts()).unwrap();
    let layer =
        write_layer_indexed(entries.to_vec(), new_vec, &opts(), earlier, &mut truthful).unwrap();
    assert_eq!(layer.report.fallback, None);
    assert_eq!(layer.digests, fresh_digests);
    assert!(
        layer.out == fresh,
        "spliced bytes differ from a fresh write"
    );
    let blob = dir.join(format!("blob-{}", layer.digests.digest.digest()));
    std::fs::write(&blob, &layer.out).unwrap();
    (
        EarlierLayer {
            blob,
            index: layer.index,
        },
        layer.report,
    )
}

#[test]
fn rewrites_give_the_bytes_of_fresh_writes_and_reuse_what_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, out) = (tmp.path().join("ctx"), tmp.path());
    std::fs::create_dir(&ctx).unwrap();
    let mut entries = context(&ctx, 3000);
    let (first, report) = rewrite(out, &entries, None);
    assert_eq!(report.reused_entries, 0);
    assert!(report.blocks > 3, "{report:?}");

    let (same, report) = rewrite(out, &entries, Some(&first));
    assert_eq!(report.reused_entries, report.entries, "nothing changed");
    assert_eq!(report.reused_blocks, report.blocks);

    // Same size, new content: only the blocks around it are compressed again.
    std::fs::write(ctx.join("f00010"), vec![b'z'; 60]).unwrap();
    let (after, report) = rewrite(out, &entries, Some(&same));
    assert_eq!(report.reused_entries, report.entries - 1);
    assert!(report.reused_blocks >= report.blocks - 2, "{report:?}");

    // A size change, a mode change, a deletion, a rename and a new file.
    std::fs::write(ctx.join("f00020"), vec![b'y'; 5000]).unwrap();
    entries[30].mode = 0o600;
    entries.remove(40);
    entries[50].path = "app/renamed".into();
    std::fs::write(ctx.join("new"), b"new").unwrap();
    entries.push(LayerEntry {
        kind: EntryKind::File(Content::File(ctx.join("new"))),
        ..dir_entry("app/new")
    });
    let (_, report) = rewrite(out, &entries, Some(&after));
    assert_eq!(report.reused_entries, report.entries - 4, "{report:?}");
}

#[test]
fn blocks_of_another_compressor_are_not_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, out) = (tmp.path().join("ctx"), tmp.path());
    std::fs::create_dir(&ctx).unwrap();
    let entries = context(&ctx, 1200);
    let (mut first, _) = rewrite(out, &entries, None);
    first.index.compressor = [0; 32];
    let (_, report) = rewrite(out, &entries, Some(&first));
    assert_eq!(report.reused_entries, report.entries);
    assert_eq!(report.reused_blocks, 0);
}

#[test]
fn an_earlier_layer_that_does_not_hold_what_its_index_says_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, out) = (tmp.path().join("ctx"), tmp.path());
    std::fs::create_dir(&ctx).unwrap();
    let entries = context(&ctx, 1200);
    let (first, _) = rewrite(out, &entries, None);
    let (fresh, _) = write_layer(entries.clone(), Vec::new(), &opts()).unwrap();
    let mut outputs = 0;
    let mut write = |earlier: &EarlierLayer| {
        let new_out = || {
            outputs += 1;
            Ok(Vec::new())
        };
        let layer = write_layer_indexed(
            entries.clone(),
            new_out,
            &opts(),
            Some(earlier),
            &mut truthful,
        )
        .unwrap();
        assert!(layer.out == fresh);
        layer
            .report
            .fallback
            .expect("the earlier layer is not used")
    };

    // Entries pointing at the wrong bytes.
    let mut shifted = first.clone();
    let (a, b) = (shifted.index.entries[3], shifted.index.entries[4]);
    shifted.index.entries[3].identity = b.identity;
    shifted.index.entries[4].identity = a.identity;
    let why = write(&shifted);
    assert!(why.contains("differ"), "{why}");

    // A damaged block in the blob.
    let mut blob = std::fs::read(&first.blob).unwrap();
    let at = first.index.block_ends[0] as usize - 40;
    blob[at] ^= 0x55;
    let damaged = EarlierLayer {
        blob: out.join("damaged"),
        index: first.index.clone(),
    };
    std::fs::write(&damaged.blob, blob).unwrap();
    let why = write(&damaged);
    assert!(why.contains("gzip block"), "{why}");

    // A blob that is gone.
    let gone = EarlierLayer {
        blob: out.join("gone"),
        index: first.index.clone(),
    };
    let why = write(&gone);
    assert!(why.contains("cannot open its blob"), "{why}");
    assert_eq!(outputs, 6, "each attempt started on a new output");

    // Content that is not what the caller knows of the file.
    let mut lying = |_: &Path| Some((50, [9u8; 32]));
    let layer =
        write_layer_indexed(entries.clone(), new_vec, &opts(), Some(&first), &mut lying).unwrap();
    assert_eq!(
        layer.report.reused_entries, 2,
        "only the directory and the link"
    );
}
