//! `flense build --dry-run`: the report of [`flense::builder::dryrun`] on stdout.

use std::process::ExitCode;

use flense::builder::dryrun::DryStatus;
use flense::builder::project::{dry_run_project, ProjectBuild};
use flense::builder::run::runner::StepRunner;
use flense::builder::stage::ImageSource;
use flense::store::Store;

use super::BuildArgs;

/// Longest instruction text printed on one line.
const MAX_LINE: usize = 100;

/// Checks the build of `req` and prints its steps with their cache state (one JSON
/// object with `--json`, only the summary with `--quiet`).
pub fn run(
    args: &BuildArgs,
    store: &Store,
    runner: &dyn StepRunner,
    images: &dyn ImageSource,
    req: &ProjectBuild,
) -> anyhow::Result<ExitCode> {
    let report = dry_run_project(store, runner, images, req).map_err(|e| {
        if e.is_invalid_input() {
            crate::cli::invalid(e)
        } else {
            anyhow::Error::new(e)
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !args.quiet {
        if let Some(isolation) = &report.isolation {
            println!("isolation: {isolation}");
        }
        for image in &report.images {
            println!("image {} -> {}", image.reference, image.digest);
        }
        for step in &report.steps {
            let mut text = step.instruction.clone();
            if text.chars().count() > MAX_LINE {
                text = text.chars().take(MAX_LINE - 3).collect::<String>() + "...";
            }
            println!(
                "[{} {}/{}] {text}  ({})",
                step.variant,
                step.index,
                step.total,
                step.status.label()
            );
        }
    }
    println!(
        "dry run of '{}': {} stage(s), {} step(s) cached, {} would run; nothing was run or written",
        report.target,
        report.stages.len(),
        report.count(DryStatus::Cached) + report.count(DryStatus::CachedRemote),
        report.count(DryStatus::WouldRun)
    );
    Ok(ExitCode::SUCCESS)
}
