//! `flense pipeline` through the CLI: --list frames, validation errors and exit codes,
//! --dry-run interpolation results and errors, real runs of stages that need no image,
//! logs, summary, JUnit and JSON events.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cli::{flense, ok_stdout, output};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/pipeline-examples")
        .join(rel)
}

fn systemtest() -> PathBuf {
    fixture("pipelinelib-repo/systemtest-repo1")
}

/// A temp project holding `config` as .pipeline/config.yaml and an (empty) Blubber
/// file at every default location.
fn project(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pl = dir.path().join(".pipeline");
    std::fs::create_dir_all(&pl).unwrap();
    std::fs::write(pl.join("config.yaml"), config).unwrap();
    std::fs::write(pl.join("blubber.yaml"), "version: v4\n").unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(config).unwrap_or(serde_yaml::Value::Null);
    for name in doc["pipelines"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str())
    {
        std::fs::create_dir_all(pl.join(name)).unwrap();
        std::fs::write(pl.join(name).join("blubber.yaml"), "version: v4\n").unwrap();
    }
    dir
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=T", "-c", "user.email=t@example.org"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn pipeline(dir: &Path) -> Command {
    let mut cmd = flense(&dir.join(".store"));
    cmd.arg("pipeline").arg("-C").arg(dir).env("NO_COLOR", "1");
    cmd
}

/// A hostile input (issue #16): 200,000 nested flow lists kept libyaml busy for many minutes.
#[test]
fn deeply_nested_yaml_is_invalid_input_at_once() {
    let dir = project("pipelines: {}\n");
    let config = format!("pipelines:\n  x: {}\n", "[".repeat(200_000));
    std::fs::write(dir.path().join(".pipeline/config.yaml"), config).unwrap();
    let out = assert_cmd::Command::from_std(pipeline(dir.path()))
        .arg("--list")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            ".pipeline/config.yaml: invalid YAML: recursion limit exceeded at line 2 column"
        ),
        "{err}"
    );
}

#[test]
fn list_prints_the_systemtest_frames() {
    let out = ok_stdout(pipeline(&systemtest()).arg("--list"));
    let expected = "\
service1: [setup] [unit, lint] [candidate] [teardown]
service2: [setup] [test] [teardown]
test-build-options: [setup] [test-context-and-excludes] [teardown]
test-checkout-binding: [setup] [test] [teardown]
test-command-output: [setup] [cat] [test-it] [teardown]
test-list-comprehensions: [setup] [sequence] [square] [teardown]
test-copy: [setup] [make-a-file] [check-file-contents] [teardown]
test-copy-archive: [setup] [make-a-file] [teardown]
test-copy-archive-directory: [setup] [make-a-file] [teardown]
test-T287507: [setup] [stage1, stage2, stage3, stage4] [teardown]
";
    assert_eq!(out, expected);
}

#[test]
fn list_prints_the_spec_frame_table() {
    let rows = [
        ("", "[setup] [a] [b] [c] [teardown]"),
        (
            "execution: [[test],[lint]]",
            "[setup] [test, lint] [teardown]",
        ),
        (
            "execution: [[unit, candidate],[lint, candidate]]",
            "[setup] [unit, lint] [candidate] [teardown]",
        ),
        ("execution: [[a,b],[c]]", "[setup] [a, c] [b] [teardown]"),
        (
            "execution: [[a,b],[c,d]]",
            "[setup] [a, c] [b, d] [teardown]",
        ),
        (
            "execution: [[a,b,c],[x,c]]",
            "[setup] [a, x] [b] [c] [teardown]",
        ),
        (
            "execution: [[a,b,c,d,e,f],[x,d,y,f]]",
            "[setup] [a, x] [b] [c] [d] [e, y] [f] [teardown]",
        ),
    ];
    for (execution, frames) in rows {
        let p = project(&format!("pipelines:\n  p:\n    stages: [{{name: a}}, {{name: b}}, {{name: c}}]\n    {execution}\n"));
        assert_eq!(
            ok_stdout(pipeline(p.path()).arg("--list")),
            format!("p: {frames}\n"),
            "{execution}"
        );
    }
}

