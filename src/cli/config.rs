//! `config` area subcommands: `validate` and `variants` (blubber.yaml front end).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};

use super::Globals;
use flense::config::policy::{Policy, PolicyError};
use flense::config::{self, Config, ConfigErrors};

/// Subcommands of this area.
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Validate a blubber.yaml: every error with file:line:col and variant; exit 2 if invalid.
    Validate(ValidateArgs),
    /// List the variants of a blubber.yaml, one per line, in file order.
    Variants(VariantsArgs),
    /// Print a variant's build instructions as a Dockerfile (Blubber's instruction stream).
    Dockerfile(DockerfileArgs),
    /// Print the compiled build plan of a variant (`--json` for the machine-readable form).
    Plan(PlanArgs),
}

/// The config file option shared by the config subcommands.
#[derive(Args, Debug, Clone)]
pub struct FileArg {
    /// The Blubber config file.
    #[arg(short = 'f', long = "file", default_value = config::DEFAULT_PATH)]
    pub file: PathBuf,
}

/// Blubber's `--policy` option shared by the commands that compile a variant.
#[derive(Args, Debug, Clone, Default)]
pub struct PolicyArg {
    /// A policy file or http(s) URL (Blubber's `--policy`): enforcements checked
    /// against the config before compiling; a violation exits with 2.
    #[arg(short = 'p', long = "policy", value_name = "FILE|URL")]
    pub policy: Option<String>,
}

impl PolicyArg {
    /// Checks `config` for `variant` against the policy, if one was given.
    pub fn check(&self, file: &Path, config: &Config, variant: &str) -> anyhow::Result<()> {
        let Some(uri) = &self.policy else {
            return Ok(());
        };
        read_policy(uri)?
            .check(config, variant)
            .map_err(|e| policy_failure(file, e))
    }
}

/// Reads a policy from a local path (or `file://` URL) or over http(s).
pub fn read_policy(uri: &str) -> anyhow::Result<Policy> {
    let text = if uri.starts_with("http://") || uri.starts_with("https://") {
        let response = reqwest::blocking::get(uri)
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("loading policy {uri}"))?;
        response
            .text()
            .with_context(|| format!("loading policy {uri}"))?
    } else {
        let path = uri.strip_prefix("file://").unwrap_or(uri);
        std::fs::read_to_string(path)
            .with_context(|| format!("loading policy {uri}"))
            .map_err(super::invalid)?
    };
    Policy::parse(&text, uri).map_err(super::invalid)
}

fn policy_failure(file: &Path, e: PolicyError) -> anyhow::Error {
    match e {
        PolicyError::Config(errors) => report(file, errors),
        other => super::invalid(other),
    }
}

/// Arguments of `flense validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    config: FileArg,
    #[command(flatten)]
    policy: PolicyArg,
}

/// Arguments of `flense variants`.
#[derive(Args, Debug)]
pub struct VariantsArgs {
    #[command(flatten)]
    config: FileArg,
}

/// Runs one subcommand of this area.
pub fn run(cmd: Commands, _globals: &Globals) -> anyhow::Result<ExitCode> {
    match cmd {
        Commands::Validate(args) => validate(&args),
        Commands::Variants(args) => variants(&args),
        Commands::Dockerfile(args) => dockerfile(&args),
        Commands::Plan(args) => plan(&args),
    }
}

/// Loads a config, printing every error on stderr; the error it returns exits with 2.
pub fn load_or_report(file: &Path) -> anyhow::Result<Config> {
    config::load(file).map_err(|errors| report(file, errors))
}

fn report(file: &Path, errors: ConfigErrors) -> anyhow::Error {
    for e in &errors.errors {
        eprintln!("{e}");
    }
    let n = errors.errors.len();
    let noun = if n == 1 { "error" } else { "errors" };
    super::invalid(anyhow!("{} is invalid ({n} {noun})", file.display()))
}

fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let file = &args.config.file;
    let config = load_or_report(file)?;
    config.check_all().map_err(|errors| report(file, errors))?;
    for warning in config.warnings() {
        eprintln!("{warning}");
    }
    if let Some(uri) = &args.policy.policy {
        let policy = read_policy(uri)?;
        let mut violations = 0;
        for name in config.variant_names() {
            if let Err(e) = policy.check(&config, name) {
                eprintln!("variant \"{name}\": {e}");
                violations += 1;
            }
        }
        if violations > 0 {
            let noun = if violations == 1 {
                "variant"
            } else {
                "variants"
            };
            return Err(super::invalid(anyhow!(
                "{} fails policy {uri} ({violations} {noun})",
                file.display()
            )));
        }
    }
    let n = config.variants.len();
    let noun = if n == 1 { "variant" } else { "variants" };
    println!("{}: OK ({n} {noun})", file.display());
    Ok(ExitCode::SUCCESS)
}

fn variants(args: &VariantsArgs) -> anyhow::Result<ExitCode> {
    let config = load_or_report(&args.config.file)?;
    for name in config.variant_names() {
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What `flense dockerfile` and `flense plan` compile: the config, build arguments, policy.
#[derive(Args, Debug)]
pub struct CompileArgs {
    #[command(flatten)]
    config: FileArg,
    /// A build argument, NAME=VALUE (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    build_args: Vec<String>,
    #[command(flatten)]
    policy: PolicyArg,
}

/// Arguments of `flense dockerfile`.
#[derive(Args, Debug)]
pub struct DockerfileArgs {
    /// The variant to render.
    #[arg(default_value = "test")]
    variant: String,
    #[command(flatten)]
    compile: CompileArgs,
}

/// Arguments of `flense plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The variant to compile.
    #[arg(default_value = "test")]
    variant: String,
    #[command(flatten)]
    compile: CompileArgs,
    /// Target platform, os/arch[/variant] (default: this machine's); sets
    /// TARGETPLATFORM and friends for the build steps.
    #[arg(long)]
    platform: Option<String>,
    /// Print the plan as JSON (the stable, machine-readable form).
    #[arg(long)]
    json: bool,
}

/// Loads the config and compiles `variant`; every failure is invalid input (exit 2).
fn compile_variant(
    args: &CompileArgs,
    variant: &str,
    platform: Option<&str>,
) -> anyhow::Result<flense::plan::Plan> {
    let file = args.config.file.as_path();
    let build_args = flense::plan::parse_build_args(&args.build_args).map_err(super::invalid)?;
    let platform = platform
        .map(str::parse::<flense::image::platform::Platform>)
        .transpose()
        .map_err(super::invalid)?;
    let config = load_or_report(file)?;
    args.policy.check(file, &config, variant)?;
    let options = flense::plan::CompileOptions {
        build_args,
        platform,
        ..Default::default()
    };
    flense::plan::compile(&config, variant, &options).map_err(|e| match e {
        flense::plan::PlanError::Config(errors) => report(file, errors),
        other => super::invalid(other),
    })
}

fn dockerfile(args: &DockerfileArgs) -> anyhow::Result<ExitCode> {
    let plan = compile_variant(&args.compile, &args.variant, None)?;
    print!("{}", flense::plan::dockerfile::render(&plan));
    Ok(ExitCode::SUCCESS)
}

fn plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let plan = compile_variant(&args.compile, &args.variant, args.platform.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", flense::plan::summary::render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}
