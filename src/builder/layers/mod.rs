//! The layers of a build, from the unpacked directories in the store to the layer a
//! step commits.
//!
//! - [`view`]: an image's filesystem between steps, read through a stack of unpacked
//!   layer directories with overlay semantics ([`view::ImageView`]); [`tar_view`]: the
//!   same read from layer blobs, for the preflight's checks without unpacking;
//! - [`owners`]: the real owners and modes of layers unpacked without root;
//! - [`entries`]: the entries a step writes ([`entries::EntrySet`]), made over a view;
//! - [`stage`]: the state of a stage being built ([`stage::StageState`]: its layers and
//!   cache key) and the finished stages;
//! - [`diff`]: the sandbox's captured writes as layer entries;
//! - [`bookkeeping`]: tools' logs and caches of caches dropped from a command's writes;
//! - [`cache`]: content-derived cache keys, the stat cache and the cache index;
//! - [`remote`]: the shared caches of a build (`--cache-from`, `--cache-to`);
//! - [`shared_mounts`]: cache mounts' contents through them (`--cache-mounts`);
//! - [`commit`]: [`commit::Layers`], the only writer: unpacks images, reuses a cached
//!   layer (from the store, else fetched from a shared cache) or commits a step's entries
//!   as a new one (lookup, lock, look again, fetch, produce, commit), adopting a Run
//!   step's captured tree ([`adopt`]) as its unpacked directory. Layers are unpacked
//!   only when a step runs on top of them.
//!
//! Data flows view -> entries -> commit -> (store blob, cache record, unpacked
//! directory) -> the next step's view.

pub mod adopt;
pub mod bookkeeping;
pub mod cache;
pub mod commit;
pub mod diff;
pub mod entries;
pub mod owners;
pub mod remote;
pub mod shared_mounts;
pub mod sorted_paths;
pub mod stage;
pub mod tar_view;
pub mod view;

use std::path::{Component, Path, PathBuf};

/// Normalises an image path to its components relative to the root, resolving `.` and
/// `..` lexically (never above the root).
pub fn image_relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_relative_never_leaves_root() {
        assert_eq!(
            image_relative(Path::new("/a/../../b/./c")),
            PathBuf::from("b/c")
        );
    }
}
