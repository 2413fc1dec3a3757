//! Issue #14 on the Node sample's image, through the CLI: `flense sbom` lists every npm
//! package of the lockfile and every Debian package `dpkg-query -W` lists inside the
//! image, in valid SPDX and CycloneDX; `build --sbom --provenance --push` sends an
//! index with the attestation manifest over the unchanged image manifest, and the
//! provenance names the base image and blubber.yaml digests but no secret.

use std::fs;
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use crate::support::cli::{flense, ok_stdout};
use crate::support::registry::{sha256, TestRegistry};
use crate::support::sbom::{assert_valid_cyclonedx, assert_valid_spdx, purls};

/// Percent-encodes a purl name or version as the purl spec asks (`+` -> `%2B`; `:`
/// kept in versions, as purl libraries do; names have none).
fn purl_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What `dpkg-query` run inside the image lists as installed, as purls.
fn dpkg_purls(root: &Path, image: &str) -> Vec<String> {
    let query = "set -e; . /etc/os-release; dpkg-query -W \
                 -f '${db:Status-Status} ${Package} ${Version} ${Architecture}\\n' \
                 | sed \"s/\\$/ $VERSION_ID/\"";
    let out = ok_stdout(flense(root).args([
        "run",
        "--image",
        image,
        "--entrypoint",
        "",
        "--",
        "sh",
        "-c",
        query,
    ]));
    let listed: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 5 && f[0] == "installed").then(|| {
                format!(
                    "pkg:deb/debian/{}@{}?arch={}&distro=debian-{}",
                    purl_encode(f[1]),
                    purl_encode(f[2]),
                    f[3],
                    f[4]
                )
            })
        })
        .collect();
    assert!(listed.len() > 50, "dpkg-query listed too little:\n{out}");
    listed
}

/// The npm purls of the project's lockfile (v2/v3 `packages`).
fn lockfile_purls(project: &Path) -> Vec<String> {
    let lock: Value =
        serde_json::from_slice(&fs::read(project.join("package-lock.json")).unwrap()).unwrap();
    let packages = lock["packages"].as_object().expect("a v2/v3 lockfile");
    let listed: Vec<String> = packages
        .iter()
        .filter_map(|(key, p)| {
            let name = key.rsplit_once("node_modules/")?.1.to_lowercase();
            let version = p["version"].as_str()?;
            Some(match name.split_once('/') {
                Some((scope, bare)) => format!("pkg:npm/%40{}/{bare}@{version}", &scope[1..]),
                None => format!("pkg:npm/{name}@{version}"),
            })
        })
        .collect();
    assert!(
        listed.len() > 20,
        "the sample's lockfile lists its packages"
    );
    listed
}

/// Checks `flense sbom` of the built `image` against the project and the image.
pub fn sbom_lists_lockfile_and_dpkg(root: &Path, project: &Path, image: &str, dir: &Path) {
    let file = dir.join("node.spdx.json");
    ok_stdout(flense(root).args(["sbom", image, "-o"]).arg(&file));
    let spdx: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let listed = purls(&spdx);
    let missing: Vec<String> = lockfile_purls(project)
        .into_iter()
        .chain(dpkg_purls(root, image))
        .filter(|p| !listed.contains(p))
        .collect();
    assert!(missing.is_empty(), "not in the SBOM: {missing:#?}");
    assert_valid_spdx(&file);
    let cdx: Value = serde_json::from_str(&ok_stdout(flense(root).args([
        "sbom",
        image,
        "--format",
        "cyclonedx-json",
    ])))
    .unwrap();
    assert_valid_cyclonedx(&cdx);
}

const USER: &str = "pusher";
const PASSWORD: &str = "Regi5try-Pa55word";
const BUILD_SECRET: &str = "npm-T0ken-Value";

fn blob(reg: &TestRegistry, repo: &str, digest: &str) -> Vec<u8> {
    let resp = reqwest::blocking::Client::new()
        .get(format!("http://{}/v2/{repo}/blobs/{digest}", reg.addr))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert!(
        resp.status().is_success(),
        "GET blob {digest}: {}",
        resp.status()
    );
    resp.bytes().unwrap().to_vec()
}

