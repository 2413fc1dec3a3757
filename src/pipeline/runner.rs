//! The scheduler: setup, then the user graph frame by frame (each frame's stages as
//! parallel threads that drive child processes), then teardown. A failing stage lets
//! its siblings finish; later frames are skipped; teardown always runs. With `dag`,
//! each stage starts as soon as its own predecessors have passed.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use serde_json::json;
use serde_yaml::Value;

use super::exec::Executor;
use super::graph::{user_frames, Graph};
use super::interp::{Bindings, Namespace, Scope};
use super::model::Pipeline;
use super::output::{Output, StageLog};
use super::report::{PipelineReport, StageReport, StageResult};
use super::steps::{run_stage, RunOptions, Shared, StageCtx};
use crate::error_chain::ErrorChain;

pub use super::exec::INTERRUPTED;

/// A counting semaphore for `--jobs`.
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new(if n == 0 { usize::MAX } else { n }),
            cv: Condvar::new(),
        }
    }
    fn acquire(&self) {
        let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *f == 0 {
            f = self.cv.wait(f).unwrap_or_else(|e| e.into_inner());
        }
        *f -= 1;
    }
    fn release(&self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_one();
    }
}

/// Runs one pipeline and returns its report (the frames must be computable: call
/// [`Pipeline::frames`] first to report cycles as invalid input).
pub fn run_pipeline(
    pipeline: &Pipeline,
    exec: &dyn Executor,
    opts: &RunOptions,
    output: &Arc<Output>,
) -> PipelineReport {
    let frames = pipeline.frames().unwrap_or_default();
    let full = pipeline.full_graph();
    let graph_text = full.to_string();
    let mut bindings = Bindings::default();
    bindings.set_namespace("setup", opts.setup.namespace(&pipeline.name));
    let shared = Shared::default();
    let ctx = StageCtx {
        pipeline,
        opts,
        exec,
        shared: &shared,
    };
    output.event(
        json!({"event": "pipeline-start", "pipeline": pipeline.name, "frames": frames}),
        &format!(
            "pipeline {}: {}",
            pipeline.name,
            super::graph::render_frames(&frames)
        ),
    );
    let user_frames = user_frames(&frames);
    let mut reports: BTreeMap<String, StageReport> = BTreeMap::new();
    let runner = StageRunner {
        ctx: &ctx,
        graph: &full,
        graph_text: &graph_text,
        output,
        slots: Slots::new(opts.jobs),
    };
    if opts.dag {
        runner.run_dag(&user_frames, &mut bindings, &mut reports);
    } else {
        let mut failed = false;
        for frame in &user_frames {
            if failed || INTERRUPTED.load(Ordering::SeqCst) {
                for s in frame {
                    reports.insert(s.clone(), skipped(pipeline, s));
                }
                continue;
            }
            let results = runner.run_frame(frame, &bindings);
            for (name, ns, report) in results {
                failed |= matches!(report.result, StageResult::Failed(_));
                bindings.set_namespace(&name, ns);
                reports.insert(name, report);
            }
        }
    }
    teardown(&ctx, &bindings, output);
    let order: Vec<String> = user_frames.iter().flatten().cloned().collect();
    let stages = order.iter().filter_map(|n| reports.remove(n)).collect();
    PipelineReport {
        name: pipeline.name.clone(),
        stages,
        frames,
        interrupted: INTERRUPTED.load(Ordering::SeqCst),
    }
}

