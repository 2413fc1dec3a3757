//! Package managers' caches kept out of layers (the default; `--keep-tool-caches`
//! turns it off): every command step gets persistent cache directories in the store
//! (like builder `caches`, one per tool and per step uid:gid) mounted over the tool
//! cache locations of its user — npm `$HOME/.npm`, pip `$HOME/.cache/pip`, composer
//! `$HOME/.composer/cache` and `$HOME/.cache/composer` — and, for root steps of an
//! image with apt, `/var/cache/apt/archives`. Apt's lists are not mounted: Blubber's
//! apt step removes them itself, so they never reach a layer.
//!
//! A mount's contents never reach the layer, nor do the mount points the sandbox had
//! to create (they are left out of the captured writes). A location is skipped when
//! the step mounts something there itself, when `$HOME` is not a directory of the
//! image, or when the location is not a directory in the image.

use std::path::{Path, PathBuf};

use crate::builder::layers::image_relative;
use crate::builder::layers::shared_mounts::PersistentCache;
use crate::builder::layers::view::{FileKind, ImageView};
use crate::builder::users::PASSWD;
use crate::builder::{io_err, BuildError};
use crate::image::{EntryKind, LayerEntry};

use super::mounts::cache_dir;
use super::runner::StepMount;

/// Tool cache locations below `$HOME`, with the name of their store cache.
const HOME_CACHES: [(&str, &str); 4] = [
    ("npm", ".npm"),
    ("pip", ".cache/pip"),
    ("composer", ".composer/cache"),
    ("composer-xdg", ".cache/composer"),
];

/// Apt's package archives (root steps only).
const APT_ARCHIVES: &str = "/var/cache/apt/archives";

/// What a tool's cache holds that is never exported with `--cache-mounts`: npm's
/// debug logs and update-check stamp.
fn export_skips(tool: &str) -> &'static [&'static str] {
    match tool {
        "npm" => &["_logs", "_update-notifier-last-checked"],
        _ => &[],
    }
}

/// The tool cache mounts of one command step.
#[derive(Debug, Default)]
pub struct ToolCaches {
    /// Image paths (absolute) of the mounted locations.
    pub locations: Vec<PathBuf>,
    /// Their directories in the store.
    pub caches: Vec<PersistentCache>,
}

impl ToolCaches {
    /// Adds the tool cache mounts of a step as `uid:gid` with environment `env` on the
    /// image `view` to `mounts` (after the step's own mounts and caches, which win),
    /// their directories under `store_mounts` (the store's mounts cache).
    pub fn mount(
        store_mounts: &Path,
        view: &dyn ImageView,
        env: &[(String, String)],
        (uid, gid): (u32, u32),
        mounts: &mut Vec<StepMount>,
    ) -> Result<Self, BuildError> {
        let mut wanted = Vec::new();
        if let Some(home) = home_of(view, env, uid) {
            for (tool, rel) in HOME_CACHES {
                wanted.push((tool, home.join(rel)));
            }
        }
        if uid == 0 && is_dir(view, Path::new("/var/cache/apt")) {
            wanted.push(("apt-archives", PathBuf::from(APT_ARCHIVES)));
        }
        let mut caches = ToolCaches::default();
        for (tool, dst) in wanted {
            let taken = mounts.iter().any(|m| overlaps(mount_dst(m), &dst));
            let blocked = view.stat(&dst).is_some_and(|m| m.kind != FileKind::Dir);
            if taken || blocked {
                continue;
            }
            let id = format!("flense-tool-cache/{tool}/{uid}:{gid}");
            let src = cache_dir(store_mounts, &id, Some((uid, gid)))?;
            // The sandbox mounts it from another working directory.
            let src = std::path::absolute(&src).map_err(io_err(&src))?;
            mounts.push(StepMount::Cache {
                src: src.clone(),
                dst: dst.clone(),
            });
            caches.locations.push(dst);
            caches.caches.push(PersistentCache {
                id,
                dir: src,
                owner: (uid, gid),
                skip: export_skips(tool),
            });
        }
        Ok(caches)
    }

    /// Restores the entries of directories the sandbox created as mount points for the
    /// tool caches (left out of the captured writes) when the step wrote something else
    /// into them (e.g. `~/.cache/other` next to the mounted `~/.cache/pip`): as the
    /// step's user would have created them, `0755` and owned by `uid:gid`.
    pub fn restore_parents(
        &self,
        view: &dyn ImageView,
        entries: &mut Vec<LayerEntry>,
        (uid, gid): (u32, u32),
    ) {
        let mut missing: Vec<PathBuf> = self
            .locations
            .iter()
            .flat_map(|l| l.ancestors().skip(1))
            .map(image_relative)
            .filter(|rel| !rel.as_os_str().is_empty() && view.stat(rel).is_none())
            .collect();
        missing.sort();
        missing.dedup();
        for dir in missing {
            let has = |e: &LayerEntry| image_relative(&e.path) == dir;
            let used = entries.iter().any(|e| {
                let rel = image_relative(&e.path);
                rel != dir && rel.starts_with(&dir)
            });
            if used && !entries.iter().any(has) {
                let at = entries.partition_point(|e| image_relative(&e.path) < dir);
                entries.insert(
                    at,
                    LayerEntry {
                        path: dir,
                        kind: EntryKind::Dir,
                        mode: 0o755,
                        uid,
                        gid,
                        // Clamped to SOURCE_DATE_EPOCH when written.
                        mtime: u64::MAX,
                        xattrs: Vec::new(),
                    },
                );
            }
        }
    }
}

