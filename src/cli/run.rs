//! `run` area subcommands: `flense run --image REF [-- ARGS...]` runs an image from the
//! store in a rootless sandbox and exits with its command's code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use flense_runtime::{ExitStatus, IdMode, Isolation, Mount, Network, RuntimeError};

use super::{invalid, Globals};
use flense::builder::emulation::check_foreign_platform;
use flense::image::platform::Platform;
use flense::run::{run_image, RunError, RunOverrides};
use flense::store::{default_root, Store, StoreError};

/// Subcommands of this area.
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Run a command in a sandbox made from an image in the local store
    /// (exit code: the command's, 128+N when killed by signal N, 124 after --timeout,
    /// 127 when the program is not found, 126 when it cannot be executed).
    Run(Box<RunArgs>),
}

/// Options of `flense run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// A variant of the Blubber config to build (when needed) and run as its runs user,
    /// like Blubber's run-variant. Give either VARIANT or --image.
    #[arg(conflicts_with = "image")]
    pub variant: Option<String>,
    /// With VARIANT: build options (config file, context, build args, cache).
    #[command(flatten)]
    pub build: super::build::RunBuildArgs,
    /// The image to run (a tag such as `busybox` or `localhost/app:1`, or a digest).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Set an environment variable (repeatable).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Network: `host` (shared with the host; with --service, the group's own with
    /// outbound access through pasta), `none` (a network of its own, only loopback) or
    /// `private` (a network of its own with outbound access through pasta; only
    /// loopback, with a warning, when pasta cannot give it).
    #[arg(long, value_enum, default_value = "host")]
    pub network: RunNetwork,
    /// Extra mount: `type=bind,src=PATH,dst=PATH[,ro]`, `type=tmpfs,dst=PATH[,size=BYTES]`
    /// or `type=cache,src=PATH,dst=PATH` (repeatable).
    #[arg(long = "mount", value_name = "SPEC", value_parser = parse_mount)]
    pub mounts: Vec<Mount>,
    /// Working directory inside the sandbox (default: the image's).
    #[arg(short = 'w', long)]
    pub workdir: Option<PathBuf>,
    /// User to run as: `uid[:gid]` or `name[:group]` (default: the image's).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Override the image's entrypoint (an empty string clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// User-namespace ID mode: auto, root, subuid or single.
    #[arg(long, default_value = "auto", value_parser = parse_userns)]
    pub userns: IdMode,
    /// Isolation: namespace, chroot (root only: a chroot of a copied root filesystem,
    /// without namespaces), or auto (chroot only for root where namespace creation is
    /// refused).
    #[arg(long, env = "FLENSE_ISOLATION", default_value = "auto", value_parser = parse_isolation)]
    pub isolation: Isolation,
    /// Host name inside the sandbox.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Kill the sandbox after this many seconds (exit code 124).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Services beside the command (see docs/services.md).
    #[command(flatten)]
    pub services: super::services::ServiceArgs,
    /// The command and its arguments (after `--`); replaces the image's cmd.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// `flense run --network`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNetwork {
    /// The host's network (with --service: the group's own, with outbound access).
    Host,
    /// A network namespace of its own with only loopback.
    None,
    /// A network namespace of its own with outbound access through pasta.
    Private,
}

impl RunNetwork {
    /// The sandbox network and whether it gets outbound access.
    fn sandbox(self) -> (Network, bool) {
        match self {
            RunNetwork::Host => (Network::Host, false),
            RunNetwork::None => (Network::None, false),
            RunNetwork::Private => (Network::None, true),
        }
    }
}

/// Runs one subcommand of this area.
pub fn run(cmd: Commands, globals: &Globals) -> anyhow::Result<ExitCode> {
    match cmd {
        Commands::Run(args) => run_command(*args, globals),
    }
}

