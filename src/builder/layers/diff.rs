//! Conversion of the diff captured after a sandboxed step (`flense_runtime::DiffEntry`)
//! into layer entries for the layer writer.

use flense_runtime::{DiffEntry, DiffKind};

use crate::image::{Content, EntryKind, LayerEntry};

/// Converts captured entries, keeping their order and metadata. Whiteout and opaque
/// markers carry no metadata of their own.
pub fn to_layer_entries(entries: Vec<DiffEntry>) -> Vec<LayerEntry> {
    entries.into_iter().map(to_layer_entry).collect()
}

/// Converts one captured entry.
pub fn to_layer_entry(entry: DiffEntry) -> LayerEntry {
    let kind = match entry.kind {
        DiffKind::File(host) => EntryKind::File(Content::File(host)),
        DiffKind::Dir => EntryKind::Dir,
        DiffKind::Symlink(target) => EntryKind::Symlink(target),
        DiffKind::Hardlink(first) => EntryKind::Hardlink(first),
        DiffKind::CharDevice(major, minor) => EntryKind::CharDevice(major, minor),
        DiffKind::BlockDevice(major, minor) => EntryKind::BlockDevice(major, minor),
        DiffKind::Fifo => EntryKind::Fifo,
        DiffKind::Whiteout => EntryKind::Whiteout,
        DiffKind::Opaque => EntryKind::Opaque,
    };
    LayerEntry {
        path: entry.path,
        kind,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        mtime: entry.mtime,
        xattrs: entry.xattrs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn entry(path: &str, kind: DiffKind) -> DiffEntry {
        DiffEntry {
            path: path.into(),
            kind,
            mode: 0o640,
            uid: 33,
            gid: 44,
            mtime: 1_700_000_000,
            xattrs: vec![("user.k".into(), b"v".to_vec())],
        }
    }

    #[test]
    fn every_kind_and_all_metadata_carry_over() {
        let cases = [
            (
                DiffKind::File("/up/a".into()),
                EntryKind::File(Content::File("/up/a".into())),
            ),
            (DiffKind::Dir, EntryKind::Dir),
            (
                DiffKind::Symlink("../t".into()),
                EntryKind::Symlink("../t".into()),
            ),
            (
                DiffKind::Hardlink("a".into()),
                EntryKind::Hardlink("a".into()),
            ),
            (DiffKind::CharDevice(1, 3), EntryKind::CharDevice(1, 3)),
            (DiffKind::BlockDevice(8, 1), EntryKind::BlockDevice(8, 1)),
            (DiffKind::Fifo, EntryKind::Fifo),
            (DiffKind::Whiteout, EntryKind::Whiteout),
            (DiffKind::Opaque, EntryKind::Opaque),
        ];
        for (from, to) in cases {
            let e = to_layer_entry(entry("srv/x", from));
            assert_eq!(e.kind, to);
            assert_eq!(e.path, PathBuf::from("srv/x"));
            assert_eq!(
                (e.mode, e.uid, e.gid, e.mtime),
                (0o640, 33, 44, 1_700_000_000)
            );
            assert_eq!(e.xattrs, vec![("user.k".to_string(), b"v".to_vec())]);
        }
    }
}
