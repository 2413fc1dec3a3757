//! Subcommands of the `flense` binary, one file per area. Each area defines a clap
//! `Commands` enum (flattened into the top level) and a `run` function.

pub mod attest;
pub mod build;
pub mod complete;
pub mod config;
pub mod images;
pub mod pipeline;
pub mod progress;
pub mod run;
pub mod services;
pub mod sign;

use std::path::PathBuf;

use clap::Args;

/// Options every subcommand accepts.
#[derive(Args, Debug, Clone)]
pub struct Globals {
    /// Store root (an OCI image layout plus unpacked layers and caches).
    /// Default: $XDG_DATA_HOME/flense, or /var/lib/flense for root.
    #[arg(long, global = true, env = "FLENSE_ROOT")]
    pub root: Option<PathBuf>,
    /// More output (-v: decisions such as the user-namespace mode, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// An error caused by the user's input (config, arguments): exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InvalidInput(#[from] pub anyhow::Error);

/// Wraps an error so that `main` exits with code 2 (invalid input or usage).
#[allow(dead_code)]
pub fn invalid(err: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(InvalidInput(err.into()))
}

/// The exit code for a failed command: 2 for invalid input, 1 otherwise.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<InvalidInput>()) {
        2
    } else {
        1
    }
}

/// Sets up `tracing` output on stderr; `RUST_LOG` overrides the verbosity flag.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