/// Runs only `stage` of `pipeline` (one CI job's share, `flense pipeline --stage`):
/// `earlier` holds the namespaces of its ancestors as the jobs before it left them (see
/// [`super::handoff`]); images those jobs made are fetched when a step uses them.
/// Returns the report and the stage's namespace.
pub fn run_single_stage(
    pipeline: &Pipeline,
    stage: &str,
    earlier: BTreeMap<String, Namespace>,
    exec: &dyn Executor,
    opts: &RunOptions,
    output: &Arc<Output>,
) -> (PipelineReport, Namespace) {
    let frames = pipeline.frames().unwrap_or_default();
    let full = pipeline.full_graph();
    let graph_text = full.to_string();
    let shared = Shared::default();
    for (id, reference) in super::handoff::images_of(&earlier) {
        shared.add_earlier_image(&id, &reference);
    }
    let mut bindings = Bindings::default();
    bindings.set_namespace("setup", opts.setup.namespace(&pipeline.name));
    for (name, ns) in earlier {
        bindings.set_namespace(&name, ns);
    }
    let ctx = StageCtx {
        pipeline,
        opts,
        exec,
        shared: &shared,
    };
    let runner = StageRunner {
        ctx: &ctx,
        graph: &full,
        graph_text: &graph_text,
        output,
        slots: Slots::new(0),
    };
    let (name, ns, report) = runner.run_one(stage, runner.scope(&bindings, stage));
    let mut own = Bindings::default();
    own.set_namespace(&name, ns.clone());
    teardown(&ctx, &own, output);
    let report = PipelineReport {
        name: pipeline.name.clone(),
        stages: vec![report],
        frames,
        interrupted: INTERRUPTED.load(Ordering::SeqCst),
    };
    (report, ns)
}

fn skipped(pipeline: &Pipeline, stage: &str) -> StageReport {
    StageReport {
        pipeline: pipeline.name.clone(),
        stage: stage.to_string(),
        result: StageResult::Skipped,
        duration: Default::default(),
        image: None,
        log_tail: vec![],
        log_path: None,
    }
}

struct StageRunner<'a> {
    ctx: &'a StageCtx<'a>,
    graph: &'a Graph,
    graph_text: &'a str,
    output: &'a Arc<Output>,
    slots: Slots,
}

