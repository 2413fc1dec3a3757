//! `flense manifest create NAME IMAGE...`: names an OCI image index over images of the
//! store, each entry with the platform its config declares (podman's `manifest
//! create`), so `flense push NAME` pushes a multi-platform image.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};

use super::{classify, open_store, Globals};
use flense::image::platform::Platform;
use flense::store::reference::parse_name;

/// Subcommands of `flense manifest`.
#[derive(Subcommand, Debug)]
pub enum ManifestCommands {
    /// Name an image index over images of the store (one per platform); prints its
    /// digest.
    Create(CreateArgs),
}

/// Arguments of `manifest create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Name of the index, e.g. `localhost:5000/busybox:multi`.
    pub name: String,
    /// The images, each of another platform (their configs' `os`/`architecture`).
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Runs one `manifest` subcommand.
pub fn run(cmd: ManifestCommands, globals: &Globals) -> anyhow::Result<ExitCode> {
    match cmd {
        ManifestCommands::Create(args) => create(args, globals),
    }
}

fn create(args: CreateArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let name = parse_name(&args.name).map_err(crate::cli::invalid)?;
    let store = open_store(globals)?;
    let mut manifests: Vec<(oci_spec::image::Descriptor, Platform)> = Vec::new();
    for reference in &args.images {
        let image = store.image(reference).map_err(classify)?;
        let platform = Platform::of_config(&image.config);
        if manifests.iter().any(|(_, p)| *p == platform) {
            return Err(crate::cli::invalid(anyhow!(
                "{reference} is for {platform}, like an image before it: an index has one image per platform"
            )));
        }
        manifests.push((image.descriptor, platform));
    }
    let index = store.commit_index(Some(&name), &manifests)?;
    outln!("{name} {}", index.digest());
    Ok(ExitCode::SUCCESS)
}
