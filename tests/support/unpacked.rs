//! Checking a store's unpacked layers (`layers/<diff-id hex>/diff`) against the layer
//! tars they came from.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::cli::{flense, ok_stdout};

/// What a path of a layer looks like: kind (`d`, `f`, `l`), permission bits, size of
/// files, symlink target (symlinks have mode 0 here), mtime and (when `owners`) uid and gid.
pub type Listing = BTreeMap<String, (char, u32, u64, String, i64, Option<(u64, u64)>)>;

/// `(blob digest, diff-ID)` of each layer of `reference`, from `flense inspect`.
pub fn layers_of(root: &Path, reference: &str) -> Vec<(String, String)> {
    let info: serde_json::Value =
        serde_json::from_str(&ok_stdout(flense(root).args(["inspect", reference]))).unwrap();
    info["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_owned(),
                l["diffId"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The directory a layer is unpacked into.
pub fn layer_dir(root: &Path, diff_id: &str) -> std::path::PathBuf {
    root.join("layers").join(&diff_id["sha256:".len()..])
}

/// The entries of the stored (gzip) layer blob `digest`, as the unpacked tree must show
/// them: later entries replace earlier ones, hard links show their target's file, and
/// directories the tar only implies are 0755.
pub fn tar_listing(root: &Path, digest: &str, owners: bool) -> Listing {
    let blob = fs::read(root.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap();
    let mut raw = Vec::new();
    if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(&blob[..])
            .unwrap()
            .read_to_end(&mut raw)
            .unwrap();
    } else {
        flate2::read::MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut raw)
            .unwrap();
    }
    let mut out = Listing::new();
    for entry in tar::Archive::new(&raw[..]).entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").trim_matches('/').to_owned();
        if path.is_empty() {
            continue;
        }
        let mut parent = Path::new(&path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let key = p.to_string_lossy().into_owned();
            out.entry(key)
                .or_insert(('d', 0o755, 0, String::new(), -1, None));
            parent = p.parent();
        }
        let mode = h.mode().unwrap() & 0o7777;
        let mtime = h.mtime().unwrap() as i64;
        // Blank owner fields (some test layers have them) mean 0.
        let owner = owners.then(|| (h.uid().unwrap_or(0), h.gid().unwrap_or(0)));
        let link = || {
            entry
                .link_name()
                .unwrap()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        let item = match h.entry_type() {
            tar::EntryType::Directory => ('d', mode, 0, String::new(), mtime, owner),
            tar::EntryType::Regular => ('f', mode, h.size().unwrap(), String::new(), mtime, owner),
            tar::EntryType::Symlink => ('l', 0, 0, link(), mtime, owner),
            tar::EntryType::Link => {
                let target = link().trim_start_matches("./").to_owned();
                out[&target].clone()
            }
            other => panic!("unexpected {other:?} in {path}"),
        };
        out.insert(path, item);
    }
    out
}

/// The tree below `diff` in the same shape. Implied directories (mtime -1 in the tar
/// listing) keep whatever mtime they got.
pub fn disk_listing(diff: &Path, owners: bool, implied: &Listing) -> Listing {
    let mut out = Listing::new();
    for e in walkdir::WalkDir::new(diff).min_depth(1) {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let rel = e
            .path()
            .strip_prefix(diff)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let kind = if m.is_dir() {
            'd'
        } else if m.file_type().is_symlink() {
            'l'
        } else {
            'f'
        };
        let link = if kind == 'l' {
            fs::read_link(e.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        };
        let size = if kind == 'f' { m.len() } else { 0 };
        // A symlink's own mode means nothing on Linux.
        let mode = if kind == 'l' { 0 } else { m.mode() & 0o7777 };
        let mtime = match implied.get(&rel) {
            Some(i) if i.4 == -1 => -1,
            _ => m.mtime(),
        };
        let owner = owners.then(|| (u64::from(m.uid()), u64::from(m.gid())));
        out.insert(rel, (kind, mode, size, link, mtime, owner));
    }
    out
}

/// Asserts that every layer of `reference` is unpacked in the store at `root` and
/// matches its tar (with the tar's owners when running as root).
pub fn assert_unpacked(root: &Path, reference: &str) {
    assert_unpacked_with(root, reference, nix::unistd::geteuid().is_root());
}

/// [`assert_unpacked`], comparing owners only when `owners`.
pub fn assert_unpacked_with(root: &Path, reference: &str, owners: bool) {
    for (digest, diff_id) in layers_of(root, reference) {
        let diff = layer_dir(root, &diff_id).join("diff");
        assert!(
            diff.is_dir(),
            "{reference}: {} is not unpacked",
            diff.display()
        );
        let want = tar_listing(root, &digest, owners);
        let got = disk_listing(&diff, owners, &want);
        assert!(!want.is_empty());
        let differ: Vec<_> = want
            .iter()
            .filter(|(path, item)| got.get(*path) != Some(item))
            .map(|(path, item)| (path, item, got.get(path)))
            .chain(
                got.iter()
                    .filter(|(path, _)| !want.contains_key(*path))
                    .map(|(path, item)| (path, item, None)),
            )
            .take(10)
            .collect();
        assert!(
            differ.is_empty(),
            "{reference} layer {digest} differs: {differ:?}"
        );
    }
}

/// Whether the store at `root` has no unpacked layer at all.
pub fn no_layers_unpacked(root: &Path) -> bool {
    fs::read_dir(root.join("layers"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}
