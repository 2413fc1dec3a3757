//! Debian packages from dpkg's database: `/var/lib/dpkg/status` (installed packages
//! only) and the one-package files of `/var/lib/dpkg/status.d/` (distroless images).
//! The purl's distro comes from `/etc/os-release`; the license from the package's
//! machine-readable `/usr/share/doc/NAME/copyright`; the layer of origin is the
//! topmost layer holding the package's `/var/lib/dpkg/info/NAME[:ARCH].list` (what
//! dpkg writes when it installs or upgrades it), else the status file's layer.

use std::path::{Path, PathBuf};

use super::{license, purl, Ecosystem, Package};
use crate::attest::rootfs::MergedRoot;

const STATUS: &str = "var/lib/dpkg/status";
const STATUS_D: &str = "var/lib/dpkg/status.d";

/// The distribution as purls name it: (`ID`, `ID-VERSION_ID`) of `/etc/os-release`
/// (`/usr/lib/os-release` as a fallback), `debian` when unknown.
pub fn distro(root: &MergedRoot) -> (String, String) {
    let text = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| root.read(Path::new(p)))
        .map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    let id = field("ID").unwrap_or_else(|| "debian".into());
    let distro = match field("VERSION_ID") {
        Some(v) => format!("{id}-{v}"),
        None => id.clone(),
    };
    (id, distro)
}

/// Every installed Debian package of the image.
pub fn packages(root: &MergedRoot) -> Vec<Package> {
    let mut files: Vec<PathBuf> = vec![PathBuf::from(STATUS)];
    files.extend(
        root.list_dir(Path::new(STATUS_D))
            .into_iter()
            .filter(|n| !n.ends_with(".md5sums"))
            .map(|n| Path::new(STATUS_D).join(n)),
    );
    let (namespace, distro) = distro(root);
    let mut out = Vec::new();
    for file in files {
        let Some((bytes, status_layer)) = root.read(&file) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for stanza in text.split("\n\n") {
            let Some(entry) = Stanza::parse(stanza) else {
                continue;
            };
            let layer = origin_layer(root, &entry).unwrap_or(status_layer);
            out.push(Package {
                ecosystem: Ecosystem::Deb,
                purl: purl::purl(
                    "deb",
                    &[&namespace],
                    &entry.name,
                    &entry.version,
                    &[("arch", &entry.arch), ("distro", &distro)],
                ),
                license: copyright_license(root, &entry.name),
                found_in: super::absolute(&file),
                layer: Some(root.diff_id(layer).clone()),
                name: entry.name,
                version: entry.version,
                arch: Some(entry.arch),
                source: entry.source,
            });
        }
    }
    out
}

/// One installed package's fields of a status stanza.
struct Stanza {
    name: String,
    version: String,
    arch: String,
    source: Option<String>,
}

impl Stanza {
    /// The package of `stanza`, `None` when it is not installed (removed packages keep
    /// their stanza as `deinstall ok config-files` until purged) or incomplete.
    fn parse(stanza: &str) -> Option<Stanza> {
        let field = |key: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(key)?
                    .strip_prefix(':')
                    .map(|v| v.trim().to_owned())
            })
        };
        if let Some(status) = field("Status") {
            if !status.ends_with(" installed") {
                return None;
            }
        }
        Some(Stanza {
            name: field("Package")?,
            version: field("Version")?,
            arch: field("Architecture").unwrap_or_default(),
            source: field("Source"),
        })
    }
}

fn origin_layer(root: &MergedRoot, entry: &Stanza) -> Option<usize> {
    [
        format!("var/lib/dpkg/info/{}:{}.list", entry.name, entry.arch),
        format!("var/lib/dpkg/info/{}.list", entry.name),
    ]
    .iter()
    .find_map(|p| root.resolve(Path::new(p)).map(|(_, layer, _)| layer))
}

fn copyright_license(root: &MergedRoot, name: &str) -> Option<String> {
    let path = PathBuf::from(format!("usr/share/doc/{name}/copyright"));
    let (bytes, _) = root.read(&path)?;
    license::debian_copyright(&String::from_utf8_lossy(&bytes))
}