fn run_command(args: RunArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let sandbox = super::build::RunSandbox {
        // The build steps of `private` runs keep the host's network, as builds do.
        network: match args.network {
            RunNetwork::None => Network::None,
            RunNetwork::Host | RunNetwork::Private => Network::Host,
        },
        userns: args.userns,
        isolation: args.isolation,
    };
    let platform = run_platform(&args)?;
    let reference = match (&args.image, &args.variant) {
        (Some(image), _) => match &platform {
            Some(p) => image_for_platform(globals, image, p)?,
            None => image.clone(),
        },
        (None, Some(variant)) => {
            super::build::build_for_run(globals, variant, &args.build, sandbox)?
        }
        (None, None) => {
            return Err(invalid(anyhow::anyhow!(
                "nothing to run: give a VARIANT or --image REF (flense run --image busybox -- sh)"
            )))
        }
    };
    let mut overrides = overrides_from(&args)?;
    overrides.services = services_of(&args, globals, sandbox)?;
    // Unpacking an image stored with `--no-unpack` before it runs.
    super::progress::install(args.build.quiet);
    let root = globals.root.clone().unwrap_or_else(default_root);
    let store = Store::open(&root).with_context(|| format!("open store {}", root.display()))?;
    super::services::pull_images(&store, &overrides.services, &args.build)?;
    let status = match run_image(&store, &reference, &overrides) {
        Ok(status) => status,
        Err(e) if e.is_invalid_input() => return Err(invalid(e)),
        Err(RunError::Runtime(RuntimeError::Exec { program, source })) => {
            // Like a shell: 127 when the program is not found, 126 when it cannot run.
            eprintln!("flense: {reference}: cannot execute {program:?}: {source}");
            let not_found = source.raw_os_error() == Some(nix::errno::Errno::ENOENT as i32);
            return Ok(ExitCode::from(if not_found { 127 } else { 126 }));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("run {reference}"))),
    };
    match status {
        ExitStatus::TimedOut => eprintln!(
            "flense: {reference}: killed after the timeout of {}s",
            args.timeout.unwrap_or_default()
        ),
        ExitStatus::Signaled(sig) => tracing::info!("command killed by signal {sig}"),
        ExitStatus::Exited(_) => {}
    }
    Ok(ExitCode::from(status.code().clamp(0, 255) as u8))
}

/// The `--platform` of `flense run` (one platform), checked to be runnable here:
/// another machine's needs a usable QEMU binfmt_misc handler.
fn run_platform(args: &RunArgs) -> anyhow::Result<Option<Platform>> {
    let Some(text) = &args.build.platform else {
        return Ok(None);
    };
    let platform: Platform = text.parse().map_err(invalid)?;
    check_foreign_platform(&platform)?;
    Ok(Some(platform))
}

/// The digest of `platform`'s image under `reference` (an index entry, or a single
/// image of that platform).
fn image_for_platform(
    globals: &Globals,
    reference: &str,
    platform: &Platform,
) -> anyhow::Result<String> {
    let store = super::build::open_store(globals)?;
    match store.image_for(reference, platform) {
        Ok(image) => Ok(image.descriptor.digest().to_string()),
        Err(e @ (StoreError::NoPlatform { .. } | StoreError::UnknownImage(_))) => Err(invalid(e)),
        Err(e) => Err(e.into()),
    }
}

/// The services of `--service`: with a VARIANT to run, names of variants of its
/// Blubber config are built; other values are images.
fn services_of(
    args: &RunArgs,
    globals: &Globals,
    sandbox: super::build::RunSandbox,
) -> anyhow::Result<flense::run::Services> {
    if args.services.services.is_empty() {
        return args.services.resolve(|t| Ok(t.to_string()));
    }
    let variants: Option<Vec<String>> = match &args.variant {
        Some(_) => {
            let project = &args.build.project;
            let file = project
                .file
                .clone()
                .unwrap_or_else(|| flense::builder::project::default_config_file(&project.context));
            let config = super::config::load_or_report(&file)?;
            Some(config.variants.iter().map(|v| v.name.clone()).collect())
        }
        None => None,
    };
    args.services.resolve(|target| {
        let known = variants.as_deref().map(|v| (v, &args.build, sandbox));
        super::services::image_for_target(globals, target, known)
    })
}

