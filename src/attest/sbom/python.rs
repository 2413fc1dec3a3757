//! Python distributions: the `Name`, `Version` and license headers of every
//! `*.dist-info/METADATA` and `*.egg-info/PKG-INFO` in the image.

use super::{license, purl, Ecosystem, Inventory, Package};
use crate::attest::rootfs::MergedRoot;

/// Every Python distribution the inventory found.
pub fn packages(root: &MergedRoot, inventory: &Inventory) -> Vec<Package> {
    let mut out = Vec::new();
    for found in &inventory.python {
        let Some((bytes, _)) = root.read(&found.path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        // The headers end at the first blank line (the description follows).
        let headers = text.split("\n\n").next().unwrap_or("");
        let field = |key: &str| {
            headers.lines().find_map(|l| {
                l.strip_prefix(key)?
                    .strip_prefix(':')
                    .map(|v| v.trim().to_owned())
            })
        };
        let (Some(name), Some(version)) = (field("Name"), field("Version")) else {
            continue;
        };
        let declared = field("License-Expression")
            .and_then(|l| license::spdx_expression(&l))
            .or_else(|| field("License").and_then(|l| license::spdx_expression(&l)));
        let purl = purl::pypi(&name, &version);
        let ids = (name.as_str(), version.as_str(), purl);
        out.push(Package::library(
            root,
            found,
            Ecosystem::Pypi,
            ids,
            declared,
        ));
    }
    out
}
