//! `pipeline` area subcommands: `flense pipeline` runs `.pipeline/config.yaml`,
//! `flense export argo` turns a pipeline into an Argo Workflow, `flense export
//! gitlab-ci` pipelines into a `.gitlab-ci.yml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use flense::pipeline::exec::{DryRunExecutor, Executor, ProcessExecutor};
use flense::pipeline::graph::{render_frames, user_frames};
use flense::pipeline::handoff;
use flense::pipeline::model::{self, ConfigFile, LoadOptions};
use flense::pipeline::output::{Output, OutputMode};
use flense::pipeline::report::{junit, summary_table, PipelineReport};
use flense::pipeline::runner::{run_pipeline, run_single_stage, INTERRUPTED};
use flense::pipeline::setup::SetupInfo;
use flense::pipeline::steps::RunOptions;
use flense::pipeline::PipelineError;

use super::Globals;

/// Subcommands of this area.
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Run PipelineLib pipelines from .pipeline/config.yaml (all of them, in file order,
    /// unless named).
    Pipeline(Box<PipelineArgs>),
    /// Export a pipeline to another engine.
    Export {
        /// What to export to.
        #[command(subcommand)]
        target: ExportTarget,
    },
}

/// Export targets.
#[derive(Subcommand, Debug)]
pub enum ExportTarget {
    /// Write an Argo Workflow (a DAG of container tasks running the pushed images).
    Argo(Box<ArgoArgs>),
    /// Write a .gitlab-ci.yml: one job per stage running `flense pipeline --stage`.
    #[command(name = "gitlab-ci")]
    GitlabCi(Box<GitlabArgs>),
}

/// Where the config is and how to validate it.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Project directory (holding .pipeline/).
    #[arg(short = 'C', long = "directory", default_value = ".")]
    pub dir: PathBuf,
    /// Config file (default: <DIR>/.pipeline/config.yaml).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Validate against the verbatim upstream schema (no flense relaxations).
    #[arg(long)]
    pub strict: bool,
    /// Only allow these stage actions (comma-separated, like the CI admin's allow-list).
    #[arg(long, value_delimiter = ',')]
    pub allowed_actions: Option<Vec<String>>,
}

impl ConfigArgs {
    fn path(&self) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| self.dir.join(".pipeline").join("config.yaml"))
    }

    fn load(&self, names: &[String]) -> anyhow::Result<ConfigFile> {
        let opts = LoadOptions {
            strict: self.strict,
            allowed_actions: self.allowed_actions.clone(),
        };
        let cfg = model::load(&self.path(), names, &opts).map_err(|e| {
            // A config that cannot be read for another reason than absence (permissions,
            // I/O) is not the input's fault; a missing or invalid one is.
            let missing = matches!(&e, flense::pipeline::PipelineError::Read { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound);
            if matches!(e, flense::pipeline::PipelineError::Read { .. }) && !missing {
                anyhow::Error::new(e)
            } else {
                super::invalid(e)
            }
        })?;
        for w in &cfg.warnings {
            eprintln!("warning: {w}");
        }
        for p in cfg.select(names) {
            p.frames().map_err(super::invalid)?;
        }
        Ok(cfg)
    }
}

