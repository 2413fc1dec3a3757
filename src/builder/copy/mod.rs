//! Copies: the sources of a copy, read through an [`ImageView`], become layer entries.
//!
//! - this module: BuildKit COPY semantics (spec §5.10) — follow a symlinked source,
//!   copy a directory's contents, wildcards (an empty match is allowed), a file lands in
//!   the destination or becomes it, a relative destination is joined to the working
//!   directory, missing parents are created owned by the copy owner, and per-copy
//!   `exclude` patterns apply relative to each source;
//! - [`context`]: the build context as an [`ImageView`], after `.dockerignore`;
//! - [`ignore`]: Docker's pattern matching, for `.dockerignore` and `exclude`.
//!
//! Data flow: a source view (the context, a finished variant, an image's layers) and a
//! [`CopyRequest`] go into [`copy_into`], which adds entries to an
//! [`EntrySet`] over the stage's current filesystem; the executor commits those entries
//! as the copy's layer, the dry run only checks that the sources exist.

pub mod context;
pub mod ignore;

use std::path::{Path, PathBuf};

use crate::image::{Content, EntryKind, LayerEntry};

use crate::builder::copy::ignore::{compile, IgnoreError, PatternMatcher};
use crate::builder::layers::entries::EntrySet;
use crate::builder::layers::image_relative;
use crate::builder::layers::view::{FileKind, FileMeta, ImageView};

/// Errors of a copy.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source without wildcards does not exist.
    #[error("copy source {0:?} not found")]
    NotFound(String),
    /// A symlink chain that does not end.
    #[error("copy source {0:?}: too many levels of symbolic links")]
    SymlinkLoop(String),
    /// A bad `exclude` or wildcard pattern. The pattern error is part of the message, not
    /// a source: the dry run puts where the copy looked after this message.
    #[error("copy pattern: {0}")]
    Pattern(IgnoreError),
}

impl From<IgnoreError> for CopyError {
    fn from(e: IgnoreError) -> Self {
        CopyError::Pattern(e)
    }
}

/// Who owns what a copy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// `--chown=uid:gid`: everything written, and new parent directories.
    Chown(u32, u32),
    /// No chown on a copy from the build context: root, as Docker does.
    Root,
    /// No chown on a copy from another image or variant: the source's owner.
    Keep,
}

impl Owner {
    fn of(self, meta: &FileMeta) -> (u32, u32) {
        match self {
            Owner::Chown(u, g) => (u, g),
            Owner::Root => (0, 0),
            Owner::Keep => (meta.uid, meta.gid),
        }
    }

    fn new_dirs(self) -> (u32, u32) {
        match self {
            Owner::Chown(u, g) => (u, g),
            Owner::Root | Owner::Keep => (0, 0),
        }
    }
}

/// One copy instruction.
#[derive(Debug, Clone)]
pub struct CopyRequest<'a> {
    /// Sources as written; relative ones resolve against `source_base`.
    pub sources: &'a [String],
    /// Directory of the source filesystem that relative sources resolve against
    /// (`/` for the build context, the variant's final working directory otherwise).
    pub source_base: &'a Path,
    /// Destination as written; relative ones resolve against `workdir`.
    pub destination: &'a str,
    /// The working directory of the image at this step.
    pub workdir: &'a Path,
    /// Ownership of what is written.
    pub owner: Owner,
    /// `exclude` patterns, relative to each source.
    pub exclude: &'a [String],
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Follows symlinks at `path` within `src` (targets stay inside its root).
fn follow(src: &dyn ImageView, path: PathBuf, written: &str) -> Result<PathBuf, CopyError> {
    let mut cur = path;
    for _ in 0..40 {
        match src.stat(&cur) {
            Some(m) if m.kind == FileKind::Symlink => {
                let target = src.read_link(&cur).unwrap_or_default();
                let parent = cur.parent().map(Path::to_path_buf).unwrap_or_default();
                cur = image_relative(&parent.join(target));
            }
            _ => return Ok(cur),
        }
    }
    Err(CopyError::SymlinkLoop(written.to_string()))
}

