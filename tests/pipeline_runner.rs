//! The pipeline runner with a scripted step executor (the `Executor` seam): frame
//! barriers, parallelism, `--jobs`, `--dag`, failure semantics, stage outputs flowing
//! into later stages, publish rules, logs, summary and JUnit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use flense::pipeline::exec::{BuildRequest, CopyRequest, Executor, RunOutcome, RunRequest};
use flense::pipeline::model::{load_str, LoadOptions};
use flense::pipeline::output::{Output, OutputMode, StageLog};
use flense::pipeline::report::{junit, summary_table, PipelineReport, StageResult};
use flense::pipeline::runner::run_pipeline;
use flense::pipeline::setup::SetupInfo;
use flense::pipeline::steps::RunOptions;
use flense::pipeline::StepError;

/// Runs are scripted by their arguments: `print:TEXT`, `exit:N`, `wait-for:STAGE`
/// (until that stage's run started), `barrier:N` (until N runs are in flight).
#[derive(Default)]
struct Scripted {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    events: Vec<String>,
    running: usize,
    max_running: usize,
    started: Vec<String>,
    builds: Vec<String>,
    runs: BTreeMap<String, RunRequest>,
    pushes: Vec<String>,
}

const PATIENCE: Duration = Duration::from_secs(30);

impl Scripted {
    fn wait_until(&self, mut ok: impl FnMut(&State) -> bool) -> bool {
        let guard = self.state.lock().unwrap();
        let (_g, res) = self
            .cv
            .wait_timeout_while(guard, PATIENCE, |s| !ok(s))
            .unwrap();
        !res.timed_out()
    }
}

impl Executor for Scripted {
    fn build(&self, req: &BuildRequest, log: &StageLog) -> Result<String, StepError> {
        let mut s = self.state.lock().unwrap();
        s.builds.push(req.variant.clone());
        s.events.push(format!("build {}", log.stage()));
        if req.variant == "broken" {
            return Err("failed to build image: scripted failure".into());
        }
        Ok(format!("{:0>64}", s.builds.len()))
    }

    fn run(&self, req: &RunRequest, log: &StageLog) -> Result<RunOutcome, StepError> {
        let stage = log.stage().to_string();
        {
            let mut s = self.state.lock().unwrap();
            s.running += 1;
            s.max_running = s.max_running.max(s.running);
            s.started.push(stage.clone());
            s.events.push(format!("start {stage}"));
            s.runs.insert(stage.clone(), req.clone());
            self.cv.notify_all();
        }
        let mut code = 0;
        let mut stdout = Vec::new();
        for arg in &req.arguments {
            let (cmd, rest) = arg.split_once(':').unwrap_or((arg, ""));
            match cmd {
                "print" => {
                    log.line(rest);
                    stdout.push(rest.to_string());
                }
                "exit" => code = rest.parse().unwrap(),
                "wait-for" if !self.wait_until(|s| s.started.iter().any(|x| x == rest)) => {
                    code = 97
                }
                "barrier"
                    if !self.wait_until(|s| s.max_running >= rest.parse::<usize>().unwrap()) =>
                {
                    code = 98
                }
                _ => {}
            }
        }
        let mut s = self.state.lock().unwrap();
        s.running -= 1;
        s.events.push(format!("end {stage}"));
        self.cv.notify_all();
        let keep = stdout.len().saturating_sub(req.tail);
        Ok(RunOutcome {
            exit_code: code,
            stdout_tail: stdout[keep..].to_vec(),
        })
    }

    fn copy(&self, req: &CopyRequest, _log: &StageLog) -> Result<(), StepError> {
        std::fs::create_dir_all(req.destination.parent().unwrap()).unwrap();
        std::fs::write(&req.destination, format!("copied {}", req.source)).map_err(|source| {
            StepError::Io {
                path: req.destination.clone(),
                source,
            }
        })
    }

    fn push(&self, image: &str, destination: &str, _log: &StageLog) -> Result<(), StepError> {
        self.state
            .lock()
            .unwrap()
            .pushes
            .push(format!("{image} -> {destination}"));
        Ok(())
    }

