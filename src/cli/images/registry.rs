//! `pull` and `push`: moving images between the local store and registries.

use std::process::ExitCode;

use super::{open_store, Globals};

/// Options shared by the registry subcommands.
#[derive(clap::Args, Debug)]
pub struct RegistryArgs {
    /// Registries config (insecure registries, rewrites/mirrors). Default:
    /// $FLENSE_REGISTRIES_CONFIG, else $XDG_CONFIG_HOME/flense/config.toml.
    #[arg(long, value_name = "FILE")]
    pub registries_config: Option<std::path::PathBuf>,
}

/// `flense pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Image reference, e.g. `debian:bookworm`, `127.0.0.1:5000/app:1`, `app@sha256:...`.
    pub reference: String,
    /// Platform to take from a multi-platform image, `os/arch[/variant]`.
    /// Default: this machine's (e.g. linux/amd64).
    #[arg(long)]
    pub platform: Option<String>,
    /// Only store the image: do not unpack its layers for builds and runs.
    #[arg(long)]
    pub no_unpack: bool,
    /// Pull every platform of a multi-platform image (each manifest, config and layer),
    /// keeping the index complete for `save` (oci-archive) and air-gapped transfer;
    /// builds and runs use the host's platform, the one unpacked.
    #[arg(long)]
    pub all_platforms: bool,
    /// Print only the image digest (no progress).
    #[arg(short, long)]
    pub quiet: bool,
    /// Refuse the image unless the registry holds a valid cosign/sigstore signature of
    /// it by this public key (PEM); nothing is stored then.
    #[arg(long, value_name = "PUB")]
    pub verify_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `flense push`.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Image in the local store (tag or digest).
    pub source: String,
    /// Registry reference to push to. Default: the source's name.
    pub destination: Option<String>,
    /// Sign the pushed manifest with this private key (cosign's encrypted format,
    /// password from $FLENSE_KEY_PASSWORD or the terminal) and store the signature as
    /// cosign does, next to the image (tag `sha256-<hex>.sig`).
    #[arg(long, value_name = "KEY")]
    pub sign_by: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// A registry client with the registries config at `registries_config` (or the default
/// one) and credentials from the environment.
pub(crate) fn registry_client(
    registries_config: Option<&std::path::Path>,
) -> anyhow::Result<flense::registry::Client> {
    use flense::registry::{Client, CredentialSource, RegistrySettings};
    let settings = RegistrySettings::load(registries_config).map_err(crate::cli::invalid)?;
    Ok(Client::new(settings, CredentialSource::from_env())?)
}

pub(crate) fn registry_error(err: flense::registry::RegistryError) -> anyhow::Error {
    if err.is_invalid_input() {
        crate::cli::invalid(err)
    } else {
        err.into()
    }
}

