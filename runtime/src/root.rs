//! Preparing a sandbox's root filesystem on the host side: the overlay's upper, work
//! and mount-point directories and its mount options, or the copied tree of the
//! fallback.

use std::path::{Path, PathBuf};

use crate::child::RootState;
use crate::copy;
use crate::error::RuntimeError;
use crate::init::RootMount;
use crate::spec::{Mount, RootFs, Sandbox};

impl Sandbox {
    /// Creates the directories of the root filesystem; `copy` forces the copy fallback.
    pub(crate) fn prepare_root(
        &self,
        copy: bool,
    ) -> Result<(RootMount, PathBuf, RootState), RuntimeError> {
        let mkdir = |p: &Path| {
            std::fs::create_dir_all(p)
                .map_err(|e| RuntimeError::io(format!("create {}", p.display()), e))
        };
        for m in &self.mounts {
            if let Mount::Cache { src, .. } = m {
                mkdir(src)?;
            }
        }
        match &self.root {
            RootFs::Dir { path, writable } => Ok((
                RootMount::Bind {
                    writable: *writable,
                },
                absolute(path)?,
                RootState::Dir,
            )),
            RootFs::Overlay(ov) => {
                let state = absolute(&ov.state_dir)?;
                let lowers = ov
                    .lowers
                    .iter()
                    .map(|l| absolute(l))
                    .collect::<Result<Vec<_>, _>>()?;
                if copy || ov.force_copy {
                    if ov.force_copy {
                        tracing::info!("copy fallback forced: copied root and stat-walk diff");
                    }
                    let tree = state.join("copy");
                    let snapshot = copy::build_tree(&lowers, &tree)?;
                    return Ok((
                        RootMount::Bind { writable: true },
                        tree.clone(),
                        RootState::Copy {
                            tree,
                            snapshot,
                            prune: Vec::new(),
                        },
                    ));
                }
                let (upper, work, merged) = (
                    state.join("upper"),
                    state.join("work"),
                    state.join("merged"),
                );
                for d in [&upper, &work, &merged] {
                    mkdir(d)?;
                }
                let mut mount_lowers = lowers.clone();
                if mount_lowers.is_empty() {
                    let empty = state.join("empty");
                    mkdir(&empty)?;
                    mount_lowers.push(empty);
                }
                for p in mount_lowers.iter().chain([&upper, &work]) {
                    let s = p.to_string_lossy();
                    if s.contains([':', ',']) {
                        return Err(RuntimeError::InvalidSpec(format!(
                            "overlay directory {s} contains ':' or ','"
                        )));
                    }
                }
                let (options, mount_cwd) = overlay_options(&mount_lowers, &upper, &work)?;
                Ok((
                    RootMount::Overlay { options, mount_cwd },
                    merged,
                    RootState::Overlay { upper, lowers },
                ))
            }
        }
    }
}

/// The overlay mount options. When absolute lower paths do not fit in the one page the
/// kernel takes, they are given relative to their common parent, which becomes the
/// working directory of the mount call.
fn overlay_options(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<(String, Option<PathBuf>), RuntimeError> {
    const PAGE: usize = 4000;
    let build = |lowers: Vec<String>| {
        format!(
            "lowerdir={},upperdir={},workdir={},userxattr",
            lowers.join(":"),
            upper.display(),
            work.display()
        )
    };
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let options = build(lowers.iter().rev().map(|p| text(p)).collect());
    if options.len() <= PAGE {
        return Ok((options, None));
    }
    let mut common = lowers[0].clone();
    while !lowers.iter().all(|l| l.starts_with(&common)) {
        if !common.pop() {
            break;
        }
    }
    let relative: Vec<String> = lowers
        .iter()
        .rev()
        .map(|l| text(l.strip_prefix(&common).unwrap_or(l)))
        .collect();
    let options = build(relative);
    if options.len() > PAGE {
        return Err(RuntimeError::InvalidSpec(format!(
            "{} layers give overlay options longer than a page",
            lowers.len()
        )));
    }
    Ok((options, Some(common)))
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf, RuntimeError> {
    std::path::absolute(p).map_err(|e| RuntimeError::io(format!("resolve {}", p.display()), e))
}