#[test]
fn invalid_configs_exit_2_with_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture("pipelinelib-repo/doc-examples/pipeline-class-docstring.config.yaml");
    let out = output(
        flense(tmp.path())
            .args(["pipeline", "--list", "-f"])
            .arg(&f),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema validation failed"), "{err}");
    assert!(err.contains("pipeline-class-docstring.config.yaml:30:9: pipelines.serviceOne.stages[0].run: must be one of: a boolean, a map"), "{err}");
    assert!(
        err.contains("pipelines.serviceTwo: missing required key 'stages'"),
        "{err}"
    );

    let cycle = project(
        "pipelines:\n  p:\n    stages: [{name: a}, {name: b}]\n    execution: [[a, b], [b, a]]\n",
    );
    let out = output(pipeline(cycle.path()).arg("--list"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "pipeline 'p': cycle detected in graph (digraph { a -> b; b -> a; setup -> teardown })"
    ));

    let reserved = project("pipelines:\n  p:\n    stages: [{name: setup}]\n");
    let out = output(pipeline(reserved.path()).arg("--dry-run"));
    assert_eq!(out.status.code(), Some(2));
    // A flow-style stage list: the position is the nearest block-style ancestor's.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Pipeline configuration validation failed:\n - ")
            && err.contains("config.yaml:3:5: setup is a reserved stage name"),
        "{err}"
    );

    let out = output(pipeline(&systemtest()).args(["--list", "nope"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Pipeline 'nope' is not defined in project's '"));

    let missing = output(pipeline(tmp.path()).arg("--list"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains(".pipeline/config.yaml: No such file"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    assert_eq!(
        String::from_utf8_lossy(&missing.stderr)
            .matches("No such file")
            .count(),
        1
    );

    let latin1 = project("pipelines: {}\n");
    std::fs::write(
        latin1.path().join(".pipeline/config.yaml"),
        b"pipelines:\n  caf\xe9: {}\n",
    )
    .unwrap();
    let out = output(pipeline(latin1.path()).arg("--list"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        // Line 2, column 6: the first invalid byte, after "  caf".
        err.contains(".pipeline/config.yaml:2:6: not UTF-8 text: invalid utf-8"),
        "{err}"
    );
    assert_eq!(err.matches("invalid utf-8").count(), 1, "{err}");

    let yaml = output(
        flense(tmp.path())
            .args(["pipeline", "--list", "-f"])
            .arg(fixture(
                "realworld/liftwing-inference-services.INVALID-YAML.config.yaml",
            )),
    );
    assert_eq!(yaml.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&yaml.stderr).contains(
        "invalid YAML: mapping values are not allowed in this context at line 15 column 17"
    ));

    let strict = output(
        flense(tmp.path())
            .args(["pipeline", "--list", "--strict", "-f"])
            .arg(fixture("realworld/mediawiki-services-citoid.config.yaml")),
    );
    assert_eq!(strict.status.code(), Some(2));
    let relaxed = output(
        flense(tmp.path())
            .args(["pipeline", "--list", "-f"])
            .arg(fixture("realworld/mediawiki-services-citoid.config.yaml")),
    );
    assert_eq!(relaxed.status.code(), Some(0));
}

/// The one rule error `flense pipeline --list` reports for `config` (exit 2), after the
/// path of the config file.
fn rule_error(config: &str, extra: &[&str]) -> String {
    let dir = project(config);
    let out = output(pipeline(dir.path()).arg("--list").args(extra));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    let (_, rest) = err
        .split_once("Pipeline configuration validation failed:\n - ")
        .unwrap_or_else(|| panic!("{err}"));
    let file = dir.path().join(".pipeline/config.yaml");
    let line = rest.lines().next().unwrap();
    line.strip_prefix(&format!("{}:", file.display()))
        .unwrap_or_else(|| panic!("{err}"))
        .to_string()
}

#[test]
fn a_reserved_stage_name_is_reported_at_the_name() {
    let config = "pipelines:\n  p:\n    stages:\n      - name: build\n      - name: setup\n";
    assert_eq!(
        rule_error(config, &[]),
        "5:9: setup is a reserved stage name"
    );
}

#[test]
fn an_action_that_is_not_allowed_is_reported_at_its_key_or_stage() {
    let config = "pipelines:\n  p:\n    stages:\n      - name: foo\n        publish:\n          image: true\n";
    assert_eq!(
        rule_error(config, &["--allowed-actions", "build,run"]),
        "5:9: stage `foo` contains an action (`publish`) that is not allowed by this pipeline"
    );
    // `build` is filled in by default, so the stage has no such key: the stage is meant.
    let config = "pipelines:\n  p:\n    stages:\n      - name: foo\n";
    assert_eq!(
        rule_error(config, &["--allowed-actions", "run"]),
        "4:9: stage `foo` contains an action (`build`) that is not allowed by this pipeline"
    );
}

#[test]
fn dry_run_surfaces_runtime_interpolation_errors() {
    let exports = project(
        &std::fs::read_to_string(fixture(
            "pipelinelib-repo/doc-examples/pipelinestage-docstring-exports.config.yaml",
        ))
        .unwrap(),
    );
    let out = output(pipeline(exports.path()).arg("--dry-run"));
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[candidate] error: step exports: no value bound for 'candidate.imageTag'"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("exports-demo")
            && l.contains("published")
            && l.contains("skipped")),
        "{text}"
    );

    let termbox = project(
        &std::fs::read_to_string(fixture("realworld/wikibase-termbox.config.yaml")).unwrap(),
    );
    let out = output(pipeline(termbox.path()).args(["--dry-run", "publish"]));
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cannot access 'candidate.*' values since 'production' does not follow it in the graph 'digraph { setup -> production; production -> teardown }'"),
        "{text}"
    );
}

#[test]
fn dry_run_resolves_steps_of_real_configs() {
    let toolhub = project(
        &std::fs::read_to_string(fixture("realworld/wikimedia-toolhub.config.yaml")).unwrap(),
    );
    let out = ok_stdout(pipeline(toolhub.path()).args(["--dry-run", "test"]));
    assert!(out.contains("pipeline test: [setup] [lint-python] [test-python] [lint-nodejs] [test-nodejs] [teardown]"), "{out}");
    let mp = project(
        &std::fs::read_to_string(fixture(
            "realworld/mediawiki-libs-metrics-platform.config.yaml",
        ))
        .unwrap(),
    );
    let out = ok_stdout(pipeline(mp.path()).args(["--dry-run", "test-js"]));
    assert!(out.contains("pipeline test-js: [setup, teardown]"), "{out}");
    // wmf-publish predates the project-prefix rule for image names: it resolves every
    // step (inline blubberfiles, ${setup.httpProxy}, $merge/$each over outputs) and then
    // fails in publish, as current PipelineLib would.
    let wmf = project(
        &std::fs::read_to_string(fixture(
            "realworld/operations-mediawiki-config.wmf-publish.config.yaml",
        ))
        .unwrap(),
    );
    git(wmf.path(), &["init", "-q"]);
    git(
        wmf.path(),
        &[
            "remote",
            "add",
            "origin",
            "https://gerrit.wikimedia.org/r/operations/mediawiki-config",
        ],
    );
    let out = output(pipeline(wmf.path()).args([
        "--dry-run",
        "--http-proxy",
        "http://proxy.example:8080",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    for stage in [
        "wikiversions",
        "fetch-private",
        "fetch-patches",
        "prepare-mw-versions",
        "apply-security-patches",
        "setup-l10n",
    ] {
        assert!(
            text.contains(&format!("[{stage}] passed")),
            "{stage}: {text}"
        );
    }
    assert!(text.contains("[publish] FAILED in 0.0s: step publish: the published image name (`mediawiki-multiversion`) must either match or be prefixed by the full or short project name (`operations-mediawiki-config` or `mediawiki-config`)"), "{text}");
    assert!(text.contains("http://proxy.example:8080"), "{text}");
}

#[test]
fn stages_without_images_run_for_real_with_logs_summary_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".pipeline")).unwrap();
    std::fs::copy(
        systemtest().join(".pipeline/config.yaml"),
        repo.join(".pipeline/config.yaml"),
    )
    .unwrap();
    std::fs::create_dir_all(repo.join("src/service2")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            "https://gerrit.example.org/r/integration/pipelinelib/repo1",
        ],
    );
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let junit = dir.path().join("junit.xml");
    let out = ok_stdout(
        pipeline(&repo)
            .args(["service2", "test-checkout-binding", "--junit"])
            .arg(&junit),
    );
    assert!(out.contains("[test] step: trigger, config: {\"name\":\"totally-triggered\",\"parameters\":{\"TRIGGER\":\"spiders-from-"), "{out}");
    assert!(out.contains("(not run outside Wikimedia CI)"));
    assert!(out.contains(&format!("commit: {head}")), "{out}");
    assert!(out.contains("branch: main"), "{out}");
    assert!(
        out.contains("remote: https://gerrit.example.org/r/integration/pipelinelib/repo1"),
        "{out}"
    );
    assert!(
        out.contains("PIPELINE               STAGE  RESULT  DURATION  IMAGE"),
        "{out}"
    );
    let log = std::fs::read_to_string(repo.join(".pipeline/logs/test-checkout-binding.test.log"))
        .unwrap();
    assert!(log.contains(&format!("commit: {head}")), "{log}");
    assert!(repo.join(".pipeline/logs/service2.test.log").is_file());
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"service2\" tests=\"1\" failures=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase classname=\"test-checkout-binding\" name=\"test\""),
        "{xml}"
    );
}