impl StageRunner<'_> {
    fn scope(&self, bindings: &Bindings, name: &str) -> Scope {
        let ancestors: BTreeMap<String, Namespace> = self
            .graph
            .ancestors(name)
            .into_iter()
            .filter(|a| a != name)
            .map(|a| (a.clone(), bindings.namespace(&a)))
            .collect();
        Scope::new(
            name,
            Namespace::new(),
            ancestors,
            self.graph_text.to_string(),
        )
    }

    /// Runs one stage on the calling thread (after taking a job slot).
    fn run_one(&self, name: &str, scope: Scope) -> (String, Namespace, StageReport) {
        let pipeline = self.ctx.pipeline;
        self.slots.acquire();
        let start = Instant::now();
        self.output.event(
            json!({"event": "stage-start", "pipeline": pipeline.name, "stage": name}),
            &format!("[{name}] started"),
        );
        let log = StageLog::open(
            self.ctx.opts.log_dir.as_deref(),
            &pipeline.name,
            name,
            self.output.clone(),
        );
        let (ns, result, image, tail, path) = match log {
            Err(e) => (
                Namespace::new(),
                Err(format!("cannot open the stage log: {e}")),
                None,
                vec![],
                None,
            ),
            Ok(log) => {
                let stage = pipeline.stage(name);
                let outcome = if INTERRUPTED.load(Ordering::SeqCst) {
                    super::steps::StageOutcome {
                        namespace: Namespace::new(),
                        result: Err("interrupted".into()),
                        image: None,
                    }
                } else {
                    run_stage(self.ctx, &stage, scope, &log)
                };
                let result = if INTERRUPTED.load(Ordering::SeqCst) && outcome.result.is_err() {
                    Err("interrupted".to_string())
                } else {
                    outcome.result.map_err(|e| ErrorChain(&e).to_string())
                };
                (
                    outcome.namespace,
                    result,
                    outcome.image,
                    log.tail(),
                    log.path().map(|p| p.to_path_buf()),
                )
            }
        };
        self.slots.release();
        let duration = start.elapsed();
        let result = match result {
            Ok(()) => StageResult::Passed,
            Err(m) => StageResult::Failed(m),
        };
        let message = match &result {
            StageResult::Failed(m) => m.clone(),
            _ => String::new(),
        };
        self.output.event(
            json!({"event": "stage-end", "pipeline": pipeline.name, "stage": name, "result": result.label(),
                   "message": message, "seconds": duration.as_secs_f64(), "image": image}),
            &format!("[{name}] {} in {:.1}s{}", result.label(), duration.as_secs_f64(), if message.is_empty() { String::new() } else { format!(": {message}") }),
        );
        let report = StageReport {
            pipeline: pipeline.name.clone(),
            stage: name.to_string(),
            result,
            duration,
            image,
            log_tail: tail,
            log_path: path,
        };
        (name.to_string(), ns, report)
    }

    /// Runs the stages of one frame in parallel; every one runs to completion.
    fn run_frame(
        &self,
        frame: &[String],
        bindings: &Bindings,
    ) -> Vec<(String, Namespace, StageReport)> {
        std::thread::scope(|s| {
            let handles: Vec<_> = frame
                .iter()
                .map(|name| {
                    let scope = self.scope(bindings, name);
                    s.spawn(move || self.run_one(name, scope))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("stage threads do not panic"))
                .collect()
        })
    }

    /// `--dag`: each stage starts when all its predecessors passed; after a failure no
    /// new stage starts, running ones finish.
    fn run_dag(
        &self,
        frames: &[Vec<String>],
        bindings: &mut Bindings,
        reports: &mut BTreeMap<String, StageReport>,
    ) {
        let order: Vec<String> = frames.iter().flatten().cloned().collect();
        let preds = |n: &str| -> Vec<String> {
            self.graph
                .in_to(n)
                .into_iter()
                .filter(|p| p != "setup")
                .collect()
        };
        let mut started: Vec<String> = Vec::new();
        let mut failed = false;
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            let mut running = 0usize;
            loop {
                if !failed && !INTERRUPTED.load(Ordering::SeqCst) {
                    for n in &order {
                        let ready = !started.contains(n)
                            && preds(n).iter().all(|p| {
                                matches!(
                                    reports.get(p).map(|r| &r.result),
                                    Some(StageResult::Passed)
                                )
                            });
                        if ready {
                            started.push(n.clone());
                            let scope = self.scope(bindings, n);
                            let tx = tx.clone();
                            let name = n.clone();
                            running += 1;
                            s.spawn(move || {
                                let _ = tx.send(self.run_one(&name, scope));
                            });
                        }
                    }
                }
                if running == 0 {
                    break;
                }
                let (name, ns, report) = rx.recv().expect("a running stage reports back");
                running -= 1;
                failed |= matches!(report.result, StageResult::Failed(_));
                bindings.set_namespace(&name, ns);
                reports.insert(name, report);
            }
        });
        for n in order {
            if !reports.contains_key(&n) {
                reports.insert(n.clone(), skipped(self.ctx.pipeline, &n));
            }
        }
    }
}

fn teardown(ctx: &StageCtx, bindings: &Bindings, output: &Arc<Output>) {
    let Ok(log) = StageLog::open(
        ctx.opts.log_dir.as_deref(),
        &ctx.pipeline.name,
        "teardown",
        output.clone(),
    ) else {
        return;
    };
    let containers: Vec<String> = bindings
        .get_all("container")
        .values()
        .map(super::interp::stringify)
        .collect();
    ctx.exec.remove_containers(&containers, &log);
    for (stage, image) in bindings.get_all("publishedImage") {
        let tags = bindings
            .namespace(&stage)
            .get("imageTags")
            .cloned()
            .unwrap_or(Value::Null);
        log.line(&format!(
            "published by {stage}: {} (tags: {})",
            super::interp::stringify(&image),
            super::interp::stringify(&tags)
        ));
    }
    for (stage, release) in bindings.get_all("releaseName") {
        log.line(&format!(
            "release {} of {stage} was not deployed (not run outside Wikimedia CI)",
            super::interp::stringify(&release)
        ));
    }
}
