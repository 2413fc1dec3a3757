//! `flense sbom` on an image made of two layers in the store (no build): Debian
//! packages from dpkg's status (a package removed in the upper layer is gone, one left
//! as config files is not listed), distroless `status.d`, npm packages installed and
//! from a v3 lockfile (a package deleted by a whiteout is gone), Python dist-info and
//! egg-info, Composer 1 and 2; the SPDX output passes `pyspdxtools -i`, the CycloneDX
//! output its JSON schema; the same image pushed to and pulled from a registry gives
//! the same packages.

mod support;

use std::path::Path;

use flense::image::oci::{new_config, ImageFormat, ImageLayer};
use flense::image::{Content, EntryKind, LayerEntry, LayerOptions};
use flense::store::Store;
use serde_json::Value;
use support::cli::{flense, ok_stdout};
use support::sbom::{assert_valid_cyclonedx, assert_valid_spdx, purls};

fn file(path: &str, text: &str) -> LayerEntry {
    entry(
        path,
        EntryKind::File(Content::Bytes(text.as_bytes().to_vec())),
    )
}

fn entry(path: &str, kind: EntryKind) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: vec![],
    }
}

fn stanza(name: &str, version: &str, status: &str) -> String {
    format!(
        "Package: {name}\nStatus: {status}\nArchitecture: amd64\nSource: {name}-src\nVersion: {version}\n\n"
    )
}

const COPYRIGHT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n";