/// Expands one source (with wildcards, component by component) to image-relative paths.
fn resolve(src: &dyn ImageView, base: &Path, source: &str) -> Result<Vec<PathBuf>, CopyError> {
    let full = image_relative(&base.join(source));
    if !has_wildcard(source) {
        let p = follow(src, full, source)?;
        return match src.stat(&p) {
            Some(_) => Ok(vec![p]),
            None => Err(CopyError::NotFound(source.to_string())),
        };
    }
    let mut current = vec![PathBuf::new()];
    for comp in full.components() {
        let name = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for dir in &current {
            if has_wildcard(&name) {
                let re = compile(&name)?;
                for child in src.list(dir) {
                    if re.is_match(&child) {
                        next.push(dir.join(child));
                    }
                }
            } else {
                let p = dir.join(&*name);
                if src.stat(&p).is_some() {
                    next.push(p);
                }
            }
        }
        current = next;
    }
    current
        .into_iter()
        .map(|p| follow(src, p, source))
        .collect()
}

/// Adds the entries of one copy to `set` (whose view is the image being built).
pub fn copy_into(
    set: &mut EntrySet<'_>,
    src: &dyn ImageView,
    req: &CopyRequest<'_>,
) -> Result<(), CopyError> {
    let exclude = PatternMatcher::new(req.exclude)?;
    let wildcard = req.sources.iter().any(|s| has_wildcard(s));
    let dest_written_as_dir = req.destination.ends_with('/') || req.sources.len() > 1 || wildcard;
    let dest = image_relative(&req.workdir.join(req.destination));
    let (du, dg) = req.owner.new_dirs();
    for source in req.sources {
        for path in resolve(src, req.source_base, source)? {
            let Some(meta) = src.stat(&path) else {
                continue;
            };
            if meta.kind == FileKind::Dir {
                copy_dir_contents(set, src, &path, &dest, &meta, req.owner, &exclude);
                continue;
            }
            let into_dir =
                dest_written_as_dir || set.stat(&dest).is_some_and(|m| m.kind == FileKind::Dir);
            let target = if into_dir {
                let name = path.file_name().map(PathBuf::from).unwrap_or_default();
                if set.stat(&dest).is_none() && !dest.as_os_str().is_empty() {
                    set.parents(&dest, du, dg);
                    set.put(dest.clone(), EntryKind::Dir, 0o755, du, dg, set.epoch());
                }
                dest.join(name)
            } else {
                dest.clone()
            };
            if target.as_os_str().is_empty() {
                continue; // a file cannot replace the image root
            }
            set.parents(&target, du, dg);
            put_one(set, src, &path, &target, &meta, req.owner);
        }
    }
    Ok(())
}

fn put_one(
    set: &mut EntrySet<'_>,
    src: &dyn ImageView,
    from: &Path,
    to: &Path,
    meta: &FileMeta,
    owner: Owner,
) {
    let (uid, gid) = owner.of(meta);
    let kind = match meta.kind {
        FileKind::Dir => EntryKind::Dir,
        FileKind::File => EntryKind::File(match src.host_path(from) {
            Some(p) => Content::File(p),
            None => Content::Bytes(src.read(from).unwrap_or_default()),
        }),
        FileKind::Symlink => EntryKind::Symlink(src.read_link(from).unwrap_or_default()),
        FileKind::Other => return,
    };
    let mode = if meta.kind == FileKind::Symlink {
        0o777
    } else {
        meta.mode
    };
    set.put(to.to_path_buf(), kind, mode, uid, gid, meta.mtime);
}