/// The overrides `run_image` takes, from the command line.
pub fn overrides_from(args: &RunArgs) -> anyhow::Result<RunOverrides> {
    let mut env = Vec::new();
    for kv in &args.env {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => env.push((k.to_string(), v.to_string())),
            _ => match std::env::var(kv) {
                // `-e NAME` passes the caller's value, like docker.
                Ok(v) if !kv.is_empty() => env.push((kv.clone(), v)),
                _ => return Err(invalid(anyhow::anyhow!("-e {kv:?}: expected K=V"))),
            },
        }
    }
    let timeout = match args.timeout {
        Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
        Some(t) => {
            return Err(invalid(anyhow::anyhow!(
                "--timeout {t}: expected seconds > 0"
            )))
        }
        None => None,
    };
    if let Some(w) = &args.workdir {
        if !w.is_absolute() {
            return Err(invalid(anyhow::anyhow!(
                "--workdir {}: expected an absolute path",
                w.display()
            )));
        }
    }
    let entrypoint = args.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            Vec::new()
        } else {
            vec![e.clone()]
        }
    });
    let (network, outbound) = args.network.sandbox();
    Ok(RunOverrides {
        args: args.args.clone(),
        entrypoint,
        env,
        network,
        outbound,
        mounts: args.mounts.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        userns: args.userns,
        isolation: args.isolation,
        hostname: args.hostname.clone(),
        timeout,
        forward_signals: true,
        services: Default::default(),
    })
}

/// Parses `--isolation` (also used by `build` and `pipeline`).
pub fn parse_isolation(s: &str) -> Result<Isolation, String> {
    s.parse()
        .map_err(|e: flense_runtime::RuntimeError| e.to_string())
}

fn parse_userns(s: &str) -> Result<IdMode, String> {
    s.parse()
        .map_err(|e: flense_runtime::RuntimeError| e.to_string())
}

/// Parses a `--mount` value: comma-separated `key=value` fields and the `ro` flag.
pub fn parse_mount(spec: &str) -> Result<Mount, String> {
    let (mut kind, mut src, mut dst, mut ro, mut size) = (None, None, None, false, None);
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        match (key, value) {
            ("type", Some(v)) => kind = Some(v.to_string()),
            ("src" | "source", Some(v)) => src = Some(PathBuf::from(v)),
            ("dst" | "destination" | "target", Some(v)) => dst = Some(PathBuf::from(v)),
            ("ro" | "readonly", None | Some("true" | "1")) => ro = true,
            ("ro" | "readonly", Some("false" | "0")) | ("rw", None) => ro = false,
            ("size", Some(v)) => {
                size = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("size={v}: expected bytes"))?,
                )
            }
            _ => return Err(format!("unknown mount field {field:?} in {spec:?}")),
        }
    }
    let dst = dst.ok_or_else(|| format!("{spec:?}: missing dst="))?;
    if !dst.is_absolute() {
        return Err(format!("{spec:?}: dst must be an absolute path"));
    }
    let absolute_src = |src: Option<PathBuf>| -> Result<PathBuf, String> {
        let src = src.ok_or_else(|| format!("{spec:?}: missing src="))?;
        std::path::absolute(&src).map_err(|e| format!("{}: {e}", src.display()))
    };
    match kind.as_deref().unwrap_or("bind") {
        "bind" => Ok(Mount::Bind {
            src: absolute_src(src)?,
            dst,
            readonly: ro,
        }),
        "tmpfs" => Ok(Mount::Tmpfs { dst, size }),
        "cache" => Ok(Mount::Cache {
            src: absolute_src(src)?,
            dst,
        }),
        other => Err(format!(
            "unknown mount type {other:?} (bind, tmpfs or cache)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs_parse() {
        assert_eq!(
            parse_mount("type=bind,src=/a,dst=/b,ro").unwrap(),
            Mount::Bind {
                src: "/a".into(),
                dst: "/b".into(),
                readonly: true
            }
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,size=1024").unwrap(),
            Mount::Tmpfs {
                dst: "/t".into(),
                size: Some(1024)
            }
        );
        assert!(parse_mount("type=bind,src=/a").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=rel").is_err());
        assert!(parse_mount("type=nfs,dst=/x").is_err());
        assert!(parse_mount("type=bind,src=/a,dst=/b,bogus").is_err());
    }
}