    fn remove_containers(&self, containers: &[String], log: &StageLog) {
        log.line(&format!("removed {}", containers.len()));
    }
}

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(config: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".pipeline/p")).unwrap();
        std::fs::write(dir.path().join(".pipeline/config.yaml"), config).unwrap();
        std::fs::write(dir.path().join(".pipeline/p/blubber.yaml"), "version: v4\n").unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn opts(&self) -> RunOptions {
        RunOptions {
            project_dir: self.path().to_path_buf(),
            log_dir: Some(self.path().join("logs")),
            setup: SetupInfo {
                project: "mediawiki/services/mathoid".into(),
                project_short_name: "mathoid".into(),
                timestamp: "0000-00-00-000000".into(),
                ..SetupInfo::default()
            },
            registry: Some("registry.example:5000/wikimedia".into()),
            ..RunOptions::default()
        }
    }

    fn run(&self, exec: &Scripted, opts: &RunOptions) -> PipelineReport {
        let text = std::fs::read_to_string(self.path().join(".pipeline/config.yaml")).unwrap();
        let cfg = load_str(
            &self.path().join(".pipeline/config.yaml"),
            &text,
            &[],
            &LoadOptions::default(),
        )
        .unwrap();
        run_pipeline(
            &cfg.pipelines[0],
            exec,
            opts,
            &Arc::new(Output::new(OutputMode::Quiet)),
        )
    }

    fn log(&self, stage: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("logs/p.{stage}.log"))).unwrap_or_default()
    }
}

fn results(report: &PipelineReport) -> Vec<(String, String)> {
    report
        .stages
        .iter()
        .map(|s| (s.stage.clone(), s.result.label().to_string()))
        .collect()
}

fn stage_run(name: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "{{name: {name}, build: v, run: {{arguments: [{}]}}}}",
        args.join(", ")
    )
}

fn index(events: &[String], e: &str) -> usize {
    events
        .iter()
        .position(|x| x == e)
        .unwrap_or_else(|| panic!("{e} not in {events:?}"))
}

#[test]
fn frames_are_barriers_and_their_stages_run_in_parallel() {
    let stages = [
        stage_run("a", &["barrier:2"]),
        stage_run("b", &["print:b"]),
        stage_run("c", &["barrier:2"]),
        stage_run("d", &["print:d"]),
    ];
    let p = Project::new(&format!(
        "pipelines:\n  p:\n    stages: [{}]\n    execution: [[a, b], [c, d]]\n",
        stages.join(", ")
    ));
    let exec = Scripted::default();
    let report = p.run(&exec, &p.opts());
    assert!(report.passed(), "{:?}", results(&report));
    let s = exec.state.lock().unwrap();
    assert_eq!(s.max_running, 2);
    for first in ["end a", "end c"] {
        for second in ["start b", "start d"] {
            assert!(
                index(&s.events, first) < index(&s.events, second),
                "{:?}",
                s.events
            );
        }
    }
}

#[test]
fn jobs_caps_parallel_stages() {
    let stages = [
        stage_run("a", &["print:a"]),
        stage_run("b", &["print:b"]),
        stage_run("c", &["print:c"]),
    ];
    let p = Project::new(&format!(
        "pipelines:\n  p:\n    stages: [{}]\n    execution: [[a], [b], [c]]\n",
        stages.join(", ")
    ));
    let exec = Scripted::default();
    let report = p.run(
        &exec,
        &RunOptions {
            jobs: 1,
            ..p.opts()
        },
    );
    assert!(report.passed());
    assert_eq!(exec.state.lock().unwrap().max_running, 1);
}

