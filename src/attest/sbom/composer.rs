//! Composer packages from `vendor/composer/installed.json`: Composer 1 writes a JSON
//! array of packages, Composer 2 an object with a `packages` array.

use serde_json::Value;

use super::{license, purl, Ecosystem, Inventory, Package};
use crate::attest::rootfs::MergedRoot;

/// Every Composer package the inventory found.
pub fn packages(root: &MergedRoot, inventory: &Inventory) -> Vec<Package> {
    let mut out = Vec::new();
    for found in &inventory.composer {
        let Some((bytes, _)) = root.read(&found.path) else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            tracing::warn!("{}: not JSON, skipped", super::absolute(&found.path));
            continue;
        };
        let list = match &doc {
            Value::Array(list) => list,
            Value::Object(map) => match map.get("packages") {
                Some(Value::Array(list)) => list,
                _ => continue,
            },
            _ => continue,
        };
        for entry in list {
            let (Some(name), Some(version)) = (
                entry.get("name").and_then(Value::as_str),
                entry.get("version").and_then(Value::as_str),
            ) else {
                continue;
            };
            let declared = match entry.get("license") {
                Some(Value::Array(ids)) => {
                    let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
                    // Composer's list means "any of these" (disjunctive).
                    license::spdx_expression(&ids.join(" OR "))
                }
                Some(Value::String(id)) => license::spdx_expression(id),
                _ => None,
            };
            let ids = (name, version, purl::composer(name, version));
            out.push(Package::library(
                root,
                found,
                Ecosystem::Composer,
                ids,
                declared,
            ));
        }
    }
    out
}
