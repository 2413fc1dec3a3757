//! `flense sbom`: the SBOM of any image in the store, read from its layers.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use flense::attest::{sbom_document, SbomFormat};
use flense::store::StoreError;

use super::Globals;

/// Subcommands of this area.
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Print the SBOM of an image in the store (Debian, npm, Python and Composer
    /// packages read from its layers), as SPDX 2.3 or CycloneDX 1.5 JSON.
    Sbom(SbomArgs),
}

/// SBOM formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormatArg {
    /// SPDX 2.3 JSON.
    SpdxJson,
    /// CycloneDX 1.5 JSON.
    CyclonedxJson,
}

impl From<SbomFormatArg> for SbomFormat {
    fn from(arg: SbomFormatArg) -> Self {
        match arg {
            SbomFormatArg::SpdxJson => SbomFormat::SpdxJson,
            SbomFormatArg::CyclonedxJson => SbomFormat::CycloneDxJson,
        }
    }
}

/// Arguments of `sbom`.
#[derive(Args, Debug)]
pub struct SbomArgs {
    /// Image reference or manifest digest.
    pub reference: String,
    /// Document format.
    #[arg(long, value_enum, default_value = "spdx-json")]
    pub format: SbomFormatArg,
    /// Write the document to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs one subcommand of this area.
pub fn run(cmd: Commands, globals: &Globals) -> anyhow::Result<ExitCode> {
    match cmd {
        Commands::Sbom(args) => sbom(args, globals),
    }
}

fn sbom(args: SbomArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = super::build::open_store(globals)?;
    let image = store.image(&args.reference).map_err(|e| match e {
        StoreError::Reference(_) | StoreError::UnknownImage(_) => super::invalid(e),
        e => e.into(),
    })?;
    let doc = sbom_document(&store, &image, args.format.into())
        .with_context(|| format!("reading the packages of {}", args.reference))?;
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(anyhow::Error::new(e).context("writing to stdout"));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
