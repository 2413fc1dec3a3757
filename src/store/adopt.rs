//! Adopting a prepared directory tree as an unpacked layer, instead of extracting the
//! layer's blob again.
//!
//! A build step's captured tree (the overlay upper directory, see `builder::layers::adopt`) is
//! already on the store's filesystem; once the caller has made it look exactly like
//! what [`Store::unpack_layer`] would extract from the layer's blob, it is moved into
//! `<root>/layers/<diff-id hex>/diff` with the same protocol as unpacking: assembled in
//! `<root>/tmp/layer-*` (tree renamed in, `whiteouts.json` written) and renamed into
//! place in one step, so a layer directory appears only complete.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::extract::ExtractReport;
use super::unpack::UnpackedLayer;
use super::{io_err, Store, StoreError};
use crate::image::digest::Digest;

impl Store {
    /// Moves `tree` into place as the unpacked directory of the layer `diff_id`, with
    /// `report` as its record (`whiteouts.json`). `tree` must be on the store's
    /// filesystem and hold exactly what unpacking the layer's blob would give: same
    /// paths, kinds, modes, owners, clamped mtimes, overlay whiteouts and opaque
    /// markers. When the layer is already unpacked (e.g. by a concurrent build), that
    /// directory wins and `tree` is left where it is.
    pub fn adopt_layer_dir(
        &self,
        diff_id: &Digest,
        tree: &Path,
        report: &ExtractReport,
    ) -> Result<UnpackedLayer, StoreError> {
        if let Some(existing) = self.unpacked_layer(diff_id)? {
            return Ok(existing);
        }
        let tmp = self.layer_staging_dir()?;
        let diff = tmp.path().join("diff");
        fs::rename(tree, &diff).map_err(io_err("moving a layer tree into", &diff))?;
        fs::set_permissions(&diff, fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod", &diff))?;
        self.place_layer(tmp, diff_id, report.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adopted_tree_becomes_the_unpacked_layer_and_a_second_one_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let diff_id: crate::image::digest::Digest =
            format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let tree = root.path().join("tmp/tree");
        fs::create_dir_all(tree.join("srv")).unwrap();
        fs::write(tree.join("srv/a"), "a").unwrap();
        let report = ExtractReport {
            whiteouts: vec!["etc/gone".into()],
            whiteout_devices: true,
            ..Default::default()
        };
        let layer = store.adopt_layer_dir(&diff_id, &tree, &report).unwrap();
        assert!(!tree.exists());
        assert_eq!(fs::read(layer.diff.join("srv/a")).unwrap(), b"a");
        assert_eq!(store.unpacked_layer(&diff_id).unwrap(), Some(layer.clone()));
        let mode = fs::metadata(&layer.diff).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);

        let second = root.path().join("tmp/second");
        fs::create_dir_all(&second).unwrap();
        let again = store.adopt_layer_dir(&diff_id, &second, &report).unwrap();
        assert_eq!(again, layer);
        assert!(
            second.exists(),
            "the caller's tree stays when the layer exists"
        );
    }
}
