//! CycloneDX 1.5 JSON (<https://cyclonedx.org/docs/1.5/json/>) of an [`Sbom`]: the
//! image as `metadata.component` (type `container`) depending on every package (type
//! `library`, `bom-ref` = purl), layer and file of origin as `flense:` properties.
//! Serde structs of exactly what flense writes (the `cyclonedx-bom` crate would pull in
//! a model of the whole spec for this); the serial number is derived from the image
//! digest, so the same image always gives the same document but for the timestamp.

use serde::Serialize;

use super::sbom::{Ecosystem, Sbom};
use crate::image::digest::digest_of;

/// The CycloneDX BOM.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    #[serde(rename = "$schema")]
    schema: &'static str,
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: Vec<Component>,
    dependencies: Vec<Dependency>,
}

#[derive(Debug, Serialize)]
struct Metadata {
    timestamp: String,
    tools: Tools,
    component: Component,
}

#[derive(Debug, Serialize)]
struct Tools {
    components: Vec<Component>,
}

#[derive(Debug, Serialize)]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    name: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<License>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Debug, Serialize)]
struct License {
    expression: String,
}

#[derive(Debug, Serialize)]
struct Property {
    name: &'static str,
    value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    depends_on: Vec<String>,
}

const IMAGE_REF: &str = "image";

/// The CycloneDX BOM of `sbom`, stamped `timestamp` (RFC 3339).
pub fn bom(sbom: &Sbom, timestamp: &str) -> Bom {
    let components: Vec<Component> = sbom
        .packages
        .iter()
        .map(|p| {
            let mut properties = vec![Property {
                name: "flense:foundIn",
                value: p.found_in.clone(),
            }];
            if let Some(layer) = &p.layer {
                properties.push(Property {
                    name: "flense:layer",
                    value: layer.to_string(),
                });
            }
            if let Some(source) = &p.source {
                properties.push(Property {
                    name: "flense:sourcePackage",
                    value: source.clone(),
                });
            }
            if let (Ecosystem::Deb, Some(arch)) = (p.ecosystem, &p.arch) {
                properties.push(Property {
                    name: "flense:architecture",
                    value: arch.clone(),
                });
            }
            Component {
                kind: "library",
                bom_ref: Some(p.purl.clone()),
                name: p.name.clone(),
                version: p.version.clone(),
                purl: Some(p.purl.clone()),
                licenses: p
                    .license
                    .iter()
                    .map(|l| License {
                        expression: l.clone(),
                    })
                    .collect(),
                properties,
            }
        })
        .collect();
    let dependencies = vec![Dependency {
        reference: IMAGE_REF.into(),
        depends_on: components
            .iter()
            .filter_map(|c| c.bom_ref.clone())
            .collect(),
    }];
    Bom {
        schema: "http://cyclonedx.org/schema/bom-1.5.schema.json",
        bom_format: "CycloneDX",
        spec_version: "1.5",
        serial_number: serial_number(sbom),
        version: 1,
        metadata: Metadata {
            timestamp: timestamp.to_owned(),
            tools: Tools {
                components: vec![Component {
                    kind: "application",
                    bom_ref: None,
                    name: "flense".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    purl: None,
                    licenses: Vec::new(),
                    properties: Vec::new(),
                }],
            },
            component: Component {
                kind: "container",
                bom_ref: Some(IMAGE_REF.into()),
                name: sbom.image_name.clone(),
                version: sbom.image_digest.to_string(),
                purl: None,
                licenses: Vec::new(),
                properties: Vec::new(),
            },
        },
        components,
        dependencies,
    }
}

/// A UUID (version 5 layout) made from the image digest.
fn serial_number(sbom: &Sbom) -> String {
    let hash = digest_of(format!("flense cyclonedx {}", sbom.image_digest).as_bytes());
    let h = hash.digest();
    let variant = ["8", "9", "a", "b"][usize::from(h.as_bytes()[16] % 4)];
    format!(
        "urn:uuid:{}-{}-5{}-{variant}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}
