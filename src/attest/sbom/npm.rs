//! npm packages: every installed `node_modules/[@scope/]NAME/package.json`, then the
//! entries of every `package-lock.json` outside `node_modules` (lockfile versions 1:
//! nested `dependencies`; 2 and 3: `packages` keyed by install path), so a package a
//! lockfile pins but the image lacks (e.g. a dev dependency of a production install) is
//! still listed, as found in that lockfile.

use std::path::Path;

use serde_json::{Map, Value};

use super::{license, purl, Ecosystem, Inventory, Package};
use crate::attest::rootfs::{Found, MergedRoot};

/// Whether `path` is the manifest of an installed package:
/// `.../node_modules/NAME/package.json` or `.../node_modules/@SCOPE/NAME/package.json`.
pub fn is_installed_manifest(path: &Path) -> bool {
    let parts: Vec<&str> = path.iter().filter_map(|c| c.to_str()).collect();
    match parts.as_slice() {
        [.., "node_modules", scope, name, "package.json"] if scope.starts_with('@') => {
            !name.starts_with('.')
        }
        [.., "node_modules", name, "package.json"] => !name.starts_with(['.', '@']),
        _ => false,
    }
}

/// Every npm package the inventory found, installed ones first.
pub fn packages(root: &MergedRoot, inventory: &Inventory) -> Vec<Package> {
    let mut out = Vec::new();
    for found in &inventory.npm_installed {
        let Some(doc) = read_json(root, found) else {
            continue;
        };
        let (Some(name), Some(version)) = (str_field(&doc, "name"), str_field(&doc, "version"))
        else {
            continue;
        };
        out.push(package(root, found, name, version, declared_license(&doc)));
    }
    for found in &inventory.npm_lockfiles {
        let Some(doc) = read_json(root, found) else {
            continue;
        };
        match doc.get("packages").and_then(Value::as_object) {
            Some(packages) => lock_v2(root, found, packages, &mut out),
            None => {
                if let Some(deps) = doc.get("dependencies").and_then(Value::as_object) {
                    lock_v1(root, found, deps, &mut out);
                }
            }
        }
    }
    out
}

fn lock_v2(
    root: &MergedRoot,
    found: &Found,
    packages: &Map<String, Value>,
    out: &mut Vec<Package>,
) {
    for (key, entry) in packages {
        let Some((_, tail)) = key.rsplit_once("node_modules/") else {
            continue; // the project itself or a workspace directory
        };
        if entry.get("link").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let name = str_field(entry, "name").unwrap_or(tail);
        if let Some(version) = str_field(entry, "version") {
            out.push(package(root, found, name, version, declared_license(entry)));
        }
    }
}

fn lock_v1(root: &MergedRoot, found: &Found, deps: &Map<String, Value>, out: &mut Vec<Package>) {
    for (name, entry) in deps {
        if let Some(version) = str_field(entry, "version") {
            out.push(package(root, found, name, version, None));
        }
        if let Some(nested) = entry.get("dependencies").and_then(Value::as_object) {
            lock_v1(root, found, nested, out);
        }
    }
}

fn package(
    root: &MergedRoot,
    found: &Found,
    name: &str,
    version: &str,
    license: Option<String>,
) -> Package {
    let ids = (name, version, purl::npm(name, version));
    Package::library(root, found, Ecosystem::Npm, ids, license)
}

fn read_json(root: &MergedRoot, found: &Found) -> Option<Value> {
    let (bytes, _) = root.read(&found.path)?;
    match serde_json::from_slice(&bytes) {
        Ok(doc) => Some(doc),
        Err(e) => {
            tracing::debug!("{}: not JSON ({e}), skipped", super::absolute(&found.path));
            None
        }
    }
}

fn str_field<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `license` (a string, or an old `{type}` object) or the old `licenses` array.
fn declared_license(doc: &Value) -> Option<String> {
    let text = match doc.get("license") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("type")?.as_str()?.to_owned(),
        _ => {
            let types: Vec<&str> = doc
                .get("licenses")?
                .as_array()?
                .iter()
                .filter_map(|l| l.get("type").and_then(Value::as_str))
                .collect();
            types.join(" OR ")
        }
    };
    license::spdx_expression(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_manifests_are_told_from_other_package_json_files() {
        for yes in [
            "srv/node_modules/express/package.json",
            "node_modules/@babel/core/package.json",
        ] {
            assert!(is_installed_manifest(Path::new(yes)), "{yes}");
        }
        for no in [
            "srv/package.json",
            "node_modules/express/lib/package.json",
            "node_modules/@babel/package.json",
            "node_modules/.bin/package.json",
        ] {
            assert!(!is_installed_manifest(Path::new(no)), "{no}");
        }
    }
}
