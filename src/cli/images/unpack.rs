//! Unpacking an image's layers into the store right after `pull`, `import` and `load`
//! (as buildah and podman do), so that the first build does not pay for it; and the
//! `unpack` subcommand that does the same for an image already stored.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::{classify, open_store, Globals};
use flense::builder::layers::owners::{disk_has_owners, layer_owners};
use flense::error_chain::ErrorChain;
use flense::image::digest::parse_sha256;
use flense::store::{Store, StoredImage};

/// Arguments of `unpack`.
#[derive(Args, Debug)]
pub struct UnpackArgs {
    /// Images to unpack (tag or manifest digest).
    #[arg(required = true)]
    pub references: Vec<String>,
}

/// Unpacks every layer of `image` (named `what` in errors), base first, skipping the
/// layers already unpacked. A failure names the layer blob; the blobs stay stored.
///
/// An unprivileged user's unpacked files all belong to that user, so builds read the
/// true owners from the layer's tar headers: that index is made here too when it can
/// be (once per layer, cached), keeping it out of the first build.
pub(super) fn unpack_image(store: &Store, image: &StoredImage, what: &str) -> anyhow::Result<()> {
    let diff_ids = image.config.rootfs().diff_ids();
    for (i, layer) in image.manifest.layers().iter().enumerate() {
        let digest = layer.digest();
        let diff_id = diff_ids
            .get(i)
            .map(|d| {
                parse_sha256(d).ok_or_else(|| anyhow::anyhow!("{what}: invalid diff-ID {d:?}"))
            })
            .transpose()?;
        let start = Instant::now();
        let already = match &diff_id {
            Some(d) => store.unpacked_layer(d).ok().flatten().is_some(),
            None => false,
        };
        let unpacked = store
            .unpack_layer(digest, diff_id.as_ref())
            .with_context(|| format!("unpacking layer {digest} of {what}"))?;
        if !disk_has_owners() {
            // Only a head start for builds, which retry (and report) on their own.
            if let Err(e) = layer_owners(store, digest, &unpacked.diff_id) {
                tracing::info!(
                    "not indexing the owners of layer {digest} of {what}: {}",
                    ErrorChain(&e)
                );
            }
        }
        if !already {
            tracing::info!(
                "unpacked layer {digest} of {what} in {:.2}s into {}",
                start.elapsed().as_secs_f64(),
                unpacked.diff.display()
            );
        }
    }
    Ok(())
}

/// Unpacks the image `reference` names (after storing it), unless `skip`.
pub(super) fn unpack_stored(store: &Store, reference: &str, skip: bool) -> anyhow::Result<()> {
    if skip {
        return Ok(());
    }
    let image = store.image(reference).map_err(classify)?;
    unpack_image(store, &image, reference)
}

pub(super) fn unpack(args: UnpackArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    let _hold = store.hold_blobs()?;
    for reference in &args.references {
        let image = store.image(reference).map_err(classify)?;
        unpack_image(&store, &image, reference)?;
    }
    Ok(ExitCode::SUCCESS)
}