#[test]
fn params_and_json_events() {
    let p = project("pipelines:\n  p:\n    stages:\n      - {name: a, exports: {x: '${setup.params.GREETING}-${setup.pipeline}'}}\n");
    let out = ok_stdout(pipeline(p.path()).args(["--json", "--param", "GREETING=hi"]));
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "log" && e["line"].as_str().unwrap().contains("x: hi-p")),
        "{out}"
    );
    assert!(events
        .iter()
        .any(|e| e["event"] == "stage-end" && e["stage"] == "a" && e["result"] == "passed"));
    assert_eq!(events.last().unwrap()["event"], "summary");
    let bad = output(pipeline(p.path()).args(["--param", "novalue"]));
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_failing_real_stage_exits_1_and_warnings_go_to_stderr() {
    let p = project("pipelines:\n  p:\n    stages: [{name: a, blubberfile: nope.yaml, build: x}, {name: b}, {name: unused}]\n    execution: [[a, b]]\n");
    let junit = p.path().join("j.xml");
    let out = output(pipeline(p.path()).arg("--junit").arg(&junit));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "warning: pipeline `p`: stage `unused` is not in `execution` and will not run"
        ),
        "{err}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(
            "<failure message=\"step build: failed to build image: no Blubber config found at "
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<skipped message=\"an earlier stage failed\"/>"),
        "{xml}"
    );
}

#[test]
fn runs_as_an_unprivileged_user() {
    let p = project("pipelines:\n  p:\n    stages:\n      - {name: a, exports: {who: '${setup.params.X}'}}\n      - {name: b, exports: {got: '${a.who}'}}\n");
    support::users::give_to_test_user(p.path());
    let junit = p.path().join("junit.xml");
    let out = output(
        support::users::as_test_user(&support::cli::flense_bin())
            .arg("pipeline")
            .arg("-C")
            .arg(p.path())
            .args(["--param", "X=rootless", "--junit"])
            .arg(&junit),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("[b] stage b completed. exported: [got: rootless, stage: b]"),
        "{text}"
    );
    assert!(p.path().join(".pipeline/logs/p.b.log").is_file());
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("tests=\"2\" failures=\"0\""));
}
