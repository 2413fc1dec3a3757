//! `images` area subcommands: `import`, `images`, `inspect`, `tag`, `save`, `load`,
//! `prune` (one variant and one handler each); `pull` and `push` live in [`registry`].

mod registry;
mod unpack;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use oci_spec::image::ConfigBuilder;

use super::Globals;
use flense::error_chain::ErrorChain;
use flense::image::oci::{new_config, ImageFormat, ImageLayer};
use flense::image::tree::entries_from_tar;
use flense::image::LayerOptions;
use flense::store::archive::ArchiveFormat;
use flense::store::{default_root, parse_name, Store, StoreError};

pub(crate) use registry::{registry_client, registry_error, RegistryArgs};
pub use registry::{PullArgs, PushArgs};
pub use unpack::UnpackArgs;

/// `println!` that stops quietly when stdout is closed (e.g. piped into `head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(anyhow::Error::new(e).context("writing to stdout"));
            }
        }
    }};
}

// After `outln!`, which they use.
mod check;
mod manifest;
mod prune;

/// Subcommands of this area.
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Import a rootfs tarball (.tar or .tar.gz, `-` for stdin) as a one-layer image.
    Import(ImportArgs),
    /// List the images in the store.
    Images(ImagesArgs),
    /// Show an image's manifest digest, config and layers as JSON.
    Inspect(InspectArgs),
    /// Give an image another name.
    Tag(TagArgs),
    /// Write images to an oci-archive or docker-archive file.
    Save(SaveArgs),
    /// Load images from an oci-archive or docker-archive file.
    Load(LoadArgs),
    /// Delete blobs and unpacked layers that no name reaches, and the build cache of deleted layers.
    Prune(prune::PruneArgs),
    /// Remove images' names from the store, then delete what no name reaches any more.
    Rmi(prune::RmiArgs),
    /// Verify the store (blobs, images, unpacked layers, build cache, leftovers of killed
    /// builds); exit 1 listing the problems, or repair them with --repair.
    Check(check::CheckArgs),
    /// Download an image from a registry into the local store; prints its manifest digest.
    Pull(PullArgs),
    /// Upload an image from the local store to a registry; prints its manifest digest.
    Push(PushArgs),
    /// Unpack an image's layers into the store, ready for builds and runs (what `pull`,
    /// `import` and `load` do unless given `--no-unpack`).
    Unpack(UnpackArgs),
    /// Multi-platform images: `flense manifest create NAME IMAGE...` names an index.
    #[command(subcommand)]
    Manifest(manifest::ManifestCommands),
}

/// Manifest flavour.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatArg {
    /// OCI image manifest and media types.
    Oci,
    /// Docker image manifest v2 schema 2.
    Docker,
}

/// Archive flavour for `save`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveArg {
    /// A tarred OCI image layout.
    OciArchive,
    /// The `docker save` format (loadable by `podman load`).
    DockerArchive,
}

/// Arguments of `import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The rootfs tarball.
    pub rootfs: PathBuf,
    /// Name of the new image, e.g. `busybox` or `localhost:5000/x/y:tag`.
    #[arg(long, short)]
    pub tag: String,
    /// Manifest flavour.
    #[arg(long, value_enum, default_value = "oci")]
    pub format: FormatArg,
    /// Only store the image: do not unpack its layer for builds and runs.
    #[arg(long)]
    pub no_unpack: bool,
    /// The platform the image's config declares, os/arch[/variant] (default: this
    /// machine's), e.g. for a rootfs of another architecture.
    #[arg(long)]
    pub platform: Option<String>,
}

/// Arguments of `images`.
#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Image reference or manifest digest.
    pub reference: String,
}

/// Arguments of `tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// Existing image reference or manifest digest.
    pub source: String,
    /// New name.
    pub target: String,
}

/// Arguments of `save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Images to save.
    #[arg(required = true)]
    pub references: Vec<String>,
    /// Output file.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Archive flavour.
    #[arg(long, value_enum, default_value = "oci-archive")]
    pub format: ArchiveArg,
}

/// Arguments of `load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// An oci-archive or docker-archive file (optionally gzipped).
    pub archive: PathBuf,
    /// Only store the images: do not unpack their layers for builds and runs.
    #[arg(long)]
    pub no_unpack: bool,
}