/// Options of `flense pipeline`.
#[derive(Args, Debug)]
pub struct PipelineArgs {
    /// Pipelines to run (default: all, in file order).
    pub names: Vec<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// List the pipelines and their frames, then exit.
    #[arg(long)]
    pub list: bool,
    /// Print the frames and resolve every step without building or running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// At most N stages at once (0: no limit).
    #[arg(long, short = 'j', default_value_t = 0)]
    pub jobs: usize,
    /// Start each stage as soon as its own predecessors finish (not frame by frame).
    #[arg(long)]
    pub dag: bool,
    /// Directory for one log file per stage (default: <DIR>/.pipeline/logs).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Write a JUnit XML report (one testcase per stage).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// JSON events on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// A job parameter: ${setup.params.NAME} and $NAME in run.env values.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Let run.env values and run.credentials use this host environment variable.
    #[arg(long = "env-from-host", value_name = "NAME")]
    pub env_from_host: Vec<String>,
    /// Registry to publish to: HOST[:PORT][/REPOSITORY].
    #[arg(long)]
    pub registry: Option<String>,
    /// Directory for archived copies and publish.files.
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Bind ${setup.httpProxy}.
    #[arg(long)]
    pub http_proxy: Option<String>,
    /// The flense binary whose `build`, `run` and `push` the stages drive (default: this one).
    #[arg(long, value_name = "PATH")]
    pub flense_bin: Option<PathBuf>,
    /// Time limit of each run step in seconds, as upstream's 20 minutes (0: none).
    #[arg(long, value_name = "SECS", default_value_t = 1200)]
    pub run_timeout: u64,
    /// Extra option passed to every `flense run` (e.g. --run-option=--network=host).
    #[arg(long = "run-option", value_name = "OPTION", allow_hyphen_values = true)]
    pub run_options: Vec<String>,
    /// Shared build caches of every build of every stage.
    #[command(flatten)]
    pub cache: super::build::CacheArgs,
    /// Isolation of every build step and run: namespace, chroot or auto (see
    /// `flense build --isolation`).
    #[arg(long, env = "FLENSE_ISOLATION", default_value = "auto", value_parser = super::run::parse_isolation)]
    pub isolation: flense_runtime::Isolation,
    /// Attach an SPDX SBOM to every built image (`flense build --sbom`).
    #[arg(long)]
    pub sbom: bool,
    /// Attach SLSA provenance to every built image (`flense build --provenance`).
    #[arg(long)]
    pub provenance: bool,
    /// Pull policy of every build (over the stages' `imagePullPolicy`, which is used
    /// when this is not given; default `missing`).
    #[arg(long, value_enum, value_name = "POLICY")]
    pub pull: Option<super::build::PullArg>,
    /// Target platform(s) of every build, comma-separated (see `flense build
    /// --platform`): several make each stage's image an index; runs take this
    /// machine's platform from it.
    #[arg(long, value_name = "PLATFORMS")]
    pub platform: Option<String>,
    /// Run only this stage of the (one) pipeline, as one CI job: the outputs of the
    /// stages before it come from $FLENSE_OUTPUTS_<PIPELINE>_<STAGE> (dotenv reports of
    /// earlier jobs); with --registry, built images are pushed for later jobs.
    #[arg(long, value_name = "NAME")]
    pub stage: Option<String>,
    /// With --stage: write the stage's outputs to FILE as dotenv variables (GitLab's
    /// `artifacts:reports:dotenv`).
    #[arg(long, value_name = "FILE", requires = "stage")]
    pub dotenv: Option<PathBuf>,
}

/// Options of `flense export argo`.
#[derive(Args, Debug)]
pub struct ArgoArgs {
    /// The pipeline (default: the first one).
    pub pipeline: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Registry the images were pushed to: HOST[:PORT][/REPOSITORY].
    #[arg(long)]
    pub registry: Option<String>,
    /// Use each stage's true dependencies instead of frame barriers.
    #[arg(long)]
    pub dag: bool,
    /// Output file (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// A job parameter for ${setup.params.NAME}.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

/// Options of `flense export gitlab-ci`.
#[derive(Args, Debug)]
pub struct GitlabArgs {
    /// The pipelines (default: all, in file order; they run one after the other).
    pub pipelines: Vec<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Registry the jobs push built images to (for the jobs after them) and publish to:
    /// HOST[:PORT][/REPOSITORY]. Without it, jobs share images through one store (one
    /// machine).
    #[arg(long)]
    pub registry: Option<String>,
    /// The jobs' image (a runner image with flense installed; default: none).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Use each stage's true dependencies (`needs:`) instead of frame barriers.
    #[arg(long)]
    pub dag: bool,
    /// Output file (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// A job parameter for ${setup.params.NAME}, passed to every job.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// A shared build cache to read, passed to every job (jobs also read
    /// $FLENSE_CACHE_FROM, e.g. a CI/CD variable).
    #[arg(long = "cache-from", value_name = "REF")]
    pub cache_from: Vec<String>,
    /// A shared build cache to write, passed to every job (or $FLENSE_CACHE_TO).
    #[arg(long = "cache-to", value_name = "REF")]
    pub cache_to: Vec<String>,
}

/// Runs one subcommand of this area.
pub fn run(cmd: Commands, globals: &Globals) -> anyhow::Result<ExitCode> {
    match cmd {
        Commands::Pipeline(args) => run_pipelines(*args, globals),
        Commands::Export {
            target: ExportTarget::Argo(args),
        } => export_argo(*args),
        Commands::Export {
            target: ExportTarget::GitlabCi(args),
        } => export_gitlab(*args),
    }
}

fn parse_params(params: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    super::invalid(anyhow::anyhow!("--param {p:?}: expected NAME=VALUE"))
                })
        })
        .collect()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn run_pipelines(args: PipelineArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    if let Some(stage) = &args.stage {
        return run_stage(&args, stage, globals);
    }
    let cfg = args.config.load(&args.names)?;
    let selected = cfg.select(&args.names);
    if args.list {
        for p in &selected {
            println!("{}: {}", p.name, render_frames(&p.frames()?));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let opts = run_options(&args)?;
    let output = Arc::new(Output::new(OutputMode::detect(args.json)));
    let exec = executor(&args, globals)?;
    let mut reports: Vec<PipelineReport> = Vec::new();
    for p in selected {
        let report = run_pipeline(p, exec.as_ref(), &opts, &output);
        let passed = report.passed();
        reports.push(report);
        if !passed {
            break;
        }
    }
    finish(&args, &reports, &output)
}

/// The dry-run executor, or the real one (then Ctrl-C stops the running stages).
fn executor(args: &PipelineArgs, globals: &Globals) -> anyhow::Result<Box<dyn Executor>> {
    if args.dry_run {
        return Ok(Box::new(DryRunExecutor));
    }
    let process = process_executor(args, globals)?;
    watch_interrupts();
    Ok(Box::new(process))
}

/// The summary and the JUnit report, then the exit code of the run.
fn finish(
    args: &PipelineArgs,
    reports: &[PipelineReport],
    output: &Output,
) -> anyhow::Result<ExitCode> {
    print_summary(reports, output.mode());
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(reports))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Ok(ExitCode::from(130));
    }
    Ok(if reports.iter().all(PipelineReport::passed) {
        ExitCode::SUCCESS
    } else if args.dry_run {
        // Nothing real ran: a failing dry run is the config's fault.
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    })
}