fn base_layer() -> Vec<LayerEntry> {
    let installed = "install ok installed";
    let status = stanza("base-files", "12.4+deb12u5", installed)
        + &stanza("gone-pkg", "1.0", installed)
        + &stanza("old-pkg", "2.0", "deinstall ok config-files");
    let lock = r#"{"name":"app","lockfileVersion":3,"packages":{
        "":{"name":"app","version":"1.0.0"},
        "node_modules/left-pad":{"version":"1.3.0","license":"WTFPL"},
        "node_modules/@scope/thing":{"version":"2.0.0"},
        "node_modules/dev-only":{"version":"0.1.0","dev":true}}}"#;
    vec![
        file("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
        file("var/lib/dpkg/status", &status),
        file("var/lib/dpkg/info/base-files.list", "/etc\n"),
        file("var/lib/dpkg/status.d/tzdata", "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"),
        file("usr/share/doc/base-files/copyright", COPYRIGHT),
        file("srv/app/package-lock.json", lock),
        file("srv/app/node_modules/left-pad/package.json", r#"{"name":"left-pad","version":"1.3.0","license":"WTFPL"}"#),
        file("srv/app/node_modules/@scope/thing/package.json", r#"{"name":"@scope/thing","version":"2.0.0","license":{"type":"ISC"}}"#),
        file("srv/app/node_modules/removed/package.json", r#"{"name":"removed","version":"9.9.9"}"#),
        file("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n\nSix is a Python 2 and 3 compatibility library.\nName: not-a-header\n"),
        file("opt/lib/Old_Thing.egg-info/PKG-INFO", "Metadata-Version: 1.0\nName: Old_Thing\nVersion: 0.3\nLicense: UNKNOWN\n"),
        file("srv/php/vendor/composer/installed.json", r#"{"packages":[{"name":"monolog/monolog","version":"3.5.0","license":["MIT"]}],"dev":true}"#),
        file("srv/php1/vendor/composer/installed.json", r#"[{"name":"psr/log","version":"1.1.4","license":["MIT"]}]"#),
    ]
}

fn upper_layer() -> Vec<LayerEntry> {
    let status = stanza("base-files", "12.4+deb12u5", "install ok installed")
        + &stanza("old-pkg", "2.0", "deinstall ok config-files");
    vec![
        file("var/lib/dpkg/status", &status),
        entry("srv/app/node_modules/removed", EntryKind::Whiteout),
    ]
}

/// Stores the two-layer image as `localhost/sbom-sample:1`.
fn sample_image(root: &Path) -> String {
    let store = Store::open(root).unwrap();
    let opts = LayerOptions {
        epoch: 0,
        level: 1,
        threads: 1,
    };
    let layers: Vec<_> = [base_layer(), upper_layer()]
        .into_iter()
        .map(|entries| store.write_layer(entries, &opts).unwrap())
        .collect();
    let image_layers: Vec<ImageLayer> = layers
        .iter()
        .map(|digests| ImageLayer {
            digests: digests.clone(),
            created_by: "test".into(),
        })
        .collect();
    let config = new_config(&image_layers, None, 0).unwrap();
    let name = "localhost/sbom-sample:1";
    store
        .commit_image(Some(name), ImageFormat::Oci, &config, &layers)
        .unwrap();
    name.to_owned()
}

fn sbom(root: &Path, reference: &str, format: &str) -> Value {
    serde_json::from_str(&ok_stdout(
        flense(root).args(["sbom", reference, "--format", format]),
    ))
    .unwrap()
}

const EXPECTED: &[&str] = &[
    "pkg:composer/monolog/monolog@3.5.0",
    "pkg:composer/psr/log@1.1.4",
    "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12",
    "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12",
    "pkg:npm/%40scope/thing@2.0.0",
    "pkg:npm/dev-only@0.1.0",
    "pkg:npm/left-pad@1.3.0",
    "pkg:pypi/old-thing@0.3",
    "pkg:pypi/six@1.16.0",
];

#[test]
fn sbom_lists_what_the_merged_layers_hold_in_valid_spdx_and_cyclonedx() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let image = sample_image(&root);

    let spdx = sbom(&root, &image, "spdx-json");
    assert_eq!(purls(&spdx), EXPECTED);
    let package = |name: &str| {
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {spdx:#}"))
            .clone()
    };
    assert_eq!(package("base-files")["licenseDeclared"], "GPL-2.0-or-later");
    assert_eq!(package("@scope/thing")["licenseDeclared"], "ISC");
    assert_eq!(package("six")["licenseDeclared"], "MIT");
    assert_eq!(package("Old_Thing")["licenseDeclared"], "NOASSERTION");
    let info = package("base-files")["sourceInfo"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(info.contains("source package base-files-src"), "{info}");
    let layers: Value =
        serde_json::from_str(&ok_stdout(flense(&root).args(["inspect", &image]))).unwrap();
    let base_diff_id = layers["layers"][0]["diffId"].as_str().unwrap();
    assert!(info.contains(base_diff_id), "layer of origin: {info}");

    // Deterministic: the same image and SOURCE_DATE_EPOCH give the same bytes.
    let again = |format: &str| {
        ok_stdout(
            flense(&root)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["sbom", &image, "--format", format]),
        )
    };
    assert_eq!(again("spdx-json"), again("spdx-json"));
    assert!(again("spdx-json").contains("\"created\": \"2023-11-14T22:13:20Z\""));
    let file = tmp.path().join("sbom.spdx.json");
    ok_stdout(flense(&root).args(["sbom", &image, "-o"]).arg(&file));
    assert_valid_spdx(&file);

    let cdx = sbom(&root, &image, "cyclonedx-json");
    assert_valid_cyclonedx(&cdx);
    let mut cdx_purls: Vec<&str> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap())
        .collect();
    cdx_purls.sort();
    assert_eq!(cdx_purls, EXPECTED);
    // The schema check can fail: a component without a name is refused.
    let mut broken = cdx.clone();
    broken["components"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let refused = std::panic::catch_unwind(|| assert_valid_cyclonedx(&broken));
    assert!(refused.is_err(), "the schema accepted a nameless component");

    // An unknown image is invalid input.
    let out = support::cli::output(flense(&root).args(["sbom", "nope:1"]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn sbom_of_an_image_pulled_from_a_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let image = sample_image(&root);
    let registry = support::registry::TestRegistry::start();
    let remote = registry.image("sample/sbom:1");
    ok_stdout(flense(&root).args(["push", &image, &remote]));
    let other = tmp.path().join("other");
    ok_stdout(flense(&other).args(["pull", &remote]));
    assert_eq!(purls(&sbom(&other, &remote, "spdx-json")), EXPECTED);
}