/// `build --sbom --provenance --push` of the (cached) variant to a registry that needs
/// a login: the index, the attestations, the unchanged image manifest, no secret.
pub fn attested_push(root: &Path, project: &Path, plain_digest: &str, base: &str, dir: &Path) {
    let reg = TestRegistry::start_with_auth(USER, PASSWORD);
    let docker = dir.join("docker");
    fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr),
    )
    .unwrap();
    let out = support_output(
        flense(root)
            .env("DOCKER_CONFIG", &docker)
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_AUTH_CONFIG")
            .args([
                "build",
                "test",
                "--sbom",
                "--provenance",
                "-t",
                "node-service:attested",
            ])
            .args([
                "--build-arg",
                &format!("NPM_TOKEN={BUILD_SECRET}"),
                "--push",
            ])
            .arg(reg.image("node/service:att"))
            .arg("-C")
            .arg(project),
    );
    assert_eq!(out.trim().lines().last(), Some(plain_digest), "{out}");
    assert!(
        !out.contains(PASSWORD) && !out.contains(BUILD_SECRET),
        "{out}"
    );

    let index: Value = serde_json::from_slice(&reg.raw_manifest("node/service:att")).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests[0]["digest"], plain_digest, "{index:#}");
    let attest = &manifests[1];
    assert_eq!(
        attest["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        attest["annotations"]["vnd.docker.reference.digest"],
        plain_digest
    );
    assert_eq!(attest["platform"]["os"], "unknown");
    let image_manifest = reg.raw_manifest(&format!("node/service@{plain_digest}"));
    assert_eq!(sha256(&image_manifest), plain_digest);

    let attest_manifest: Value = serde_json::from_slice(&reg.raw_manifest(&format!(
        "node/service@{}",
        attest["digest"].as_str().unwrap()
    )))
    .unwrap();
    let mut statements = BTreeMapByType::new();
    for layer in attest_manifest["layers"].as_array().unwrap() {
        let kind = layer["annotations"]["in-toto.io/predicate-type"]
            .as_str()
            .unwrap();
        let bytes = blob(&reg, "node/service", layer["digest"].as_str().unwrap());
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            !text.contains(PASSWORD) && !text.contains(BUILD_SECRET),
            "{kind}: a secret"
        );
        statements.insert(
            kind.to_owned(),
            serde_json::from_str::<Value>(&text).unwrap(),
        );
    }
    let sbom = &statements["https://spdx.dev/Document"];
    assert!(purls(&sbom["predicate"])
        .iter()
        .any(|p| p.starts_with("pkg:npm/express@")));
    let provenance = &statements["https://slsa.dev/provenance/v1"];
    assert_eq!(
        provenance["subject"][0]["digest"]["sha256"],
        plain_digest.trim_start_matches("sha256:")
    );
    let deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"].to_string();
    let blubber = sha256(&fs::read(project.join(".pipeline/blubber.yaml")).unwrap());
    assert!(
        deps.contains(blubber.trim_start_matches("sha256:")),
        "{deps}"
    );
    assert!(
        deps.contains(base.trim_start_matches("sha256:")),
        "base digest: {deps}"
    );
    let params = &provenance["predicate"]["buildDefinition"]["externalParameters"];
    assert_eq!(params["variant"], "test");
    assert_eq!(params["buildArgs"]["NPM_TOKEN"], "<redacted>");

    let inspect: Value = serde_json::from_str(&ok_stdout(
        flense(root).args(["inspect", "node-service:attested"]),
    ))
    .unwrap();
    assert_eq!(inspect["digest"], plain_digest);
    assert_eq!(
        inspect["attestations"].as_array().unwrap().len(),
        2,
        "{inspect:#}"
    );
}

type BTreeMapByType = std::collections::BTreeMap<String, Value>;

fn support_output(cmd: &mut std::process::Command) -> String {
    let out = crate::support::cli::ok_output(cmd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}