#[test]
fn a_failure_lets_siblings_finish_skips_later_frames_and_runs_teardown() {
    let stages = [
        stage_run("a", &["print:about to fail", "exit:3"]),
        stage_run("x", &["wait-for:a", "print:sibling done"]),
        stage_run("b", &["print:b"]),
        stage_run("c", &["print:c"]),
    ];
    let p = Project::new(&format!(
        "pipelines:\n  p:\n    stages: [{}]\n    execution: [[a, b, c], [x, b]]\n",
        stages.join(", ")
    ));
    let exec = Scripted::default();
    let report = p.run(&exec, &p.opts());
    assert_eq!(
        results(&report),
        vec![
            ("a".into(), "FAILED".into()),
            ("x".into(), "passed".into()),
            ("b".into(), "skipped".into()),
            ("c".into(), "skipped".into())
        ]
    );
    assert!(!report.passed());
    assert!(!exec
        .state
        .lock()
        .unwrap()
        .started
        .contains(&"b".to_string()));
    assert!(
        p.log("teardown").contains("removed 2"),
        "{}",
        p.log("teardown")
    );
    assert!(p.log("a").contains("about to fail"));
    let xml = junit(std::slice::from_ref(&report));
    assert!(
        xml.contains("<testsuite name=\"p\" tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"2\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"step run: the container exited with code 3\">"),
        "{xml}"
    );
    assert!(xml.contains("about to fail"), "{xml}");
    let table = summary_table(&[report]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("p         a      FAILED")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("p         b      skipped")),
        "{table}"
    );
}

#[test]
fn dag_mode_starts_a_stage_when_its_own_predecessors_are_done() {
    // In frame mode b would wait for c, and c waits for b: only --dag lets this pass.
    let stages = [
        stage_run("a", &["print:a"]),
        stage_run("b", &["print:b"]),
        stage_run("c", &["wait-for:b"]),
        stage_run("d", &["print:d"]),
    ];
    let p = Project::new(&format!(
        "pipelines:\n  p:\n    stages: [{}]\n    execution: [[a, b], [c, d]]\n",
        stages.join(", ")
    ));
    let exec = Scripted::default();
    let report = p.run(
        &exec,
        &RunOptions {
            dag: true,
            ..p.opts()
        },
    );
    assert!(report.passed(), "{:?}", results(&report));
    let s = exec.state.lock().unwrap();
    assert!(
        index(&s.events, "start b") < index(&s.events, "end c"),
        "{:?}",
        s.events
    );
}

#[test]
fn outputs_comprehensions_and_exports_flow_to_later_stages() {
    let config = r#"pipelines:
  p:
    stages:
      - name: sequence
        build: v
        run: {arguments: ['print:1', 'print:2', 'print:3', 'print:4', 'print:5'], tail: 5}
        exports: {first: '${.stage}-${setup.timestamp}'}
      - name: square
        build: v
        run:
          arguments: {$each: number, $in: '${sequence.output}', $yield: '${.number}*${.number}'}
          env: {BRANCH: '${ZUUL_BRANCH}', FROM: '${sequence.first}', LITERAL: '`x` \ $1'}
      - name: cat
        build: v
        run: {arguments: ['print:hey', 'print:you'], tail: 1}
      - name: test-it
        build: v
        run: {arguments: ['--', '${cat.output}', '${cat.output|none}${.stage}']}
"#;
    let p = Project::new(config);
    let exec = Scripted::default();
    let mut opts = p.opts();
    opts.env_vars.insert("ZUUL_BRANCH".into(), "main".into());
    let report = p.run(&exec, &opts);
    assert!(report.passed(), "{:?}", results(&report));
    let s = exec.state.lock().unwrap();
    assert_eq!(
        s.runs["square"].arguments,
        vec!["1*1", "2*2", "3*3", "4*4", "5*5"]
    );
    assert_eq!(
        s.runs["square"].env,
        vec![
            ("BRANCH".into(), "main".into()),
            ("FROM".into(), "sequence-0000-00-00-000000".into()),
            ("LITERAL".into(), "`x` \\ $1".into())
        ]
    );
    assert_eq!(
        s.runs["test-it"].arguments,
        vec!["--", "you\n", "you\ntest-it"]
    );
    // All four build the same variant from the same inputs: one build.
    assert_eq!(s.builds.len(), 1);
}

