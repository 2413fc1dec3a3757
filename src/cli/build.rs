//! `build` area subcommands: `flense build [VARIANT]`.

mod attest;
mod cache;
mod dryrun;
mod output;
mod printer;
mod push;

pub use cache::CacheArgs;
pub use printer::{Output, Printer};

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use clap::{Args, Subcommand, ValueEnum};

use super::Globals;
use flense::builder::images::{PullPolicy, PullingImages};
use flense::builder::platforms::{build_platforms, PlatformImages};
use flense::builder::project::{build_project, default_config_file, default_tag, ProjectBuild};
use flense::builder::run::runner::StepNetwork;
use flense::builder::run::sandbox::SandboxRunner;
use flense::builder::stage::{BuildSettings, BuiltImage};
use flense::image::oci::ImageFormat;
use flense::image::platform::Platform;
use flense::store::Store;

/// Subcommands of this area.
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Build a variant of a Blubber config into an image in the local store.
    Build(Box<BuildArgs>),
}

/// Network of build steps.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkArg {
    /// Share the host's network.
    Host,
    /// Only a loopback interface.
    None,
}

/// Manifest format of the built image.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatArg {
    /// OCI image manifest (the default).
    Oci,
    /// Docker image manifest v2 schema 2.
    Docker,
}

/// What to build from, for `flense build` and `flense run VARIANT`.
#[derive(Args, Debug, Clone)]
pub struct ProjectArgs {
    /// The Blubber config file (default: CONTEXT/.pipeline/blubber.yaml).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// The build context directory (`.dockerignore` applies).
    #[arg(short = 'C', long = "context", default_value = ".")]
    pub context: PathBuf,
    /// A build argument, NAME=VALUE (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// Build every step again, ignoring the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// When to pull base images (and `flense run`'s service images): `always`
    /// (re-resolve tags), `missing` (only images not in the store) or `never` (fail
    /// instead, no network).
    #[arg(long, value_enum, default_value = "missing", value_name = "POLICY")]
    pub pull: PullArg,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// `--pull` of `build`, `run VARIANT` and `pipeline` (podman's policies).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullArg {
    /// Pull every tag again: a re-pushed tag is picked up (unchanged blobs are not
    /// fetched again).
    Always,
    /// Pull only images missing from the store.
    Missing,
    /// Never pull: an image missing from the store is an error.
    Never,
}

impl From<PullArg> for PullPolicy {
    fn from(arg: PullArg) -> Self {
        match arg {
            PullArg::Always => PullPolicy::Always,
            PullArg::Missing => PullPolicy::Missing,
            PullArg::Never => PullPolicy::Never,
        }
    }
}

/// Options of `flense build` (`flense run VARIANT` sets them from its own).
#[derive(Args, Debug, Clone)]
pub struct BuildOptions {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Network of build steps.
    #[arg(long, value_enum, default_value = "host")]
    pub network: NetworkArg,
    /// Target platform(s), os/arch[/variant], comma-separated (default: this
    /// machine's). Several build an image index; steps of a platform that is not this
    /// machine's run under QEMU user emulation (binfmt_misc).
    #[arg(long, value_name = "PLATFORMS")]
    pub platform: Option<String>,
    /// Registries config (insecure registries, rewrites/mirrors) for base images and
    /// `--push`. Default: $FLENSE_REGISTRIES_CONFIG, else
    /// $XDG_CONFIG_HOME/flense/config.toml.
    #[arg(long, value_name = "FILE")]
    pub registries_config: Option<PathBuf>,
    /// User-namespace mode of build steps: auto, root, subuid or single.
    #[arg(long, default_value = "auto")]
    pub userns: String,
    /// Isolation of build steps: namespace, chroot (root only: a chroot of a copied
    /// root filesystem, without namespaces), or auto (chroot only for root where
    /// namespace creation is refused).
    #[arg(long, env = "FLENSE_ISOLATION", default_value = "auto", value_parser = super::run::parse_isolation)]
    pub isolation: flense_runtime::Isolation,
    #[command(flatten)]
    pub policy: super::config::PolicyArg,
    /// An extra label of the image, KEY=VALUE (repeatable; BuildKit's `label:K=V`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// Arguments of `flense build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The variant to build.
    #[arg(default_value = "test")]
    pub variant: String,
    #[command(flatten)]
    pub options: BuildOptions,
    /// Tag for the image in the store (default: <context dir name>:<variant>).
    #[arg(short = 't', long)]
    pub tag: Option<String>,
    /// Push the image to this registry reference after building.
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Sign the pushed image with this private key, as `flense push --sign-by` does.
    #[arg(long, value_name = "KEY", requires = "push")]
    pub sign_by: Option<PathBuf>,
    /// Also write the image to oci:DIR, oci-archive:FILE or docker-archive:FILE.
    #[arg(short = 'o', long, value_name = "DEST")]
    pub output: Option<String>,
    /// Manifest format.
    #[arg(long, value_enum, default_value = "oci")]
    pub format: FormatArg,
    /// Print only the image digest.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print build events as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Check everything the build needs (config, images, copy sources, cache state)
    /// and print the steps it would run, without running one or writing a layer.
    #[arg(long, conflicts_with_all = ["push", "output"])]
    pub dry_run: bool,
    /// Attach an SPDX SBOM of the image (in-toto attestation, BuildKit's layout): the
    /// tag then names an index of the image manifest and the attestation manifest.
    #[arg(long, conflicts_with = "dry_run")]
    pub sbom: bool,
    /// Attach SLSA v1 provenance of the build (in-toto attestation, as `--sbom`).
    #[arg(long, conflicts_with = "dry_run")]
    pub provenance: bool,
}