/// Runs one subcommand of this area.
pub fn run(cmd: Commands, globals: &Globals) -> anyhow::Result<ExitCode> {
    let quiet = matches!(&cmd, Commands::Pull(args) if args.quiet);
    super::progress::install(quiet);
    match cmd {
        Commands::Import(args) => import(args, globals),
        Commands::Images(args) => images(args, globals),
        Commands::Inspect(args) => inspect(args, globals),
        Commands::Tag(args) => tag(args, globals),
        Commands::Save(args) => save(args, globals),
        Commands::Load(args) => load(args, globals),
        Commands::Prune(args) => prune::prune(args, globals),
        Commands::Rmi(args) => prune::rmi(args, globals),
        Commands::Check(args) => check::check(args, globals),
        Commands::Pull(args) => registry::pull(args, globals),
        Commands::Push(args) => registry::push(args, globals),
        Commands::Unpack(args) => unpack::unpack(args, globals),
        Commands::Manifest(cmd) => manifest::run(cmd, globals),
    }
}

/// Opens the store at `--root` / `$FLENSE_ROOT` / the default root.
pub fn open_store(globals: &Globals) -> anyhow::Result<Store> {
    let root = globals.root.clone().unwrap_or_else(default_root);
    Store::open(&root).with_context(|| format!("opening store {}", root.display()))
}

/// Marks errors caused by the user's input (bad reference, unknown image, bad archive
/// or layer) as invalid input (exit 2).
fn classify(err: StoreError) -> anyhow::Error {
    match err {
        StoreError::Reference(_)
        | StoreError::UnknownImage(_)
        | StoreError::Archive { .. }
        | StoreError::Unpack { .. }
        | StoreError::Extract { .. }
        | StoreError::Decompress { .. }
        | StoreError::Layer(_) => super::invalid(err),
        other => other.into(),
    }
}

