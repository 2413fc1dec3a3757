//! `flense build --dry-run`: the report of [`flense::builder::dryrun`] on stdout.

use std::process::ExitCode;

use anyhow::Context as _;
use flense::builder::dryrun::{DryRunReport, DryStatus};
use flense::builder::platforms::PlatformImages;
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
    let report = check(store, runner, images, req)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(args, &report);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--dry-run` with several `--platform`s: each platform's report in turn, under a
/// `platform P:` line (with `--json`, one object per line with a `platform` field).
pub fn run_platforms(
    args: &BuildArgs,
    store: &Store,
    runner: &dyn StepRunner,
    req: &ProjectBuild,
    platforms: &[PlatformImages<'_>],
) -> anyhow::Result<ExitCode> {
    for p in platforms {
        let mut req = req.clone();
        req.platform = Some(p.platform.clone());
        req.settings.foreign_platform = Some(p.platform.clone()).filter(|p| !p.is_host());
        let report = check(store, runner, p.images, &req)
            .with_context(|| format!("platform {}", p.platform))?;
        if args.json {
            let mut value = serde_json::to_value(&report)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("platform".into(), p.platform.to_string().into());
            }
            println!("{value}");
        } else {
            println!("platform {}:", p.platform);
            print_report(args, &report);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(
    store: &Store,
    runner: &dyn StepRunner,
    images: &dyn ImageSource,
    req: &ProjectBuild,
) -> anyhow::Result<DryRunReport> {
    dry_run_project(store, runner, images, req).map_err(super::project_error)
}

fn print_report(args: &BuildArgs, report: &DryRunReport) {
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
}