/// Build options of `flense run VARIANT` (network and user-namespace mode come from
/// `run`'s own options).
#[derive(Args, Debug, Clone)]
pub struct RunBuildArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Registries config for base images.
    #[arg(long, value_name = "FILE")]
    pub registries_config: Option<PathBuf>,
    /// Print nothing while building.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub policy: super::config::PolicyArg,
    /// The platform to build and run, os/arch[/variant] (default: this machine's);
    /// with --image, the platform's image of a multi-platform image. Another
    /// machine's platform runs under QEMU user emulation (binfmt_misc).
    #[arg(long)]
    pub platform: Option<String>,
}

/// The sandbox options of `flense run VARIANT` that its build steps use too.
#[derive(Debug, Clone, Copy)]
pub struct RunSandbox {
    /// Network of the steps.
    pub network: flense_runtime::Network,
    /// User-namespace mode.
    pub userns: flense_runtime::IdMode,
    /// Namespaces or chroot.
    pub isolation: flense_runtime::Isolation,
}

/// Builds `variant` for `flense run VARIANT` (progress on stderr) and returns the
/// reference to run: the image's manifest digest.
pub fn build_for_run(
    globals: &Globals,
    variant: &str,
    args: &RunBuildArgs,
    sandbox: RunSandbox,
) -> anyhow::Result<String> {
    let options = BuildOptions {
        project: args.project.clone(),
        network: match sandbox.network {
            flense_runtime::Network::Host => NetworkArg::Host,
            flense_runtime::Network::None => NetworkArg::None,
        },
        platform: args.platform.clone(),
        registries_config: args.registries_config.clone(),
        userns: sandbox.userns.to_string(),
        isolation: sandbox.isolation,
        policy: args.policy.clone(),
        labels: Vec::new(),
    };
    let output = if args.quiet {
        Output::Quiet
    } else {
        Output::Human
    };
    let (_, built) = build_variant(globals, variant, &options, None, ImageFormat::Oci, output)?;
    Ok(built
        .reference
        .clone()
        .unwrap_or_else(|| built.manifest.digest().to_string()))
}

/// Runs one subcommand of this area.
pub fn run(cmd: Commands, globals: &Globals) -> anyhow::Result<ExitCode> {
    match cmd {
        Commands::Build(args) => build(*args, globals),
    }
}

/// Opens the store of `--root` (or the default root).
pub fn open_store(globals: &Globals) -> anyhow::Result<Store> {
    let root = globals
        .root
        .clone()
        .unwrap_or_else(flense::store::default_root);
    Store::open(&root).with_context(|| format!("opening the store at {}", root.display()))
}

/// Everything a build of one variant needs, before it starts.
struct Prepared {
    store: Store,
    req: ProjectBuild,
    runner: SandboxRunner,
    /// The images of the build's platform (the first one of several).
    images: PullingImages,
    /// With several `--platform`s: each with its images.
    platforms: Vec<(Platform, PullingImages)>,
}

impl Prepared {
    fn platform_images(&self) -> Vec<PlatformImages<'_>> {
        self.platforms
            .iter()
            .map(|(platform, images)| PlatformImages {
                platform: platform.clone(),
                images,
            })
            .collect()
    }
}