pub(super) fn pull(args: PullArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    use flense::image::platform::Platform;
    use flense::image::reference::Reference;
    use flense::registry::progress::StderrProgress;
    let reference = Reference::parse(&args.reference).map_err(crate::cli::invalid)?;
    let platform = match &args.platform {
        Some(p) => p.parse::<Platform>().map_err(crate::cli::invalid)?,
        None => Platform::host().without_variant(),
    };
    let client = registry_client(args.registry.registries_config.as_deref())?;
    let reference = match &args.verify_key {
        Some(key) => crate::cli::sign::verified_pin(&client, &reference, key)?,
        None => reference,
    };
    let store = open_store(globals)?;
    // Held until the image is tagged and unpacked: prune and rmi wait meanwhile.
    let _hold = store.hold_blobs()?;
    if let Err(e) = store.reclaim_leftovers() {
        tracing::warn!("cannot reclaim the leftovers of killed processes: {e}");
    }
    let progress: Box<dyn flense::registry::Progress> = if args.quiet {
        Box::new(flense::registry::NoProgress)
    } else {
        Box::new(StderrProgress::new())
    };
    let pull = if args.all_platforms {
        flense::registry::local::pull_all_platforms_to_store
    } else {
        flense::registry::local::pull_to_store
    };
    let (pulled, tag) =
        pull(&client, &store, &reference, &platform, &*progress).map_err(registry_error)?;
    drop(progress);
    if !args.no_unpack {
        let descriptor = oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::from(pulled.media_type.as_str()),
            pulled.manifest.len() as u64,
            pulled.digest.clone(),
        );
        let image = store.image_at(&descriptor)?;
        super::unpack::unpack_image(&store, &image, &args.reference)?;
    }
    let platform = match &pulled.platform {
        None if args.all_platforms => "all platforms".to_string(),
        found => found.clone().unwrap_or(platform).to_string(),
    };
    match tag {
        _ if args.quiet => {}
        Some(name) => eprintln!("pulled {name} ({platform})"),
        None => eprintln!("pulled {reference} ({platform})"),
    }
    println!("{}", pulled.digest);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn push(args: PushArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    use flense::image::reference::Reference;
    use flense::registry::{progress::StderrProgress, LocalImage, PushOptions};
    use flense::store::StoreError;
    let store = open_store(globals)?;
    // Held while pushing: prune and rmi wait rather than delete what is being sent.
    let _hold = store.hold_blobs()?;
    let (tag, descriptor) = store.resolve(&args.source).map_err(|e| match e {
        e @ (StoreError::UnknownImage(_) | StoreError::Reference(_)) => crate::cli::invalid(e),
        e => e.into(),
    })?;
    let destination = match (&args.destination, &tag) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => {
            return Err(crate::cli::invalid(anyhow::anyhow!(
                "{:?} names an untagged image: give a destination",
                args.source
            )))
        }
    };
    let dest = Reference::parse(&destination).map_err(crate::cli::invalid)?;
    let signing_key = (args.sign_by.as_deref())
        .map(crate::cli::sign::open_signing_key)
        .transpose()?;
    let client = registry_client(args.registry.registries_config.as_deref())?;
    let image = LocalImage {
        media_type: descriptor.media_type().to_string(),
        manifest: store.read_blob(descriptor.digest().as_ref())?,
    };
    let options = PushOptions {
        mount_from: mount_sources(&store, &client, &dest),
        ..PushOptions::default()
    };
    let progress = StderrProgress::new();
    let digest = flense::registry::push(&client, &dest, &image, &store, &options, &progress)
        .map_err(registry_error)?;
    drop(progress);
    eprintln!("pushed {dest}");
    if let Some(key) = &signing_key {
        crate::cli::sign::sign_pushed(&client, &dest, &digest, key)?;
    }
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}

/// Repositories of the destination registry that images in the store came from, with
/// their blobs: candidates for cross-repository mounts.
fn mount_sources(
    store: &flense::store::Store,
    client: &flense::registry::Client,
    dest: &flense::image::reference::Reference,
) -> Vec<flense::registry::MountSource> {
    let target = client.settings().rewrite(dest);
    let Ok(tags) = store.tags() else {
        return Vec::new();
    };
    let mut sources: Vec<flense::registry::MountSource> = Vec::new();
    for (name, descriptor) in tags {
        let Ok(reference) = flense::image::reference::Reference::parse(&name) else {
            continue;
        };
        let origin = client.settings().rewrite(&reference);
        if origin.registry() != target.registry() || origin.repository() == target.repository() {
            continue;
        }
        let Ok(image) = store.image_at(&descriptor) else {
            continue;
        };
        let blobs = std::iter::once(image.manifest.config())
            .chain(image.manifest.layers())
            .map(|d| d.digest().to_string());
        match sources
            .iter_mut()
            .find(|s| s.repository == origin.repository())
        {
            Some(s) => s.blobs.extend(blobs),
            None => sources.push(flense::registry::MountSource {
                repository: origin.repository().to_string(),
                blobs: blobs.collect(),
            }),
        }
    }
    sources
}
