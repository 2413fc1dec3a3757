//! SPDX 2.3 JSON (<https://spdx.github.io/spdx-spec/v2.3/>) of an [`Sbom`]: the image
//! as the described package (`SPDXRef-Image`), which `CONTAINS` every package found.
//! Serde structs of exactly what flense writes (the Rust SPDX crates model either only
//! license expressions, `spdx`, or an older spec, `spdx-rs`). SPDXIDs are derived from
//! the purls, so the same image always gives the same document (`created` comes from
//! [`super::creation_time`]).

use serde::Serialize;

use super::sbom::{Package, Sbom};
use crate::image::digest::digest_of;

/// The SPDX document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<SpdxPackage>,
    relationships: Vec<Relationship>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    version_info: String,
    download_location: &'static str,
    files_analyzed: bool,
    license_concluded: &'static str,
    license_declared: String,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

const IMAGE_ID: &str = "SPDXRef-Image";
const NOASSERTION: &str = "NOASSERTION";

/// The SPDX document of `sbom`, created at `created` (RFC 3339).
pub fn document(sbom: &Sbom, created: &str) -> Document {
    let mut packages = vec![SpdxPackage {
        spdx_id: IMAGE_ID.into(),
        name: sbom.image_name.clone(),
        version_info: sbom.image_digest.to_string(),
        download_location: NOASSERTION,
        files_analyzed: false,
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION.into(),
        copyright_text: NOASSERTION,
        source_info: None,
        primary_package_purpose: Some("CONTAINER"),
        external_refs: Vec::new(),
    }];
    let mut relationships = vec![Relationship {
        spdx_element_id: "SPDXRef-DOCUMENT".into(),
        relationship_type: "DESCRIBES",
        related_spdx_element: IMAGE_ID.into(),
    }];
    for p in &sbom.packages {
        let id = package_id(p);
        relationships.push(Relationship {
            spdx_element_id: IMAGE_ID.into(),
            relationship_type: "CONTAINS",
            related_spdx_element: id.clone(),
        });
        packages.push(SpdxPackage {
            spdx_id: id,
            name: p.name.clone(),
            version_info: p.version.clone(),
            download_location: NOASSERTION,
            files_analyzed: false,
            license_concluded: NOASSERTION,
            license_declared: p.license.clone().unwrap_or_else(|| NOASSERTION.into()),
            copyright_text: NOASSERTION,
            source_info: Some(source_info(p)),
            primary_package_purpose: Some(if p.ecosystem == super::sbom::Ecosystem::Deb {
                "INSTALL"
            } else {
                "LIBRARY"
            }),
            external_refs: vec![ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: p.purl.clone(),
            }],
        });
    }
    Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: sbom.image_name.clone(),
        document_namespace: format!(
            "https://flense.dev/spdx/{}/{}",
            sbom.image_digest.digest(),
            digest_of(created.as_bytes())
                .digest()
                .get(..16)
                .unwrap_or("")
        ),
        creation_info: CreationInfo {
            created: created.to_owned(),
            creators: vec![format!("Tool: flense-{}", env!("CARGO_PKG_VERSION"))],
        },
        packages,
        relationships,
    }
}

/// Where the package was found: the file, its layer, and a Debian source package.
fn source_info(p: &Package) -> String {
    let mut info = format!("found in {}", p.found_in);
    if let Some(layer) = &p.layer {
        info.push_str(&format!(" (layer {layer})"));
    }
    if let Some(source) = &p.source {
        info.push_str(&format!("; source package {source}"));
    }
    info
}

/// A stable SPDXID: ecosystem, name and version made safe, and a hash of the purl
/// (two purls can make the same safe text).
fn package_id(p: &Package) -> String {
    let safe: String = format!("{}-{}-{}", p.ecosystem.as_str(), p.name, p.version)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let hash = digest_of(p.purl.as_bytes());
    format!(
        "SPDXRef-Package-{safe}-{}",
        hash.digest().get(..8).unwrap_or("")
    )
}
