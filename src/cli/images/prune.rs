//! `prune` and `rmi`: deleting what no image name reaches any more, with the build-cache
//! records of deleted layers.

use std::process::ExitCode;

use clap::Args;

use super::{human_size, open_store, Globals};
use flense::store::Store;

/// Arguments of `prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {}

/// Arguments of `flense rmi`.
#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Images to remove: names (`busybox:1`, full references) or digests; a digest
    /// removes every name of that image.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub(super) fn prune(_args: PruneArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    prune_and_report(&store)?;
    Ok(ExitCode::SUCCESS)
}

/// Deletes what no name reaches, then the build-cache records of deleted layers,
/// unused cache locks and the leftovers of killed processes in `tmp/`; prints what went.
fn prune_and_report(store: &Store) -> anyhow::Result<()> {
    let report = store.prune()?;
    let cache = flense::builder::layers::cache::CacheIndex::open(store);
    let (records, locks) = cache.prune(|digest| store.has_blob(digest))?;
    let leftovers = store.reclaim_leftovers()?.entries.len();
    outln!(
        "Removed {} blobs ({}), {} unpacked layers and {} build-cache records ({} unused locks, {} leftovers of killed processes)",
        report.blobs,
        human_size(report.bytes),
        report.layers,
        report.records + records,
        locks,
        leftovers
    );
    Ok(())
}

pub(super) fn rmi(args: RmiArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    // Resolve every name first, so that a typo removes nothing.
    let mut targets = Vec::new();
    for reference in &args.images {
        let (name, descriptor) = store.resolve(reference).map_err(|e| match e {
            flense::store::StoreError::UnknownImage(_)
            | flense::store::StoreError::Reference(_) => super::super::invalid(e),
            e => anyhow::Error::new(e),
        })?;
        targets.push((name, descriptor.digest().clone()));
    }
    for (name, digest) in targets {
        let removed = match name {
            Some(name) => {
                store.remove_tag(&name)?;
                vec![name]
            }
            None => store.remove_names_of(&digest)?,
        };
        for name in removed {
            outln!("Untagged {name}");
        }
    }
    prune_and_report(&store)?;
    Ok(ExitCode::SUCCESS)
}
