//! flense on a terminal (a pseudo-terminal made by `script` from util-linux): progress
//! of unpacking and writing layers during `flense pull` and `flense build`, plain output
//! without control characters when not on a terminal, and one Ctrl-C reaching the
//! command of `flense run` exactly once.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::cli::{flense, flense_bin, ok_output, ok_stdout};
use support::fixtures::rootfs_tar;
use support::registry::{simple_image, TestRegistry};

/// A command running on a pseudo-terminal (`script -qfec CMD /dev/null`): what is
/// written to `input` is typed on the terminal; everything it shows is collected.
struct OnTerminal {
    child: Child,
    input: ChildStdin,
    shown: Arc<Mutex<Vec<u8>>>,
}

impl OnTerminal {
    fn start(args: &[&str]) -> Self {
        let quoted: Vec<String> = std::iter::once(flense_bin().display().to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        // `exec`: script runs the command with `$SHELL -c`, and a shell that stays in
        // between (dash does) dies of the Ctrl-C the command handled.
        let command = format!("exec {}", quoted.join(" "));
        let mut child = Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .env_remove("FLENSE_ROOT")
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("script (util-linux)");
        let input = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&shown);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            input,
            shown,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned()
    }

    /// Waits (at most a minute) until the terminal shows `text`.
    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the command to end; returns everything shown.
    fn finish(mut self) -> String {
        let status = self.child.wait().unwrap();
        // The reader thread sees the end of the output after the exit.
        std::thread::sleep(Duration::from_millis(100));
        assert!(status.success(), "{status}: {}", self.text());
        self.text()
    }
}

fn root_arg(root: &Path) -> String {
    root.display().to_string()
}

/// A project `dir/name` whose `test` variant runs the shell `script` on the busybox
/// fixture.
fn project(dir: &Path, name: &str, script: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.join(".pipeline")).unwrap();
    std::fs::write(
        p.join(".pipeline/blubber.yaml"),
        format!(
            "version: v4\nbase: localhost/busybox:latest\nvariants:\n  test:\n    builder:\n      \
             command: [sh, -c, '{script}']\n"
        ),
    )
    .unwrap();
    p
}

fn assert_plain(what: &str, out: &std::process::Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(
            !text.contains('\x1b') && !text.contains('\r'),
            "{what}: control characters without a terminal: {text:?}"
        );
    }
}

#[test]
fn pull_and_build_show_unpack_progress_on_a_terminal_only() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "base/busybox:1", &[]);
    let reference = reg.image("base/busybox:1");
    let busybox = rootfs_tar("busybox").display().to_string();
    let p = project(tmp.path(), "terminal-app", "echo hi > greeting");

    let on_terminal = tmp.path().join("terminal");
    let shown =
        OnTerminal::start(&["--root", &root_arg(&on_terminal), "pull", &reference]).finish();
    assert!(shown.contains("unpacking layer"), "{shown:?}");
    ok_stdout(
        flense(&on_terminal)
            .args(["import", &busybox, "--no-unpack"])
            .args(["--tag", "localhost/busybox:latest"]),
    );
    let shown = OnTerminal::start(&[
        "--root",
        &root_arg(&on_terminal),
        "build",
        "test",
        "-C",
        &p.display().to_string(),
    ])
    .finish();
    assert!(shown.contains("unpacking layer"), "{shown:?}");
    assert!(shown.contains("writing a layer of"), "{shown:?}");
    assert!(shown.contains("==> image"), "{shown:?}");

    let plain = tmp.path().join("plain");
    let out = ok_output(flense(&plain).args(["pull", &reference]));
    assert_plain("pull", &out);
    ok_stdout(
        flense(&plain)
            .args(["import", &busybox, "--no-unpack"])
            .args(["--tag", "localhost/busybox:latest"]),
    );
    let out = ok_output(flense(&plain).args(["build", "test", "-C"]).arg(&p));
    assert_plain("build", &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("==> image"));

    // --quiet: only the result.
    let quiet = tmp.path().join("quiet");
    let shown =
        OnTerminal::start(&["--root", &root_arg(&quiet), "pull", "-q", &reference]).finish();
    assert_eq!(shown.trim(), image.digest, "{shown:?}");
}

#[test]
fn one_ctrl_c_reaches_the_command_of_flense_run_once() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("count-sigint");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/signals/count-sigint.c");
    ok_output(
        Command::new("cc")
            .args(["-static", "-O", "-o"])
            .arg(&counter)
            .arg(&source),
    );
    let root = tmp.path().join("store");
    let busybox = rootfs_tar("busybox");
    ok_stdout(
        flense(&root)
            .arg("import")
            .arg(&busybox)
            .args(["--tag", "localhost/busybox:latest"]),
    );
    let mut run = OnTerminal::start(&[
        "--root",
        &root_arg(&root),
        "run",
        "--image",
        "localhost/busybox:latest",
        "--mount",
        &format!("type=bind,src={},dst=/count-sigint,ro", counter.display()),
        "--",
        "/count-sigint",
    ]);
    run.wait_for("ready");
    run.input.write_all(b"\x03").unwrap();
    run.input.flush().unwrap();
    let shown = run.finish();
    assert!(shown.contains("SIGINT received 1 time(s)"), "{shown:?}");
}

#[test]
fn a_build_waiting_for_a_step_another_build_runs_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let busybox = rootfs_tar("busybox").display().to_string();
    ok_stdout(flense(&root).args(["import", &busybox, "--tag", "localhost/busybox:latest"]));
    let p = project(
        tmp.path(),
        "slow-step",
        "echo step-started; sleep 8; echo done > marker",
    );
    let build = |tag: &str| {
        let args = [
            "--root",
            &root_arg(&root),
            "build",
            "test",
            "-t",
            tag,
            "-C",
            &p.display().to_string(),
        ]
        .map(str::to_string);
        OnTerminal::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let first = build("localhost/first:1");
    first.wait_for("step-started");
    let second = build("localhost/second:1");
    second.wait_for("that another build is running");
    first.finish();
    let shown = second.finish();
    assert!(
        shown.contains("waiting for the step `RUN sh \"-c\" \"echo step-started"),
        "{shown:?}"
    );
    assert!(shown.contains("(cached,"), "{shown:?}");
}
