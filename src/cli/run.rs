//! `run` area subcommands.

use std::process::ExitCode;

use clap::Subcommand;

use super::Globals;

/// Subcommands of this area.
#[derive(Subcommand, Debug)]
pub enum Commands {}

/// Runs one subcommand of this area.
pub fn run(cmd: Commands, _globals: &Globals) -> anyhow::Result<ExitCode> {
    match cmd {}
}
