//! The parts of a command step's request ([`super::runner::StepRequest`]) and of its
//! outcome that depend on the plan: the environment, the script mount, scratch copies
//! of mounted filesystems, cache directories (locked, shared or exclusive), and the
//! owners of captured paths that existed before the step.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::builder::imageconfig::{env_pairs, set_env};
use crate::builder::layers::image_relative;
use crate::builder::layers::shared_mounts::PersistentCache;
use crate::builder::layers::stage::{StageState, Stages};
use crate::builder::layers::view::{FileKind, ImageView};
use crate::builder::walk::Session;
use crate::builder::{io_err, BuildError};
use crate::image::oci::DEFAULT_PATH;
use crate::image::{EntryKind, LayerEntry};
use crate::plan::{CacheAccess, Plan, RunContext};
use crate::store::{CacheDir, CacheMountDir, CacheMountLock};

use super::mounts::{cache_dir, materialize};
use super::runner::StepMount;

/// The environment of a command: base image Env, platform variables, the plan's build
/// environment, proxy variables; PATH defaulted like BuildKit.
pub fn step_env(plan: &Plan, st: &StageState, ctx: &RunContext) -> Vec<(String, String)> {
    let mut env = env_pairs(&st.base_env());
    for v in plan
        .platform_env
        .iter()
        .chain(&ctx.env)
        .chain(&plan.proxy_env)
    {
        set_env(&mut env, &v.name, v.value.clone());
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    env
}

/// Writes `script` into `dir` and returns the argv that runs it and its read-only mount
/// at `/<sha256>`.
pub fn script_mount(
    dir: &Path,
    script: &str,
    sha256: &str,
) -> Result<(Vec<String>, StepMount), BuildError> {
    let file = dir.join("script");
    fs::write(&file, script).map_err(io_err(&file))?;
    fs::set_permissions(&file, fs::Permissions::from_mode(0o555)).map_err(io_err(&file))?;
    let mount = StepMount::Bind {
        src: dir.to_path_buf(),
        dst: PathBuf::from(format!("/{sha256}")),
        readonly: true,
    };
    Ok((vec![format!("/{sha256}/script")], mount))
}

/// An absolute path in the sandbox for `path` of a step working in `workdir`.
fn in_sandbox(workdir: &Path, path: &str) -> PathBuf {
    Path::new("/").join(image_relative(&workdir.join(path)))
}

/// Adds the step's mounts to `mounts`: a scratch copy (under `state_dir`) of each
/// mounted filesystem, whose changes are discarded.
pub fn source_mounts(
    session: &Session<'_>,
    done: &Stages,
    ctx: &RunContext,
    state_dir: &Path,
    mounts: &mut Vec<StepMount>,
) -> Result<(), BuildError> {
    let workdir = Path::new(&ctx.workdir);
    for (i, m) in ctx.mounts.iter().enumerate() {
        let source = session.mount_source(&m.from, done)?;
        let host = state_dir.join(format!("mount-{i}"));
        let from = Path::new("/").join(m.source.as_deref().unwrap_or("/"));
        materialize(source.as_ref(), &from, &host)?;
        mounts.push(StepMount::Bind {
            src: host,
            dst: in_sandbox(workdir, &m.destination),
            readonly: false,
        });
    }
    Ok(())
}

/// Adds the step's caches to `mounts`: a private one under `state_dir`, a shared or
/// locked one in the store (restored first from a shared cache with `--cache-mounts`,
/// see [`crate::builder::layers::shared_mounts`]). Returns the locks of the store's
/// ones (exclusive for locked caches, else shared), to hold while the step runs.
pub fn cache_mounts(
    session: &Session<'_>,
    ctx: &RunContext,
    state_dir: &Path,
    mounts: &mut Vec<StepMount>,
) -> Result<Vec<CacheMountLock>, BuildError> {
    let workdir = Path::new(&ctx.workdir);
    let mut to_lock = Vec::new();
    for (i, c) in ctx.caches.iter().enumerate() {
        let src = match c.access {
            CacheAccess::Private => {
                let p = state_dir.join(format!("cache-{i}"));
                fs::create_dir_all(&p).map_err(io_err(&p))?;
                p
            }
            CacheAccess::Shared | CacheAccess::Locked => {
                let layers = session.layers();
                let store_mounts = layers.store().cache_dir(CacheDir::Mounts);
                let dir = cache_dir(&store_mounts, &c.id, c.owner)?;
                layers.prepare_cache_mount(&PersistentCache {
                    id: c.id.clone(),
                    dir: dir.clone(),
                    owner: c.owner.unwrap_or((0, 0)),
                    skip: &[],
                });
                to_lock.push((CacheMountDir::new(&dir), c.access == CacheAccess::Locked));
                dir
            }
        };
        mounts.push(StepMount::Cache {
            src,
            dst: in_sandbox(workdir, &c.destination),
        });
    }
    // Restored above (each under its exclusive lock) before holding any lock here.
    to_lock
        .iter()
        .map(|(dir, exclusive)| Ok(dir.lock(*exclusive)?))
        .collect()
}

/// Gives entries that existed before a step (same kind) their owner in the image: a
/// single-ID sandbox reports every captured path as the step user's, but a copied-up
/// parent directory or an edited file keeps its owner (chown to another ID is impossible
/// there), so root and rootless builds give the same layer.
pub fn keep_existing_owners(view: &dyn ImageView, entries: &mut [LayerEntry]) {
    for e in entries.iter_mut() {
        let kind = match e.kind {
            EntryKind::Dir => FileKind::Dir,
            EntryKind::File(_) => FileKind::File,
            EntryKind::Symlink(_) => FileKind::Symlink,
            _ => continue,
        };
        if let Some(meta) = view.stat(&e.path) {
            if meta.kind == kind {
                e.uid = meta.uid;
                e.gid = meta.gid;
            }
        }
    }
}