/// The step user's home: `HOME` of the step's environment (what the tools read), else
/// the user's entry in `/etc/passwd`; only an absolute directory of the image.
fn home_of(view: &dyn ImageView, env: &[(String, String)], uid: u32) -> Option<PathBuf> {
    let from_env = env.iter().rev().find(|(k, _)| k == "HOME").map(|(_, v)| v);
    let home = match from_env {
        Some(h) => PathBuf::from(h),
        None => {
            let passwd = view.read(Path::new(PASSWD))?;
            let passwd = String::from_utf8_lossy(&passwd);
            let line = passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))?;
            PathBuf::from(line[5])
        }
    };
    (home.is_absolute() && is_dir(view, &home)).then_some(home)
}

fn is_dir(view: &dyn ImageView, path: &Path) -> bool {
    view.stat(path).is_some_and(|m| m.kind == FileKind::Dir)
}

fn mount_dst(m: &StepMount) -> &Path {
    match m {
        StepMount::Bind { dst, .. } | StepMount::Cache { dst, .. } => dst,
    }
}

/// Whether one of the image paths is at or below the other.
fn overlaps(a: &Path, b: &Path) -> bool {
    let (a, b) = (image_relative(a), image_relative(b));
    a.starts_with(&b) || b.starts_with(&a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::layers::view::LayerStackView;
    use crate::image::Content;
    use std::fs;

    fn image(dirs: &[&str]) -> (tempfile::TempDir, LayerStackView) {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        for d in dirs {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(
            lower.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nsomebody:x:65533:65533::/home/somebody:/bin/sh\n",
        )
        .unwrap();
        (tmp, LayerStackView::new(vec![lower]))
    }

    fn dsts(mounts: &[StepMount]) -> Vec<&Path> {
        mounts.iter().map(mount_dst).collect()
    }

    #[test]
    fn mounts_the_tool_caches_of_the_step_users_home() {
        let (tmp, view) = image(&["root", "home/somebody", "var/cache/apt"]);
        let store = tmp.path().join("mounts");
        let mut mounts = Vec::new();
        ToolCaches::mount(&store, &view, &[], (65533, 65533), &mut mounts).unwrap();
        assert_eq!(
            dsts(&mounts),
            [
                "/home/somebody/.npm",
                "/home/somebody/.cache/pip",
                "/home/somebody/.composer/cache",
                "/home/somebody/.cache/composer"
            ]
            .map(Path::new)
        );
        let env = [("HOME".to_string(), "/root".to_string())];
        let mut root = Vec::new();
        ToolCaches::mount(&store, &view, &env, (0, 0), &mut root).unwrap();
        assert_eq!(dsts(&root)[0], Path::new("/root/.npm"));
        assert_eq!(dsts(&root)[4], Path::new(APT_ARCHIVES));
        // One directory per tool and user, the same on the next step.
        let mut again = Vec::new();
        ToolCaches::mount(&store, &view, &[], (65533, 65533), &mut again).unwrap();
        assert_eq!(mounts, again);
        let StepMount::Cache { src: theirs, .. } = &root[0] else {
            panic!()
        };
        assert_ne!(
            Some(theirs),
            mounts.first().map(|m| match m {
                StepMount::Cache { src, .. } => src,
                StepMount::Bind { src, .. } => src,
            })
        );
    }

    #[test]
    fn skips_a_missing_home_and_locations_the_step_mounts_itself() {
        let (tmp, view) = image(&["var/cache"]);
        let store = tmp.path().join("mounts");
        let env = [("HOME".to_string(), "/home/nobody".to_string())];
        let mut mounts = Vec::new();
        ToolCaches::mount(&store, &view, &env, (0, 0), &mut mounts).unwrap();
        assert!(mounts.is_empty(), "{mounts:?}");

        let (tmp, view) = image(&["root"]);
        let own = StepMount::Cache {
            src: tmp.path().join("own"),
            dst: "/root/.cache".into(),
        };
        let mut mounts = vec![own.clone()];
        ToolCaches::mount(&tmp.path().join("m"), &view, &[], (0, 0), &mut mounts).unwrap();
        assert_eq!(
            dsts(&mounts),
            ["/root/.cache", "/root/.npm", "/root/.composer/cache"].map(Path::new)
        );
    }

    #[test]
    fn restores_a_mount_point_parent_the_step_also_wrote_into() {
        let (_tmp, view) = image(&["root"]);
        let caches = ToolCaches {
            locations: vec!["/root/.cache/pip".into(), "/root/.composer/cache".into()],
            caches: Vec::new(),
        };
        let mut entries = vec![LayerEntry {
            path: "root/.cache/other".into(),
            kind: EntryKind::File(Content::Bytes(Vec::new())),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1,
            xattrs: Vec::new(),
        }];
        caches.restore_parents(&view, &mut entries, (0, 0));
        let paths: Vec<_> = entries.iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            paths,
            [PathBuf::from("root/.cache"), "root/.cache/other".into()]
        );
        assert_eq!(entries[0].kind, EntryKind::Dir);
    }
}