fn import(args: ImportArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let name = parse_name(&args.tag).map_err(super::invalid)?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<flense::image::platform::Platform>)
        .transpose()
        .map_err(super::invalid)?;
    let store = open_store(globals)?;
    let input: Box<dyn Read> = if args.rootfs.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            File::open(&args.rootfs)
                .with_context(|| format!("opening {}", args.rootfs.display()))
                .map_err(super::invalid)?,
        )
    };
    let size = std::fs::metadata(&args.rootfs).ok().map(|m| m.len());
    let reading = std::sync::Arc::new(flense::activity::begin(
        || format!("reading {}", args.rootfs.display()),
        size.filter(|_| args.rootfs.as_os_str() != "-"),
    ));
    let input = flense::activity::CountingReader::new(input, std::sync::Arc::clone(&reading));
    let stream = flense::store::extract::uncompressed(BufReader::with_capacity(1 << 20, input))
        .context("reading the rootfs tarball")?;

    let _hold = store.hold_blobs()?;
    let spool = store.scratch_dir(".import-")?;
    let entries = entries_from_tar(stream, spool.path())
        .with_context(|| format!("reading {}", args.rootfs.display()))
        .map_err(super::invalid)?;
    drop(reading);
    let opts = LayerOptions::default();
    let layer = store.write_layer(entries, &opts).map_err(classify)?;

    let runtime = ConfigBuilder::default()
        .env(vec![format!("PATH={}", flense::image::oci::DEFAULT_PATH)])
        .build()?;
    let layers = [ImageLayer {
        digests: layer.clone(),
        created_by: "flense import".into(),
    }];
    let mut config = new_config(&layers, Some(runtime), opts.epoch)?;
    if let Some(platform) = platform {
        config.set_os(platform.os.as_str().into());
        config.set_architecture(platform.architecture.as_str().into());
        config.set_variant(platform.variant);
    }
    let format = match args.format {
        FormatArg::Oci => ImageFormat::Oci,
        FormatArg::Docker => ImageFormat::Docker,
    };
    let descriptor = store
        .commit_image(Some(&name), format, &config, &[layer])
        .map_err(classify)?;
    if !args.no_unpack {
        let image = store.image_at(&descriptor).map_err(classify)?;
        unpack::unpack_image(&store, &image, &name)?;
    }
    // Deleted after the unpack: ext4 makes every inode allocation scan for recently
    // freed inodes for a minute after a big delete, which would double the unpack's
    // system time.
    drop(spool);
    outln!("{name} {}", descriptor.digest());
    Ok(ExitCode::SUCCESS)
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn images(args: ImagesArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    // One broken image (a missing or corrupt blob) must not hide the others.
    let rows: Vec<(
        String,
        String,
        Result<flense::store::StoredImage, StoreError>,
    )> = store
        .tags()?
        .into_iter()
        .map(|(name, d)| (name, d.digest().to_string(), store.image_at(&d)))
        .collect();
    let tagged: std::collections::HashMap<String, _> = store.tags()?.into_iter().collect();
    let platforms = |name: &str| -> String {
        let found = tagged.get(name).map(|d| store.platforms_of(d));
        found
            .and_then(Result::ok)
            .map(|p| p.join(","))
            .unwrap_or_default()
    };
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, digest, image)| match image {
                Ok(i) => serde_json::json!({
                    "reference": name,
                    "digest": digest,
                    "mediaType": i.descriptor.media_type().to_string(),
                    "size": i.size(),
                    "created": i.config.created(),
                    "platforms": platforms(name).split(',').collect::<Vec<_>>(),
                }),
                Err(e) => serde_json::json!({ "reference": name, "digest": digest, "error": ErrorChain(e).to_string() }),
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(9).max(9);
    outln!(
        "{:<width$}  {:<71}  {:<9}  PLATFORMS",
        "REFERENCE",
        "DIGEST",
        "SIZE"
    );
    for (name, digest, image) in &rows {
        let size = match image {
            Ok(i) => human_size(i.size()),
            Err(e) => format!("error: {}", ErrorChain(e)),
        };
        outln!(
            "{name:<width$}  {digest:<71}  {size:<9}  {}",
            platforms(name)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: InspectArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    let (_, named) = store.resolve(&args.reference).map_err(classify)?;
    let image = store.image(&args.reference).map_err(classify)?;
    let platforms = store.platforms_of(&named).map_err(classify)?;
    let diff_ids = image.config.rootfs().diff_ids();
    let attestations: Vec<serde_json::Value> =
        flense::attest::attach::list(&store, &args.reference)?
            .into_iter()
            .map(|a| {
                serde_json::json!({
                    "predicateType": a.predicate_type,
                    "digest": a.digest.to_string(),
                    "size": a.size,
                    "manifest": a.manifest.to_string(),
                })
            })
            .collect();
    let layers: Vec<serde_json::Value> = image
        .manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::json!({
                "digest": l.digest().to_string(),
                "size": l.size(),
                "mediaType": l.media_type().to_string(),
                "diffId": diff_ids.get(i),
            })
        })
        .collect();
    let out = serde_json::json!({
        "reference": image.reference,
        "digest": image.descriptor.digest().to_string(),
        "mediaType": image.descriptor.media_type().to_string(),
        "size": image.size(),
        "configDigest": image.manifest.config().digest().to_string(),
        "config": image.config,
        "layers": layers,
        "manifest": image.manifest,
        "attestations": attestations,
        "platforms": platforms,
        "index": (named.digest() != image.descriptor.digest()).then(|| named.digest().to_string()),
    });
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

fn tag(args: TagArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let target = parse_name(&args.target).map_err(super::invalid)?;
    let store = open_store(globals)?;
    let (_, descriptor) = store.resolve(&args.source).map_err(classify)?;
    store.set_tag(&target, &descriptor)?;
    outln!("{target} {}", descriptor.digest());
    Ok(ExitCode::SUCCESS)
}

fn save(args: SaveArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    let mut images = Vec::new();
    for reference in &args.references {
        let image = store.image(reference).map_err(classify)?;
        let name = match &image.reference {
            Some(name) => name.clone(),
            None => parse_name(reference.split('@').next().unwrap_or(reference))
                .map_err(super::invalid)?,
        };
        images.push((name, image));
    }
    let format = match args.format {
        ArchiveArg::OciArchive => ArchiveFormat::OciArchive,
        ArchiveArg::DockerArchive => ArchiveFormat::DockerArchive,
    };
    store
        .save(&images, format, &args.output)
        .map_err(classify)?;
    Ok(ExitCode::SUCCESS)
}

fn load(args: LoadArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    if !args.archive.is_file() {
        return Err(super::invalid(anyhow::anyhow!(
            "{}: no such file",
            args.archive.display()
        )));
    }
    let store = open_store(globals)?;
    let _hold = store.hold_blobs()?;
    let names = store.load(&args.archive).map_err(classify)?;
    for name in &names {
        unpack::unpack_stored(&store, name, args.no_unpack)?;
    }
    for name in &names {
        outln!("Loaded image: {name}");
    }
    Ok(ExitCode::SUCCESS)
}