/// The entries of the copy `req` onto the view of `set`, made from `onto_empty`, the
/// entries of the same copy onto an empty filesystem (what [`copy_into`] over
/// [`crate::builder::layers::view::EmptyView`] gives, sorted), without listing the
/// sources again. A copy of one directory (one source, without wildcards) writes the
/// same entries below its destination onto any filesystem: only the destination and
/// its parents depend on what the filesystem holds, and they are written again here.
/// `None` for a copy of another form (list it onto the view instead).
pub fn rebase(
    mut set: EntrySet<'_>,
    src: &dyn ImageView,
    req: &CopyRequest<'_>,
    mut onto_empty: Vec<LayerEntry>,
) -> Option<Vec<LayerEntry>> {
    let [source] = req.sources else {
        return None;
    };
    if has_wildcard(source) {
        return None;
    }
    let resolved = resolve(src, req.source_base, source).ok()?;
    let [path] = resolved.as_slice() else {
        return None;
    };
    let meta = src.stat(path).filter(|m| m.kind == FileKind::Dir)?;
    let dest = image_relative(&req.workdir.join(req.destination));
    // Onto an empty filesystem every parent of the destination and the destination
    // itself were new: they come first, the contents after them.
    let head = onto_empty
        .iter()
        .take_while(|e| dest.starts_with(&e.path))
        .count();
    if head != dest.components().count() {
        return None;
    }
    dest_dir(&mut set, &dest, &meta, req.owner);
    onto_empty.splice(..head, set.into_entries());
    Some(onto_empty)
}

fn copy_dir_contents(
    set: &mut EntrySet<'_>,
    src: &dyn ImageView,
    dir: &Path,
    dest: &Path,
    dir_meta: &FileMeta,
    owner: Owner,
    exclude: &PatternMatcher,
) {
    dest_dir(set, dest, dir_meta, owner);
    walk(set, src, dir, dest, "", owner, exclude);
}

/// The destination directory of a directory copy, and its parents: as they are when
/// they exist, else new (the destination with the metadata of the source directory).
fn dest_dir(set: &mut EntrySet<'_>, dest: &Path, dir_meta: &FileMeta, owner: Owner) {
    let (du, dg) = owner.new_dirs();
    if !dest.as_os_str().is_empty() {
        set.parents(dest, du, dg);
        match set.stat(dest) {
            Some(m) if m.kind == FileKind::Dir => {
                if set.view().stat(dest).is_none() {
                    // created earlier in this layer: fine as it is
                } else {
                    let (u, g, mode, mt) = (m.uid, m.gid, m.mode, m.mtime);
                    set.put(dest.to_path_buf(), EntryKind::Dir, mode, u, g, mt);
                }
            }
            _ => {
                let (u, g) = owner.of(dir_meta);
                set.put(
                    dest.to_path_buf(),
                    EntryKind::Dir,
                    dir_meta.mode,
                    u,
                    g,
                    dir_meta.mtime,
                );
            }
        }
    }
}

/// Copies the children of `dir` to `dest`; returns whether anything was written.
fn walk(
    set: &mut EntrySet<'_>,
    src: &dyn ImageView,
    dir: &Path,
    dest: &Path,
    rel: &str,
    owner: Owner,
    exclude: &PatternMatcher,
) -> bool {
    let mut wrote = false;
    for name in src.list(dir) {
        let from = dir.join(&name);
        let to = dest.join(&name);
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let Some(meta) = src.stat(&from) else {
            continue;
        };
        let excluded = !exclude.is_empty() && exclude.matches(&child_rel);
        if meta.kind == FileKind::Dir {
            if excluded && !exclude.may_include_below(&child_rel) {
                continue;
            }
            let (u, g) = owner.of(&meta);
            set.put(to.clone(), EntryKind::Dir, meta.mode, u, g, meta.mtime);
            let inner = walk(set, src, &from, &to, &child_rel, owner, exclude);
            if excluded && !inner {
                set.remove(&to);
            } else {
                wrote = true;
            }
        } else if !excluded {
            put_one(set, src, &from, &to, &meta, owner);
            wrote = true;
        }
    }
    wrote
}

#[cfg(test)]
mod tests;
