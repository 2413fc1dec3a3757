//! Finding a file in an image the way the sandbox would: following symlinks in every
//! path component, absolute targets inside the image.

use std::path::{Component, Path, PathBuf};

use crate::builder::layers::view::{FileKind, ImageView};

/// Whether `path` names a regular file in the image, following symlinks in every
/// component (absolute targets resolve inside the image, as in the sandbox).
pub(super) fn has_file(view: &dyn ImageView, path: &Path) -> bool {
    let mut pending: Vec<PathBuf> = vec![path.to_path_buf()];
    let mut resolved = PathBuf::from("/");
    let mut hops = 0;
    while let Some(next) = pending.pop() {
        let mut comps: Vec<Component> = next.components().collect();
        comps.reverse();
        while let Some(c) = comps.pop() {
            match c {
                Component::RootDir => resolved = PathBuf::from("/"),
                Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => {
                    let candidate = resolved.join(name);
                    let Some(meta) = view.stat(&candidate) else {
                        return false;
                    };
                    if meta.kind == FileKind::Symlink {
                        hops += 1;
                        let Some(target) = view.read_link(&candidate) else {
                            return false;
                        };
                        if hops > 40 {
                            return false;
                        }
                        let rest: PathBuf = comps.iter().rev().collect();
                        pending.push(target.join(rest));
                        break;
                    }
                    resolved = candidate;
                }
            }
        }
    }
    view.stat(&resolved)
        .is_some_and(|m| m.kind == FileKind::File)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_shell_is_found_through_merged_usr_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/dash"), "").unwrap();
        symlink("dash", root.join("usr/bin/sh")).unwrap();
        symlink("/usr/bin", root.join("bin")).unwrap();
        symlink("../missing", root.join("usr/bin/broken")).unwrap();
        let view = crate::builder::layers::view::LayerStackView::new(vec![root.to_path_buf()]);
        assert!(has_file(&view, Path::new("/bin/sh")));
        assert!(has_file(&view, Path::new("/usr/bin/dash")));
        assert!(!has_file(&view, Path::new("/bin/bash")));
        assert!(!has_file(&view, Path::new("/bin/broken")));
        assert!(!has_file(&view, Path::new("/bin")));
    }

    #[test]
    fn symlink_loops_end() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        symlink("/bin/sh", root.join("bin/sh")).unwrap();
        let view = crate::builder::layers::view::LayerStackView::new(vec![root.to_path_buf()]);
        assert!(!has_file(&view, Path::new("/bin/sh")));
    }
}