/// `--stage`: runs one stage of one pipeline with its ancestors' outputs from the
/// environment, then writes its own to `--dotenv`.
fn run_stage(args: &PipelineArgs, stage: &str, globals: &Globals) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load(&args.names)?;
    let pipeline = match cfg.select(&args.names).as_slice() {
        [one] if args.names.len() == 1 => *one,
        _ => {
            return Err(super::invalid(anyhow::anyhow!(
                "--stage runs a stage of one pipeline: name exactly one pipeline"
            )))
        }
    };
    let stages: Vec<String> = user_frames(&pipeline.frames()?).concat();
    if !stages.iter().any(|s| s == stage) {
        return Err(super::invalid(PipelineError::UnknownStage {
            pipeline: pipeline.name.clone(),
            stage: stage.to_string(),
            stages,
        }));
    }
    let ancestors: Vec<String> = pipeline
        .full_graph()
        .ancestors(stage)
        .into_iter()
        .filter(|a| a != "setup" && a != stage)
        .collect();
    let earlier =
        handoff::read_ancestors(&pipeline.name, stage, &ancestors, |k| std::env::var(k).ok())
            .map_err(super::invalid)?;
    let mut opts = run_options(args)?;
    opts.push_builds = args.registry.is_some() && !args.dry_run;
    opts.single_stage = true;
    let output = Arc::new(Output::new(OutputMode::detect(args.json)));
    let exec = executor(args, globals)?;
    let (report, namespace) =
        run_single_stage(pipeline, stage, earlier, exec.as_ref(), &opts, &output);
    let code = finish(args, std::slice::from_ref(&report), &output)?;
    if !report.passed() || INTERRUPTED.load(Ordering::SeqCst) {
        return Ok(code);
    }
    if let Some(path) = &args.dotenv {
        let text = handoff::dotenv(&pipeline.name, &pipeline.stage(stage), &namespace);
        if text.len() > handoff::MAX_BYTES {
            eprintln!(
                "warning: {}: {} bytes, more than GitLab accepts in a dotenv report ({})",
                path.display(),
                text.len(),
                handoff::MAX_BYTES
            );
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What the stages need from the command line: paths, params, credentials, setup.
fn run_options(args: &PipelineArgs) -> anyhow::Result<RunOptions> {
    let project_dir = absolute(&args.config.dir);
    let params = parse_params(&args.params)?;
    let mut credentials = BTreeMap::new();
    for name in &args.env_from_host {
        match std::env::var(name) {
            Ok(v) => {
                credentials.insert(name.clone(), v);
            }
            Err(_) => eprintln!("warning: --env-from-host {name}: not set in the environment"),
        }
    }
    let mut env_vars = params.clone();
    env_vars.extend(credentials.clone());
    let log_dir = if args.dry_run {
        None
    } else {
        Some(absolute(&args.log_dir.clone().unwrap_or_else(|| {
            project_dir.join(".pipeline").join("logs")
        })))
    };
    let mut setup = SetupInfo::from_git(&project_dir);
    setup.params = params;
    setup.http_proxy = args.http_proxy.clone();
    setup.log_url = log_dir
        .as_ref()
        .map(|d| format!("file://{}/", d.display()))
        .unwrap_or_default();
    let registry = args
        .registry
        .clone()
        .or_else(|| args.dry_run.then(|| "<registry>".to_string()));
    Ok(RunOptions {
        project_dir,
        log_dir,
        jobs: args.jobs,
        dag: args.dag,
        registry,
        artifacts: args.artifacts.as_deref().map(absolute),
        env_vars,
        credentials,
        setup,
        push_builds: false,
        single_stage: false,
    })
}

/// The executor of real runs: this binary (or `--flense-bin`) as child processes.
fn process_executor(args: &PipelineArgs, globals: &Globals) -> anyhow::Result<ProcessExecutor> {
    // Checked here so that a bad reference fails the pipeline before any stage.
    args.cache.sources().map_err(super::invalid)?;
    args.cache.targets().map_err(super::invalid)?;
    let mut run_options = args.run_options.clone();
    if args.run_timeout > 0 {
        run_options.push(format!("--timeout={}", args.run_timeout));
    }
    // Each run gets a network namespace of its own, so that servers of stages running
    // side by side cannot collide on a port, with outbound access like docker's bridge
    // network (through pasta; loopback only when pasta cannot give it);
    // `--run-option=--network=none` keeps loopback only, `--network=host` shares the
    // host's.
    if !run_options.iter().any(|o| o.starts_with("--network")) {
        run_options.push("--network=private".into());
    }
    let mut build_options = args.cache.as_args();
    if let Some(platforms) = &args.platform {
        flense::image::platform::Platform::parse_list(platforms).map_err(super::invalid)?;
        build_options.push(format!("--platform={platforms}"));
    }
    if args.isolation != flense_runtime::Isolation::Auto {
        let isolation = format!("--isolation={}", args.isolation);
        run_options.push(isolation.clone());
        build_options.push(isolation);
    }
    for (wanted, flag) in [(args.sbom, "--sbom"), (args.provenance, "--provenance")] {
        if wanted {
            build_options.push(flag.into());
        }
    }
    Ok(ProcessExecutor {
        program: match &args.flense_bin {
            Some(p) => p.clone(),
            None => std::env::current_exe().context("cannot find the flense binary")?,
        },
        root: globals.root.clone(),
        run_options,
        build_options,
        pull: args.pull.map(Into::into),
    })
}

/// The closing summary: a JSON event or the table.
fn print_summary(reports: &[PipelineReport], mode: OutputMode) {
    if mode == OutputMode::Json {
        let summary: Vec<serde_json::Value> = reports
            .iter()
            .flat_map(|p| p.stages.iter())
            .map(|s| serde_json::json!({"pipeline": s.pipeline, "stage": s.stage, "result": s.result.label(), "seconds": s.duration.as_secs_f64(), "image": s.image}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"event": "summary", "stages": summary})
        );
    } else {
        print!("\n{}", summary_table(reports));
    }
}

/// Ctrl-C (SIGINT) or SIGTERM: a watcher thread stops new stages and sends SIGTERM to
/// running children, so the stages fail as "interrupted", teardown runs and the reports
/// are still written (exit code 130). On a terminal the children also get the SIGINT.
fn watch_interrupts() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            eprintln!("interrupted: stopping running stages");
            flense::pipeline::exec::interrupt();
        }
    });
}

