//! in-toto Statement v1 (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>),
//! the envelope-less form BuildKit stores as `application/vnd.in-toto+json` layers.
//! Small serde structs: the Rust in-toto crate (`in-toto`) implements the older
//! link/layout metadata, not attestation statements.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::digest::Digest;

/// `_type` of a v1 statement.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// Media type of a statement stored as a layer.
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The layer annotation naming the statement's predicate type (BuildKit's).
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// Predicate type of an SPDX SBOM.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// Predicate type of a CycloneDX SBOM.
pub const CYCLONEDX_PREDICATE: &str = "https://cyclonedx.org/bom";
/// Predicate type of SLSA v1 provenance.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// An in-toto statement about `subject`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Statement<P> {
    /// Always [`STATEMENT_V1`].
    #[serde(rename = "_type")]
    pub kind: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// The predicate's type URI.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate.
    pub predicate: P,
}

/// A subject of a statement: a name and its digests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subject {
    /// The subject's name (a purl of the image, as BuildKit writes it).
    pub name: String,
    /// Its digests by algorithm (`sha256` -> hex).
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// The subject for an image manifest: `pkg:docker/NAME@TAG` (or the bare digest
    /// when the image has no name) and the manifest's sha256.
    pub fn image(name: Option<&str>, manifest: &Digest) -> Subject {
        let name = match name {
            Some(n) => match n.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')) {
                Some((repo, tag)) => format!("pkg:docker/{repo}@{tag}"),
                None => format!("pkg:docker/{n}"),
            },
            None => manifest.to_string(),
        };
        Subject {
            name,
            digest: BTreeMap::from([("sha256".to_owned(), manifest.digest().to_owned())]),
        }
    }
}

impl<P: Serialize> Statement<P> {
    /// A v1 statement of `predicate_type` about `subject`.
    pub fn new(subject: Subject, predicate_type: &str, predicate: P) -> Statement<P> {
        Statement {
            kind: STATEMENT_V1.into(),
            subject: vec![subject],
            predicate_type: predicate_type.into(),
            predicate,
        }
    }
}
