//! BuildKit COPY semantics (spec §5.10) as layer entries: follow a symlinked source,
//! copy a directory's contents, wildcards (an empty match is allowed), a file lands in
//! the destination or becomes it, a relative destination is joined to the working
//! directory, missing parents are created owned by the copy owner, and per-copy
//! `exclude` patterns apply relative to each source.

use std::path::{Path, PathBuf};

use crate::image::{Content, EntryKind};

use super::entries::EntrySet;
use super::ignore::{compile, IgnoreError, PatternMatcher};
use super::view::{image_relative, FileKind, FileMeta, ImageView};

/// Errors of a copy.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source without wildcards does not exist.
    #[error("copy source {0:?} not found")]
    NotFound(String),
    /// A symlink chain that does not end.
    #[error("copy source {0:?}: too many levels of symbolic links")]
    SymlinkLoop(String),
    /// A bad `exclude` or wildcard pattern.
    #[error("copy pattern: {0}")]
    Pattern(#[from] IgnoreError),
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

fn copy_dir_contents(
    set: &mut EntrySet<'_>,
    src: &dyn ImageView,
    dir: &Path,
    dest: &Path,
    dir_meta: &FileMeta,
    owner: Owner,
    exclude: &PatternMatcher,
) {
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
    walk(set, src, dir, dest, "", owner, exclude);
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
mod tests {
    use super::*;
    use crate::build::context::BuildContext;
    use crate::build::view::{EmptyView, LayerStackView};
    use crate::image::LayerEntry;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn context() -> (tempfile::TempDir, BuildContext) {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("src/lib")).unwrap();
        fs::write(r.join("package.json"), "{}").unwrap();
        fs::write(r.join("package-lock.json"), "{}").unwrap();
        fs::write(r.join("src/index.js"), "i").unwrap();
        fs::write(r.join("src/lib/util.js"), "u").unwrap();
        fs::write(r.join("src/lib/util.test.js"), "t").unwrap();
        symlink("src/index.js", r.join("main.js")).unwrap();
        let ctx = BuildContext::open(r).unwrap();
        (tmp, ctx)
    }

    fn run(
        view: &dyn ImageView,
        src: &dyn ImageView,
        sources: &[&str],
        dest: &str,
        owner: Owner,
        exclude: &[&str],
    ) -> Result<Vec<LayerEntry>, CopyError> {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        let mut set = EntrySet::new(view, 0);
        copy_into(
            &mut set,
            src,
            &CopyRequest {
                sources: &sources,
                source_base: Path::new("/"),
                destination: dest,
                workdir: Path::new("/srv/app"),
                owner,
                exclude: &exclude,
            },
        )?;
        Ok(set.into_entries())
    }

    fn paths(entries: &[LayerEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| e.path.to_string_lossy().into_owned())
            .collect()
    }

    fn base_with_app() -> (tempfile::TempDir, LayerStackView) {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("srv/app")).unwrap();
        let v = LayerStackView::new(vec![tmp.path().to_path_buf()]);
        (tmp, v)
    }

    #[test]
    fn local_dot_copies_contents_into_workdir_with_owner() {
        let (_t, ctx) = context();
        let (_b, base) = base_with_app();
        let e = run(&base, &ctx, &["."], ".", Owner::Chown(65533, 65533), &[]).unwrap();
        assert!(paths(&e).contains(&"srv/app/src/lib/util.js".to_string()));
        assert!(paths(&e).contains(&"srv/app/package.json".to_string()));
        let f = e
            .iter()
            .find(|x| x.path == Path::new("srv/app/src/index.js"))
            .unwrap();
        assert_eq!((f.uid, f.gid), (65533, 65533));
        let link = e
            .iter()
            .find(|x| x.path == Path::new("srv/app/main.js"))
            .unwrap();
        assert_eq!(link.kind, EntryKind::Symlink("src/index.js".into()));
        // The existing workdir keeps its own metadata (root-owned here).
        let app = e.iter().find(|x| x.path == Path::new("srv/app")).unwrap();
        assert_eq!(
            app.uid,
            fs::metadata(_b.path().join("srv/app"))
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .unwrap()
        );
    }

    #[test]
    fn several_files_go_into_a_directory() {
        let (_t, ctx) = context();
        let (_b, base) = base_with_app();
        let e = run(
            &base,
            &ctx,
            &["package.json", "package-lock.json"],
            "./",
            Owner::Chown(1, 1),
            &[],
        )
        .unwrap();
        assert_eq!(
            paths(&e),
            vec![
                "srv",
                "srv/app",
                "srv/app/package-lock.json",
                "srv/app/package.json"
            ]
        );
    }

    #[test]
    fn a_file_becomes_a_destination_without_trailing_slash() {
        let (_t, ctx) = context();
        let e = run(
            &EmptyView,
            &ctx,
            &["src/index.js"],
            "/bin/app.js",
            Owner::Root,
            &[],
        )
        .unwrap();
        assert_eq!(paths(&e), vec!["bin", "bin/app.js"]);
        assert_eq!(e[0].uid, 0);
        let e = run(
            &EmptyView,
            &ctx,
            &["src/index.js"],
            "/bin/",
            Owner::Root,
            &[],
        )
        .unwrap();
        assert_eq!(paths(&e), vec!["bin", "bin/index.js"]);
    }

    #[test]
    fn new_parent_directories_belong_to_the_copy_owner() {
        let (_t, ctx) = context();
        let e = run(
            &EmptyView,
            &ctx,
            &["src/lib/util.js"],
            "/a/b/",
            Owner::Chown(7, 8),
            &[],
        )
        .unwrap();
        for x in &e {
            assert_eq!((x.uid, x.gid), (7, 8), "{:?}", x.path);
        }
    }

    #[test]
    fn symlinked_source_is_followed() {
        let (_t, ctx) = context();
        let e = run(&EmptyView, &ctx, &["main.js"], "/x/", Owner::Root, &[]).unwrap();
        let f = e
            .iter()
            .find(|x| x.path == Path::new("x/index.js"))
            .unwrap();
        assert!(matches!(f.kind, EntryKind::File(_)));
    }

    #[test]
    fn wildcards_and_empty_wildcards() {
        let (_t, ctx) = context();
        let e = run(&EmptyView, &ctx, &["package*.json"], "/d", Owner::Root, &[]).unwrap();
        assert_eq!(
            paths(&e),
            vec!["d", "d/package-lock.json", "d/package.json"]
        );
        let e = run(&EmptyView, &ctx, &["*.none"], "/d", Owner::Root, &[]).unwrap();
        assert!(e.is_empty());
    }

    #[test]
    fn missing_source_is_an_error_naming_it() {
        let (_t, ctx) = context();
        let err = run(&EmptyView, &ctx, &["nope.txt"], ".", Owner::Root, &[]).unwrap_err();
        assert!(err.to_string().contains("nope.txt"));
    }

    #[test]
    fn excludes_apply_relative_to_the_source() {
        let (_t, ctx) = context();
        let e = run(
            &EmptyView,
            &ctx,
            &["src"],
            "/out",
            Owner::Root,
            &["**/*.test.js", "lib/util.js"],
        )
        .unwrap();
        assert_eq!(paths(&e), vec!["out", "out/index.js", "out/lib"]);
        let e = run(
            &EmptyView,
            &ctx,
            &["src"],
            "/out",
            Owner::Root,
            &["lib", "!lib/util.js"],
        )
        .unwrap();
        assert_eq!(
            paths(&e),
            vec!["out", "out/index.js", "out/lib", "out/lib/util.js"]
        );
    }

    #[test]
    fn copy_from_an_image_keeps_source_ownership_without_chown() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("src")).unwrap();
        fs::write(tmp.path().join("src/hello"), "bin").unwrap();
        let other = LayerStackView::new(vec![tmp.path().to_path_buf()]);
        let sources = vec!["hello".to_string()];
        let mut set = EntrySet::new(&EmptyView, 0);
        copy_into(
            &mut set,
            &other,
            &CopyRequest {
                sources: &sources,
                source_base: Path::new("/src"),
                destination: "/hello-world",
                workdir: Path::new("/"),
                owner: Owner::Keep,
                exclude: &[],
            },
        )
        .unwrap();
        let e = set.into_entries();
        let me = nix::unistd::getuid().as_raw();
        assert_eq!(paths(&e), vec!["hello-world"]);
        assert_eq!(e[0].uid, me);
    }
}
