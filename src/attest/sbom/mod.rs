//! The software bill of materials of an image, read natively from its merged
//! filesystem ([`MergedRoot`]): Debian packages ([`dpkg`]), npm packages ([`npm`]),
//! Python distributions ([`python`]) and Composer packages ([`composer`]), each with a
//! purl, its declared license when it is a valid SPDX expression, the file it was found
//! in and the layer that file comes from.

pub mod composer;
pub mod dpkg;
pub mod license;
pub mod npm;
pub mod purl;
pub mod python;

use std::collections::BTreeMap;
use std::path::Path;

use super::rootfs::{Found, MergedRoot};
use crate::image::digest::Digest;

/// The package ecosystem of a [`Package`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ecosystem {
    /// A Debian package (dpkg).
    Deb,
    /// An npm package.
    Npm,
    /// A Python distribution.
    Pypi,
    /// A Composer (PHP) package.
    Composer,
}

impl Ecosystem {
    /// The purl type, also the short name in SBOM ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Npm => "npm",
            Ecosystem::Pypi => "pypi",
            Ecosystem::Composer => "composer",
        }
    }
}

/// One package found in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Its name as the package manager spells it.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its architecture (Debian packages).
    pub arch: Option<String>,
    /// Its source package (Debian packages), `name (version)` when the version differs.
    pub source: Option<String>,
    /// Its declared license as a valid SPDX expression, when one is known.
    pub license: Option<String>,
    /// Its package URL.
    pub purl: String,
    /// The absolute path of the file that lists it (dpkg status, `package.json`,
    /// lockfile, `METADATA`, `installed.json`).
    pub found_in: String,
    /// The diff-ID of the layer that file comes from, when known.
    pub layer: Option<Digest>,
}

/// What an SBOM describes: the image and its packages.
#[derive(Debug, Clone)]
pub struct Sbom {
    /// The image's name (its tag, or its digest).
    pub image_name: String,
    /// The image's manifest digest.
    pub image_digest: Digest,
    /// The packages, sorted by ecosystem, name, version and purl, one per purl.
    pub packages: Vec<Package>,
}

/// The files the scanners read, found in one walk of the merged filesystem.
#[derive(Debug, Default)]
pub struct Inventory {
    /// `node_modules/<name>/package.json` and `node_modules/@scope/<name>/package.json`.
    pub npm_installed: Vec<Found>,
    /// `package-lock.json` files outside `node_modules`.
    pub npm_lockfiles: Vec<Found>,
    /// `*.dist-info/METADATA` and `*.egg-info/PKG-INFO`.
    pub python: Vec<Found>,
    /// `vendor/composer/installed.json`.
    pub composer: Vec<Found>,
}

impl Inventory {
    /// Walks `root` once for every file a scanner reads.
    pub fn collect(root: &MergedRoot) -> Inventory {
        let found = root.find(|p| wanted_kind(p).is_some());
        let mut inventory = Inventory::default();
        for f in found {
            match wanted_kind(&f.path) {
                Some(Kind::NpmInstalled) => inventory.npm_installed.push(f),
                Some(Kind::NpmLock) => inventory.npm_lockfiles.push(f),
                Some(Kind::Python) => inventory.python.push(f),
                Some(Kind::Composer) => inventory.composer.push(f),
                None => {}
            }
        }
        inventory
    }
}

enum Kind {
    NpmInstalled,
    NpmLock,
    Python,
    Composer,
}

fn wanted_kind(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?;
    let parent = path.parent()?;
    let parent_name = parent.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name {
        "package.json" if npm::is_installed_manifest(path) => Some(Kind::NpmInstalled),
        "package-lock.json" if !path.iter().any(|c| c == "node_modules") => Some(Kind::NpmLock),
        "METADATA" if parent_name.ends_with(".dist-info") => Some(Kind::Python),
        "PKG-INFO" if parent_name.ends_with(".egg-info") => Some(Kind::Python),
        "installed.json" if parent.ends_with("vendor/composer") => Some(Kind::Composer),
        _ => None,
    }
}

/// Reads every package of the image whose merged filesystem is `root`.
pub fn scan(root: &MergedRoot, image_name: &str, image_digest: &Digest) -> Sbom {
    let inventory = Inventory::collect(root);
    let mut packages = dpkg::packages(root);
    packages.extend(npm::packages(root, &inventory));
    packages.extend(python::packages(root, &inventory));
    packages.extend(composer::packages(root, &inventory));
    Sbom {
        image_name: image_name.to_owned(),
        image_digest: image_digest.clone(),
        packages: dedupe(packages),
    }
}

/// One package per purl: the first found (installed files are scanned before
/// lockfiles), with a license taken from a later duplicate when it had none.
fn dedupe(packages: Vec<Package>) -> Vec<Package> {
    let mut by_purl: BTreeMap<String, Package> = BTreeMap::new();
    for p in packages {
        match by_purl.get_mut(&p.purl) {
            Some(kept) => {
                if kept.license.is_none() {
                    kept.license = p.license;
                }
            }
            None => {
                by_purl.insert(p.purl.clone(), p);
            }
        }
    }
    let mut out: Vec<Package> = by_purl.into_values().collect();
    out.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.purl).cmp(&(
            b.ecosystem,
            &b.name,
            &b.version,
            &b.purl,
        ))
    });
    out
}

impl Package {
    /// A package of a language ecosystem (no architecture or source package) listed in
    /// the file `found`.
    pub(crate) fn library(
        root: &MergedRoot,
        found: &Found,
        ecosystem: Ecosystem,
        (name, version, purl): (&str, &str, String),
        license: Option<String>,
    ) -> Package {
        Package {
            ecosystem,
            name: name.to_owned(),
            version: version.to_owned(),
            arch: None,
            source: None,
            license,
            purl,
            found_in: absolute(&found.path),
            layer: Some(root.diff_id(found.layer).clone()),
        }
    }
}

/// `/` + a relative path inside the image.
pub(crate) fn absolute(rel: &Path) -> String {
    format!("/{}", rel.display())
}