#[test]
fn publish_names_tags_and_exports() {
    let config = r#"pipelines:
  p:
    stages:
      - name: candidate
        build: production
        publish: {image: {tags: ['Release/1.0', '${setup.tag}']}}
        exports: {ref: '${.publishedImage}', tags: '${.imageTags}'}
      - name: other
        build: production
        publish: {image: {name: some-other-repo-name}}
"#;
    let p = Project::new(config);
    let exec = Scripted::default();
    let report = p.run(&exec, &p.opts());
    let s = exec.state.lock().unwrap();
    let image = "localhost/plib-image-";
    assert_eq!(s.pushes.len(), 2, "{:?}", s.pushes);
    assert!(s.pushes[0].starts_with(image));
    assert!(s.pushes[0].ends_with(" -> registry.example:5000/wikimedia/mediawiki-services-mathoid:0000-00-00-000000-candidate"));
    assert!(s.pushes[1]
        .ends_with(" -> registry.example:5000/wikimedia/mediawiki-services-mathoid:release-1.0"));
    assert_eq!(report.stages[0].image.as_deref(), Some("registry.example:5000/wikimedia/mediawiki-services-mathoid:0000-00-00-000000-candidate"));
    match &report.stages[1].result {
        StageResult::Failed(m) => assert!(
            m.contains("the published image name (`some-other-repo-name`) must either match or be prefixed by the full or short project name (`mediawiki-services-mathoid` or `mathoid`)"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        p.log("candidate")
            .contains("tags: [0000-00-00-000000-candidate, release-1.0]"),
        "{}",
        p.log("candidate")
    );
}

fn failure(report: &PipelineReport, stage: &str) -> String {
    match &report
        .stages
        .iter()
        .find(|s| s.stage == stage)
        .unwrap()
        .result
    {
        StageResult::Failed(m) => m.clone(),
        other => panic!("{stage}: {other:?}"),
    }
}

#[test]
fn step_errors_name_the_step_and_use_upstream_texts() {
    let config = r#"pipelines:
  p:
    stages:
      - {name: rebind, build: v, exports: {imageID: x}}
      - {name: creds, build: v, run: {credentials: [{id: SONAR_API_KEY, name: SONAR_API_KEY}]}}
      - {name: nofile, blubberfile: missing.yaml, build: v}
      - {name: sibling, exports: {x: '${creds.container}'}}
      - {name: broken, build: broken}
    execution: [[rebind], [creds], [nofile], [creds, sibling], [broken]]
"#;
    let p = Project::new(config);
    let exec = Scripted::default();
    let report = p.run(&exec, &p.opts());
    assert_eq!(
        failure(&report, "rebind"),
        "step exports: 'imageID' is already bound in 'rebind' (bindings are immutable)"
    );
    assert!(failure(&report, "creds")
        .starts_with("step run: Invalid Credential: 'SONAR_API_KEY'. Allowed credentials: []"));
    assert!(failure(&report, "nofile")
        .starts_with("step build: failed to build image: no Blubber config found at "));
    assert!(failure(&report, "nofile").ends_with(".pipeline/missing.yaml"));
    assert_eq!(
        failure(&report, "broken"),
        "step build: failed to build image: scripted failure"
    );
}

#[test]
fn visibility_follows_the_graph() {
    let config = r#"pipelines:
  p:
    stages:
      - {name: a, exports: {v: one}}
      - {name: b, exports: {w: '${a.v}'}}
    execution: [[a], [b]]
"#;
    let p = Project::new(config);
    let report = p.run(&Scripted::default(), &p.opts());
    let m = failure(&report, "b");
    assert!(m.starts_with("step exports: cannot access 'a.*' values since 'b' does not follow it in the graph 'digraph {"), "{m}");
}

#[test]
fn unknown_names_run_empty_and_undeclared_stages_never_run() {
    let config = "pipelines:\n  p:\n    stages: [{name: a, exports: {v: '${.stage}'}}, {name: never}]\n    execution: [[a, ghost]]\n";
    let p = Project::new(config);
    let exec = Scripted::default();
    let report = p.run(&exec, &p.opts());
    assert_eq!(
        results(&report),
        vec![
            ("a".into(), "passed".into()),
            ("ghost".into(), "passed".into())
        ]
    );
    assert!(exec.state.lock().unwrap().builds.is_empty());
    assert!(
        p.log("ghost")
            .contains("stage ghost completed. exported: [stage: ghost]"),
        "{}",
        p.log("ghost")
    );
}

#[test]
fn wmf_only_steps_are_reported_and_bind_their_exports() {
    let config = r#"pipelines:
  p:
    notify: {email: {to: [team@example.org]}}
    stages:
      - name: rehearse
        build: v
        publish: {image: true}
        deploy: {chart: {name: '${setup.projectShortName}'}, test: true}
        promote: true
        trigger: {name: downstream, parameters: {X: '${.stage}'}}
        exports: {release: '${.releaseName}'}
      - {name: fails, build: v, run: {arguments: ['exit:1']}, notify: {email: {to: me@example.org}}}
"#;
    let p = Project::new(config);
    let report = p.run(&Scripted::default(), &p.opts());
    let log = p.log("rehearse");
    assert!(
        log.contains("step: deploy, config: {\"chart\":{\"name\":\"mathoid\",\"version\":\"\"}"),
        "{log}"
    );
    assert!(log.contains("(not run outside Wikimedia CI)"));
    assert!(
        log.contains(
            "step: trigger, config: {\"name\":\"downstream\",\"parameters\":{\"X\":\"rehearse\"}"
        ),
        "{log}"
    );
    assert!(matches!(report.stages[0].result, StageResult::Passed));
    // The stage's own notify wins over the pipeline's; a pipeline-level one alone applies.
    assert!(!p.log("rehearse").contains("notify"));
    let fails = p.log("fails");
    assert!(
        fails.contains(
            "notify: email to me@example.org subject \"[Pipeline] mathoid p/fails failed\""
        ),
        "{fails}"
    );
}

#[test]
fn copy_writes_into_the_workspace_and_archives() {
    let config = r#"pipelines:
  p:
    stages:
      - name: make
        build: v
        run: true
        copy: [tmp/foo/greeting, {source: /tmp/foo/, destination: /../out/dir/../file, archive: true}]
      - {name: check, build: v, run: true}
"#;
    let p = Project::new(config);
    let exec = Scripted::default();
    let artifacts: PathBuf = p.path().join("artifacts");
    let report = p.run(
        &exec,
        &RunOptions {
            artifacts: Some(artifacts.clone()),
            ..p.opts()
        },
    );
    assert!(report.passed(), "{:?} {}", results(&report), p.log("make"));
    assert_eq!(
        std::fs::read_to_string(p.path().join("tmp/foo/greeting")).unwrap(),
        "copied tmp/foo/greeting"
    );
    assert_eq!(
        std::fs::read_to_string(p.path().join("out/file")).unwrap(),
        "copied /tmp/foo/"
    );
    assert!(artifacts.join("out/file").is_file());
    // The copy changed the workspace, so the second build is not shared with the first.
    assert_eq!(exec.state.lock().unwrap().builds.len(), 2);
}

#[test]
fn publish_files_go_to_the_artifacts_directory() {
    let config = "pipelines:\n  p:\n    stages:\n      - {name: docs, publish: {files: {paths: [site/index.html, site]}}, exports: {urls: '${.publishedFiles}'}}\n      - {name: missing, publish: {files: {paths: [nope.txt]}}}\n    execution: [[docs], [missing]]\n";
    let p = Project::new(config);
    std::fs::create_dir_all(p.path().join("site")).unwrap();
    std::fs::write(p.path().join("site/index.html"), "<h1>docs</h1>").unwrap();
    let artifacts = p.path().join("artifacts");
    let report = p.run(
        &Scripted::default(),
        &RunOptions {
            artifacts: Some(artifacts.clone()),
            ..p.opts()
        },
    );
    assert_eq!(
        std::fs::read_to_string(artifacts.join("site/index.html")).unwrap(),
        "<h1>docs</h1>"
    );
    let tgz = std::fs::File::open(artifacts.join("site.tar.gz")).unwrap();
    let names: Vec<String> = tar::Archive::new(flate2::read::GzDecoder::new(tgz))
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("index.html")), "{names:?}");
    assert!(
        p.log("docs").contains(&format!(
            "urls: file://{}",
            artifacts.join("site/index.html").display()
        )),
        "{}",
        p.log("docs")
    );
    assert!(
        failure(&report, "missing").contains("publish.files: ")
            && failure(&report, "missing").contains("nope.txt does not exist")
    );
}

#[test]
fn odd_stage_names_get_safe_log_files() {
    let p = Project::new("pipelines:\n  p:\n    stages: [{name: 'a/b c', exports: {x: y}}]\n");
    let report = p.run(&Scripted::default(), &p.opts());
    assert!(report.passed(), "{:?}", results(&report));
    assert!(p.path().join("logs/p.a_b_c.log").is_file());
}
