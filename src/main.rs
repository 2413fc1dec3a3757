//! The `flense` command line: parses arguments, calls the library, maps errors to exit
//! codes (0 ok, 1 failure, 2 invalid input or usage; `run` passes the program's code on).

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Build and test container images from Blubber and PipelineLib files, without Docker,
/// a daemon or root.
#[derive(Parser)]
#[command(name = "flense", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    globals: cli::Globals,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    #[command(flatten)]
    Config(cli::config::Commands),
    #[command(flatten)]
    Images(cli::images::Commands),
    #[command(flatten)]
    Run(cli::run::Commands),
    #[command(flatten)]
    Build(cli::build::Commands),
    #[command(flatten)]
    Pipeline(cli::pipeline::Commands),
    #[command(flatten)]
    Sign(cli::sign::Commands),
    #[command(flatten)]
    Complete(cli::complete::Commands),
    #[command(flatten)]
    Attest(cli::attest::Commands),
}

fn main() -> ExitCode {
    // Large build contexts: freed listings must not stay resident (see the function).
    flense_runtime::malloc::return_large_frees();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    cli::init_tracing(cli.globals.verbose);
    let result = match cli.command {
        Commands::Config(c) => cli::config::run(c, &cli.globals),
        Commands::Images(c) => cli::images::run(c, &cli.globals),
        Commands::Run(c) => cli::run::run(c, &cli.globals),
        Commands::Build(c) => cli::build::run(c, &cli.globals),
        Commands::Pipeline(c) => cli::pipeline::run(c, &cli.globals),
        Commands::Sign(c) => cli::sign::run(c, &cli.globals),
        Commands::Complete(c) => cli::complete::run(c, Cli::command()),
        Commands::Attest(c) => cli::attest::run(c, &cli.globals),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(cli::exit_code_for(&err))
        }
    }
}
