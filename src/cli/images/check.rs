//! `flense check [--repair]`: verifying the store (see `flense::store::check`).

use std::process::ExitCode;

use clap::Args;

use super::{open_store, Globals};

/// Arguments of `flense check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Delete what is broken (corrupt blobs, names of incomplete images, broken unpacked
    /// layers, dangling build-cache records, leftovers of killed processes), so the next
    /// pull or build fetches or makes it again.
    #[arg(long)]
    pub repair: bool,
}

/// Prints one line per problem; exits 1 when there are problems and `--repair` was
/// not given, else 0.
pub(super) fn check(args: CheckArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    let report = if args.repair {
        store.check_and_repair()?
    } else {
        store.check()?
    };
    for problem in &report.problems {
        match args.repair {
            true => outln!("repaired: {problem}"),
            false => outln!("{problem}"),
        }
    }
    if report.problems.is_empty() {
        outln!("The store is consistent");
    } else if !args.repair {
        outln!(
            "{} problems; `flense check --repair` deletes what is broken",
            report.problems.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
