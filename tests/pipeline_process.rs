//! The child-process executor: the runner drives `flense build`/`run`/`push` as child
//! processes following their CLI contract (here a stand-in script,
//! fixtures/pipeline/fake-flense.sh, until those verbs land): argument passing, digest
//! parsing, stdout tail capture, exit codes, and Ctrl-C stopping children cleanly.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::cli::{flense, output};

fn fake() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pipeline/fake-flense.sh")
}

fn project(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".pipeline/p")).unwrap();
    std::fs::write(dir.path().join(".pipeline/config.yaml"), config).unwrap();
    std::fs::write(dir.path().join(".pipeline/p/blubber.yaml"), "version: v4\n").unwrap();
    dir
}

fn pipeline(dir: &Path) -> Command {
    let mut cmd = flense(&dir.join(".store"));
    cmd.arg("pipeline")
        .arg("-C")
        .arg(dir)
        .arg("--flense-bin")
        .arg(fake())
        .env("NO_COLOR", "1");
    cmd
}

#[test]
fn build_run_push_through_child_processes() {
    let config = r#"pipelines:
  p:
    stages:
      - name: a
        build: variant
        run: {arguments: ['print:hello', 'err:to stderr', 'print:world'], tail: 1, env: {K: 'v-$GREETING'}}
      - name: b
        build: variant
        run: {arguments: ['print:got ${a.output}']}
        publish: {image: {name: '${setup.projectShortName}', tags: [extra]}}
      - {name: c, build: variant, run: {arguments: ['exit:4']}}
"#;
    let p = project(config);
    let out = output(pipeline(p.path()).args([
        "--registry",
        "registry.example:5000/ns",
        "--param",
        "GREETING=hi",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let log_a = std::fs::read_to_string(p.path().join(".pipeline/logs/p.a.log")).unwrap();
    assert!(log_a.contains(" build variant -f "), "{log_a}");
    assert!(log_a.contains("env K=v-hi"), "{log_a}");
    assert!(
        log_a.contains("to stderr") && log_a.contains("hello"),
        "{log_a}"
    );
    assert!(log_a.contains("output: world\n"), "{log_a}");
    let log_b = std::fs::read_to_string(p.path().join(".pipeline/logs/p.b.log")).unwrap();
    assert!(log_b.contains("got world"), "{log_b}");
    assert!(log_b.contains("image localhost/plib-image-"), "{log_b}");
    let short = p
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    assert!(
        log_b.contains(&format!("-> registry.example:5000/ns/{short}:extra")),
        "{log_b}"
    );
    assert!(stdout.contains("[c] FAILED"), "{stdout}");
    assert!(
        stdout.contains("step run: the container exited with code 4"),
        "{stdout}"
    );
}

#[test]
fn sigterm_or_ctrl_c_stops_children_skips_the_rest_and_still_reports() {
    let config = r#"pipelines:
  p:
    stages:
      - {name: slow, build: v, run: {arguments: ['sleep:120']}}
      - {name: later, build: v, run: true}
"#;
    let p = project(config);
    let junit = p.path().join("junit.xml");
    let mut child = pipeline(p.path())
        .arg("--junit")
        .arg(&junit)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("$ flense run") {
            break;
        }
    }
    // SIGTERM, not SIGINT: a test harness started in the background may ignore SIGINT
    // for the whole process tree; both signals take the same path.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let text = rest.join("\n");
    assert!(text.contains("[slow] FAILED"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("p") && l.contains("later") && l.contains("skipped")),
        "{text}"
    );
    assert!(p.path().join(".pipeline/logs/p.teardown.log").is_file());
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<failure message=\"interrupted\">"));
}