/// Validates the options and sets up the store, the runner and the image source.
fn prepare(
    globals: &Globals,
    variant: &str,
    options: &BuildOptions,
    tag: Option<String>,
    format: ImageFormat,
) -> anyhow::Result<Prepared> {
    let build_args =
        flense::plan::parse_build_args(&options.project.build_args).map_err(super::invalid)?;
    let platforms = options
        .platform
        .as_deref()
        .map(Platform::parse_list)
        .transpose()
        .map_err(super::invalid)?
        .unwrap_or_default();
    let platform = platforms.first().cloned();
    let project = &options.project;
    if !project.context.is_dir() {
        return Err(super::invalid(anyhow!(
            "build context {} is not a directory",
            project.context.display()
        )));
    }
    let config_file = project
        .file
        .clone()
        .unwrap_or_else(|| default_config_file(&project.context));
    if options.policy.policy.is_some() {
        let config = super::config::load_or_report(&config_file)?;
        options.policy.check(&config_file, &config, variant)?;
    }
    let store = open_store(globals)?;
    let tag = tag.unwrap_or_else(|| default_tag(&project.context, variant));
    let labels = options
        .labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(super::invalid(anyhow!("--label {l:?} is not KEY=VALUE"))),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let req = ProjectBuild {
        config_file,
        variant: variant.to_string(),
        build_args,
        platform: platform.clone(),
        labels,
        settings: BuildSettings {
            context_dir: project.context.clone(),
            no_cache: project.no_cache,
            network: match options.network {
                NetworkArg::Host => StepNetwork::Host,
                NetworkArg::None => StepNetwork::None,
            },
            epoch: flense::image::source_date_epoch(),
            format,
            tag: Some(tag),
            keep_tool_caches: project.cache.keep_tool_caches,
            foreign_platform: platform.clone().filter(|p| !p.is_host()),
        },
        shared_cache: None,
    };
    let mode: flense_runtime::IdMode = options.userns.parse().map_err(super::invalid)?;
    let runner = SandboxRunner::new(mode).with_isolation(options.isolation);
    let settings = flense::registry::RegistrySettings::load(options.registries_config.as_deref())
        .map_err(super::invalid)?;
    let client =
        flense::registry::Client::new(settings, flense::registry::CredentialSource::from_env())?;
    let pull_platform = match &req.platform {
        Some(p) => p.clone(),
        None => Platform::host().without_variant(),
    };
    let shared_cache = options.project.cache.open(&client)?;
    let req = ProjectBuild {
        shared_cache,
        ..req
    };
    let images_for = |platform: Platform| {
        PullingImages::new(store.clone(), client.clone(), platform)
            .with_policy(options.project.pull.into())
    };
    let platforms = match platforms.len() {
        0 | 1 => Vec::new(),
        _ => platforms
            .into_iter()
            .map(|p| (p.clone(), images_for(p)))
            .collect(),
    };
    let images = images_for(pull_platform);
    Ok(Prepared {
        store,
        req,
        runner,
        images,
        platforms,
    })
}

/// Builds a variant with the given options; shared with `flense run VARIANT`.
pub fn build_variant(
    globals: &Globals,
    variant: &str,
    options: &BuildOptions,
    tag: Option<String>,
    format: ImageFormat,
    output: Output,
) -> anyhow::Result<(Store, BuiltImage)> {
    let p = prepare(globals, variant, options, tag, format)?;
    super::progress::install(output != Output::Human);
    let printer = Printer(output);
    let built = if p.platforms.is_empty() {
        build_project(&p.store, &p.runner, &p.images, &printer, &p.req)
    } else {
        build_platforms(&p.store, &p.runner, &printer, &p.req, &p.platform_images())
    };
    Ok((p.store, built.map_err(project_error)?))
}

/// A build's error for the CLI: exit 2 when the input (config, arguments) is wrong.
fn project_error(e: flense::builder::project::ProjectError) -> anyhow::Error {
    if e.is_invalid_input() {
        super::invalid(e)
    } else {
        anyhow::Error::new(e)
    }
}

fn build(args: BuildArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    if args.dry_run {
        let p = prepare(
            globals,
            &args.variant,
            &args.options,
            args.tag.clone(),
            ImageFormat::Oci,
        )?;
        if p.platforms.is_empty() {
            return dryrun::run(&args, &p.store, &p.runner, &p.images, &p.req);
        }
        return dryrun::run_platforms(&args, &p.store, &p.runner, &p.req, &p.platform_images());
    }
    let output = if args.json {
        Output::Json
    } else if args.quiet {
        Output::Quiet
    } else {
        Output::Human
    };
    let format = match args.format {
        FormatArg::Oci => ImageFormat::Oci,
        FormatArg::Docker => ImageFormat::Docker,
    };
    if let Some(dest) = &args.output {
        output::parse_output(dest).map_err(super::invalid)?;
    }
    // Asked before the build, not after minutes of it.
    let signing_key = (args.sign_by.as_deref())
        .map(super::sign::open_signing_key)
        .transpose()?;
    let (store, built, top) = if args.sbom || args.provenance {
        let wanted = attest::Wanted {
            sbom: args.sbom,
            provenance: args.provenance,
        };
        attest::build_attested(globals, &args, format, output, wanted)?
    } else {
        let (store, built) = build_variant(
            globals,
            &args.variant,
            &args.options,
            args.tag.clone(),
            format,
            output,
        )?;
        let top = built.manifest.clone();
        (store, built, top)
    };
    let digest = built.manifest.digest().to_string();
    if let Some(dest) = &args.output {
        output::export(&store, &built, dest)?;
    }
    if let Some(dest) = &args.push {
        let pushed = push::push(
            args.options.registries_config.as_deref(),
            &store,
            &top,
            dest,
        )?;
        if let Some(key) = &signing_key {
            super::sign::sign_after_build(
                args.options.registries_config.as_deref(),
                dest,
                &pushed,
                key,
            )?;
        }
    }
    if output != Output::Json {
        println!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}
