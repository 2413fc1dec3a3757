//! The per-instruction work of the executor for copies (from the context, other
//! variants and images) and fixed files, and the owner rules shared with Run steps
//! (which are in [`crate::builder::run::step`]).

use std::path::{Path, PathBuf};

use crate::image::{Content, EntryKind, LayerEntry};
use crate::plan::{CopySource, CopySpec, Instruction};

use crate::builder::copy::{copy_into, CopyRequest, Owner};
use crate::builder::events::StepStatus;
use crate::builder::execute::{instruction_json, Executor, StageLayer, StageState};
use crate::builder::layers::cache::{entries_digest, CacheKey};
use crate::builder::layers::entries::EntrySet;
use crate::builder::layers::view::{image_relative, FileKind, ImageView, LayerStackView};
use crate::builder::BuildError;

/// A user ID and its primary group as the image's `/etc/passwd` gives them.
pub fn resolve_user(view: &dyn ImageView, user: &str) -> (u32, u32) {
    let user = user.split(':').next().unwrap_or_default();
    let passwd = view
        .read(Path::new("/etc/passwd"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let entries: Vec<Vec<&str>> = passwd.lines().map(|l| l.split(':').collect()).collect();
    let by = |f: &dyn Fn(&Vec<&str>) -> bool| -> Option<(u32, u32)> {
        let e = entries.iter().find(|e| e.len() >= 4 && f(e))?;
        Some((e[2].parse().ok()?, e[3].parse().ok()?))
    };
    match user.parse::<u32>() {
        Ok(uid) => by(&|e| e[2] == user).unwrap_or((uid, 0)),
        Err(_) => by(&|e| e[0] == user).unwrap_or((0, 0)),
    }
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

/// A view of unpacked image layers, with their owner indexes.
pub(crate) fn layers_view(layers: Vec<StageLayer>) -> LayerStackView {
    let (dirs, owners) = layers.into_iter().map(|l| (l.dir, l.owners)).unzip();
    LayerStackView::with_owners(dirs, owners)
}

/// The owner of a copy's entries: its `--chown`, else `default` (root for the build
/// context, the source's own owners for copies from variants and images).
pub(crate) fn copy_owner(spec: &CopySpec, default: Owner) -> Owner {
    spec.chown
        .as_ref()
        .map(|o| Owner::Chown(o.uid, o.gid))
        .unwrap_or(default)
}

/// The copy code's request for a plan copy whose sources are relative to `base`.
pub(crate) fn copy_request<'s>(
    spec: &'s CopySpec,
    base: &'s Path,
    owner: Owner,
) -> CopyRequest<'s> {
    CopyRequest {
        sources: &spec.sources,
        source_base: base,
        destination: &spec.destination,
        workdir: Path::new(&spec.workdir),
        owner,
        exclude: &spec.exclude,
    }
}

impl Executor<'_> {
    fn copy_common(
        &self,
        st: &mut StageState,
        instr: &Instruction,
        text: &str,
        src: &dyn ImageView,
        req: &CopyRequest<'_>,
    ) -> Result<StepStatus, BuildError> {
        let view = st.view();
        let mut set = EntrySet::new(&view, self.settings.epoch);
        copy_into(&mut set, src, req).map_err(|source| BuildError::Copy {
            variant: st.variant.clone(),
            step: text.lines().next().unwrap_or_default().to_string(),
            source,
        })?;
        let entries = set.into_entries();
        let digest = entries_digest(&entries, &mut self.stats.borrow_mut(), self.settings.epoch)?;
        let key = CacheKey::derive(
            Some(&st.key),
            &instruction_json(instr),
            &[digest.as_bytes()],
        );
        self.layer_step(st, key, text, |_| Ok(entries.into()))
    }

    pub(crate) fn copy_local(
        &self,
        st: &mut StageState,
        instr: &Instruction,
        text: &str,
        spec: &CopySpec,
    ) -> Result<StepStatus, BuildError> {
        let ctx = self.context()?;
        let req = copy_request(spec, Path::new("/"), copy_owner(spec, Owner::Root));
        self.copy_common(st, instr, text, ctx, &req)
    }

    pub(crate) fn copy_from(
        &self,
        st: &mut StageState,
        instr: &Instruction,
        text: &str,
        from: &CopySource,
        source_workdir: Option<&str>,
        spec: &CopySpec,
    ) -> Result<StepStatus, BuildError> {
        let src = match from {
            CopySource::Variant(v) => {
                let stages = self.stages.borrow();
                stages
                    .get(v)
                    .ok_or_else(|| BuildError::UnknownStage(v.clone()))?
                    .view()
            }
            CopySource::Image(r) => {
                let img = self.images.image(r)?;
                layers_view(self.unpack_image(&img)?)
            }
        };
        let base = PathBuf::from(source_workdir.unwrap_or("/"));
        let req = copy_request(spec, &base, copy_owner(spec, Owner::Keep));
        self.copy_common(st, instr, text, &src, &req)
    }

    pub(crate) fn file(
        &self,
        st: &mut StageState,
        instr: &Instruction,
        text: &str,
        path: &str,
        content: &str,
        mode: u32,
    ) -> Result<StepStatus, BuildError> {
        let key = CacheKey::derive(Some(&st.key), &instruction_json(instr), &[]);
        let epoch = self.settings.epoch;
        self.layer_step(st, key, text, |st| {
            let view = st.view();
            let mut set = EntrySet::new(&view, epoch);
            let rel = image_relative(Path::new(path));
            set.parents(&rel, 0, 0);
            set.put(
                rel,
                EntryKind::File(Content::Bytes(content.as_bytes().to_vec())),
                mode,
                0,
                0,
                epoch,
            );
            Ok(set.into_entries().into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::layers::view::EmptyView;
    use std::fs;

    #[test]
    fn users_resolve_through_passwd() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("etc")).unwrap();
        fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nrunuser:x:900:901::/home/runuser:/bin/sh\n",
        )
        .unwrap();
        let view = LayerStackView::new(vec![tmp.path().to_path_buf()]);
        assert_eq!(resolve_user(&view, "900"), (900, 901));
        assert_eq!(resolve_user(&view, "runuser"), (900, 901));
        assert_eq!(resolve_user(&view, "1234"), (1234, 0));
        assert_eq!(resolve_user(&EmptyView, "0"), (0, 0));
    }
}
