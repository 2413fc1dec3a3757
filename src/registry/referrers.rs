//! OCI 1.1 referrers: a manifest with a `subject` is pushed by digest where the
//! registry serves the referrers API (`GET /v2/<name>/referrers/<digest>` answers an
//! image index). Registries without it (Docker's distribution 2.8, Debian's
//! `docker-registry`, answers 404) get nothing: the attestations already travel in the
//! pushed image index, where BuildKit-aware tools find them.

use reqwest::header::CONTENT_TYPE;

use super::client::{Client, SHORT_REQUEST};
use super::error::Result;
use super::push::put_manifest;
use crate::image::digest::{digest_of, Digest};
use crate::image::reference::Reference;

/// Pushes `manifest` (an OCI image manifest whose `subject` is `subject`) to `dest`'s
/// repository by digest when the registry supports the referrers API; returns whether
/// it did.
pub fn push_referrer(
    client: &Client,
    dest: &Reference,
    subject: &Digest,
    manifest: &[u8],
) -> Result<bool> {
    let target = client.settings().rewrite(dest);
    let repo = client.repository(&target, true)?;
    let url = repo.url(&format!("referrers/{subject}"));
    let operation = format!("GET referrers of {subject}");
    let resp = repo.send(&operation, &|http| {
        http.get(url.clone()).timeout(SHORT_REQUEST)
    })?;
    let is_index = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/vnd.oci.image.index.v1+json"));
    if !resp.status().is_success() || !is_index {
        tracing::info!(
            "{} has no OCI referrers API ({}): attestations are in the image index only",
            target.registry(),
            resp.status()
        );
        return Ok(false);
    }
    let digest = digest_of(manifest);
    put_manifest(
        &repo,
        digest.as_ref(),
        "application/vnd.oci.image.manifest.v1+json",
        manifest,
    )?;
    Ok(true)
}
