//! Normalising the bookkeeping that tools write into the image (logs, fetch times,
//! caches of caches), so that a command step's layer depends only on what it
//! installed: a step's changes to these paths are dropped from its layer and the lower
//! layer's version shows through. Applied to a command's captured entries before they
//! are committed, so the written layer and the adopted tree (which keeps only entries)
//! agree. `--keep-tool-caches` skips it (Blubber's byte-for-byte layers).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::builder::layers::image_relative;
use crate::builder::layers::view::{FileKind, ImageView};
use crate::image::{EntryKind, LayerEntry};

/// Whether `rel` (relative to the image root) is bookkeeping: apt's and dpkg's logs,
/// the alternatives log, ldconfig's aux-cache, apt's binary package caches (built from
/// the lists, which Blubber's apt step removes; they record the lists' fetch times),
/// debconf's `*-old` backups and npm's `_logs` (anywhere, e.g. `~/.npm/_logs`).
pub fn is_bookkeeping(rel: &Path) -> bool {
    const FILES: [&str; 5] = [
        "var/log/dpkg.log",
        "var/log/alternatives.log",
        "var/cache/ldconfig/aux-cache",
        "var/cache/apt/pkgcache.bin",
        "var/cache/apt/srcpkgcache.bin",
    ];
    if FILES.iter().any(|f| rel == Path::new(f)) {
        return true;
    }
    if rel.starts_with("var/log/apt") && rel != Path::new("var/log/apt") {
        return true;
    }
    if rel.parent() == Some(Path::new("var/cache/debconf"))
        && rel.to_string_lossy().ends_with("-old")
    {
        return true;
    }
    let names: Vec<_> = rel.components().map(|c| c.as_os_str()).collect();
    names.windows(2).any(|w| w[0] == ".npm" && w[1] == "_logs")
}

/// Drops the entries of bookkeeping paths (and hard links to them), then the parent
/// directories that were only copied up for them: left without entries below them and
/// unchanged from `view` (the image below the step) in mode and owner.
pub fn drop_bookkeeping(entries: &mut Vec<LayerEntry>, view: &dyn ImageView) {
    let dropped: HashSet<PathBuf> = entries
        .iter()
        .map(|e| image_relative(&e.path))
        .filter(|rel| is_bookkeeping(rel))
        .collect();
    if dropped.is_empty() {
        return;
    }
    entries.retain(|e| {
        let rel = image_relative(&e.path);
        let link_to_dropped = match &e.kind {
            EntryKind::Hardlink(target) => dropped.contains(&image_relative(target)),
            _ => false,
        };
        !dropped.contains(&rel) && !link_to_dropped
    });
    let mut ancestors: Vec<PathBuf> = dropped
        .iter()
        .flat_map(|p| p.ancestors().skip(1).map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Deepest first: a directory emptied by dropping its child directory goes too.
    ancestors.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for dir in ancestors {
        let below = |e: &LayerEntry| {
            let rel = image_relative(&e.path);
            rel != dir && rel.starts_with(&dir)
        };
        if entries.iter().any(below) {
            continue;
        }
        let unchanged = |e: &LayerEntry| match view.stat(&dir) {
            Some(meta) => {
                meta.kind == FileKind::Dir
                    && meta.mode & 0o7777 == e.mode & 0o7777
                    && (meta.uid, meta.gid) == (e.uid, e.gid)
            }
            None => false,
        };
        let copied_up = |e: &LayerEntry| image_relative(&e.path) == dir && e.kind == EntryKind::Dir;
        let opaque = entries
            .iter()
            .any(|e| image_relative(&e.path) == dir && e.kind == EntryKind::Opaque);
        if !opaque && entries.iter().any(|e| copied_up(e) && unchanged(e)) {
            entries.retain(|e| image_relative(&e.path) != dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::layers::view::LayerStackView;
    use crate::image::Content;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn entry(path: &str, kind: EntryKind, mode: u32) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 5,
            xattrs: Vec::new(),
        }
    }

    fn file(path: &str) -> LayerEntry {
        entry(path, EntryKind::File(Content::Bytes(b"x".to_vec())), 0o644)
    }

    #[test]
    fn recognises_tool_logs_but_not_their_neighbours() {
        for p in [
            "var/log/apt/history.log",
            "var/log/apt/eipp.log.xz",
            "var/log/dpkg.log",
            "var/log/alternatives.log",
            "var/cache/ldconfig/aux-cache",
            "var/cache/apt/srcpkgcache.bin",
            "var/cache/debconf/templates.dat-old",
            "root/.npm/_logs",
            "home/somebody/.npm/_logs/2026-debug-0.log",
        ] {
            assert!(is_bookkeeping(Path::new(p)), "{p}");
        }
        for p in [
            "var/log/apt",
            "var/log/syslog",
            "var/cache/debconf/templates.dat",
            "root/.npm/_cacache/index",
            "srv/app/_logs/x",
        ] {
            assert!(!is_bookkeeping(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn drops_logs_and_the_directories_only_copied_up_for_them() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        for d in ["var/log/apt", "usr/bin"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        for d in ["var", "var/log", "var/log/apt", "usr", "usr/bin"] {
            fs::set_permissions(lower.join(d), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let view = LayerStackView::new(vec![lower]);
        let mut entries = vec![
            entry("usr", EntryKind::Dir, 0o755),
            entry("usr/bin", EntryKind::Dir, 0o755),
            file("usr/bin/tool"),
            entry("var", EntryKind::Dir, 0o755),
            entry("var/log", EntryKind::Dir, 0o755),
            entry("var/log/apt", EntryKind::Dir, 0o755),
            file("var/log/apt/history.log"),
            entry("var/log/apt/old.log", EntryKind::Whiteout, 0),
            file("var/log/dpkg.log"),
            entry(
                "var/log/dpkg-link",
                EntryKind::Hardlink("var/log/dpkg.log".into()),
                0o644,
            ),
        ];
        // Owners on disk are the caller's: compare with what the view says.
        let meta = view.stat(Path::new("var")).unwrap();
        for e in &mut entries {
            (e.uid, e.gid) = (meta.uid, meta.gid);
        }
        drop_bookkeeping(&mut entries, &view);
        let paths: Vec<_> = entries.iter().map(|e| e.path.clone()).collect();
        let want: Vec<PathBuf> = ["usr", "usr/bin", "usr/bin/tool"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(paths, want);
    }

    #[test]
    fn keeps_a_parent_the_step_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        fs::create_dir_all(lower.join("var/log")).unwrap();
        let view = LayerStackView::new(vec![lower]);
        let mut entries = vec![
            entry("var", EntryKind::Dir, 0o700),
            entry("var/log", EntryKind::Dir, 0o700),
            file("var/log/dpkg.log"),
        ];
        drop_bookkeeping(&mut entries, &view);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].path, PathBuf::from("var/log"));
    }
}
