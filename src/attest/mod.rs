//! Supply-chain attestations of images: SBOMs read natively from an image's merged
//! filesystem ([`sbom`], written as [`spdx`] or [`cyclonedx`]), SLSA provenance of a
//! build ([`provenance`]), both as in-toto statements ([`intoto`]) kept with the image
//! in BuildKit's attestation-manifest layout ([`attach`]). See docs/supply-chain.md.

pub mod attach;
pub mod cyclonedx;
pub mod intoto;
pub mod provenance;
pub mod rootfs;
pub mod sbom;
pub mod spdx;

use crate::store::{Store, StoreError, StoredImage};

/// Errors of attestation work.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// Reading or writing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Building an OCI document failed.
    #[error(transparent)]
    Oci(#[from] crate::image::oci::OciError),
    /// An OCI document does not build.
    #[error("building an attestation document")]
    Spec(#[from] oci_spec::OciSpecError),
    /// A stored attestation document does not parse.
    #[error("reading an attestation document")]
    Json(#[from] serde_json::Error),
}

/// SBOM document formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    SpdxJson,
    /// CycloneDX 1.5 JSON.
    CycloneDxJson,
}

impl SbomFormat {
    /// The in-toto predicate type of an SBOM in this format.
    pub fn predicate_type(self) -> &'static str {
        match self {
            SbomFormat::SpdxJson => intoto::SPDX_PREDICATE,
            SbomFormat::CycloneDxJson => intoto::CYCLONEDX_PREDICATE,
        }
    }
}

/// The time SBOMs are stamped with: `$SOURCE_DATE_EPOCH` when set, else now (RFC 3339).
pub fn creation_time() -> String {
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => crate::image::source_date_epoch(),
        _ => now_epoch(),
    };
    crate::image::oci::rfc3339(epoch)
}

/// Seconds since the epoch, now.
pub fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Scans `image` (unpacking its layers when needed) and returns its SBOM document in
/// `format` as a JSON value.
pub fn sbom_document(
    store: &Store,
    image: &StoredImage,
    format: SbomFormat,
) -> Result<serde_json::Value, AttestError> {
    let root = rootfs::MergedRoot::open(store, image)?;
    let name = image
        .reference
        .clone()
        .unwrap_or_else(|| image.descriptor.digest().to_string());
    let sbom = sbom::scan(&root, &name, image.descriptor.digest());
    let created = creation_time();
    Ok(match format {
        SbomFormat::SpdxJson => serde_json::to_value(spdx::document(&sbom, &created))?,
        SbomFormat::CycloneDxJson => serde_json::to_value(cyclonedx::bom(&sbom, &created))?,
    })
}