fn export_argo(args: ArgoArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = args.pipeline.iter().cloned().collect();
    let cfg = args.config.load(&names)?;
    let pipeline = cfg.select(&names).into_iter().next().ok_or_else(|| {
        super::invalid(anyhow::anyhow!(
            "{} defines no pipeline",
            cfg.path.display()
        ))
    })?;
    let mut setup = SetupInfo::from_git(&absolute(&args.config.dir));
    setup.params = parse_params(&args.params)?;
    let registry = args
        .registry
        .clone()
        .unwrap_or_else(|| "localhost".to_string());
    let yaml = flense::pipeline::argo::export(pipeline, &setup, &registry, args.dag)
        .map_err(super::invalid)?;
    write_export(args.output.as_deref(), &yaml)
}

/// Writes an exported file to `output`, or to stdout.
fn write_export(output: Option<&Path>, yaml: &str) -> anyhow::Result<ExitCode> {
    match output {
        Some(p) => {
            std::fs::write(p, yaml).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{yaml}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn export_gitlab(args: GitlabArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load(&args.pipelines)?;
    let pipelines = cfg.select(&args.pipelines);
    if pipelines.is_empty() {
        return Err(super::invalid(anyhow::anyhow!(
            "{} defines no pipeline",
            cfg.path.display()
        )));
    }
    let options = flense::pipeline::gitlab::ExportOptions {
        registry: args.registry.clone(),
        image: args.image.clone(),
        dag: args.dag,
        params: parse_params(&args.params)?.into_iter().collect(),
        config_file: args.config.file.clone(),
        allowed_actions: args.config.allowed_actions.clone(),
        cache_from: args.cache_from.clone(),
        cache_to: args.cache_to.clone(),
    };
    let yaml = flense::pipeline::gitlab::export(&pipelines, &options).map_err(super::invalid)?;
    write_export(args.output.as_deref(), &yaml)
}
