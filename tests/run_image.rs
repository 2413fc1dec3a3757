//! `flense run --image`: runs the busybox fixture image from the store, as root and as
//! the unprivileged test user (auto, i.e. subuid when set up, and single mode).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::cli::{flense, flense_bin, output};
use support::fixtures::rootfs_tar;
use support::users::{as_test_user, give_to_test_user};

/// Who runs flense, and with which `--userns`.
#[derive(Clone, Copy, Debug)]
enum Caller {
    Root,
    User(&'static str),
}

const CALLERS: [Caller; 3] = [Caller::Root, Caller::User("auto"), Caller::User("single")];

/// A store with the busybox fixture imported, owned by whoever will use it.
struct Env {
    _dir: tempfile::TempDir,
    store: PathBuf,
    caller: Caller,
}

impl Env {
    fn new(caller: Caller) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("flense-run-")
            .tempdir_in("/tmp")
            .unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        let tar = dir.path().join("busybox.tar");
        std::fs::copy(rootfs_tar("busybox"), &tar).unwrap();
        if let Caller::User(_) = caller {
            give_to_test_user(dir.path());
        }
        let env = Env {
            _dir: dir,
            store,
            caller,
        };
        let out = env.run(&[
            "import",
            tar.to_str().unwrap(),
            "--tag",
            "localhost/busybox:latest",
        ]);
        assert!(out.status.success(), "import failed: {}", text(&out.stderr));
        env
    }

    fn cmd(&self) -> Command {
        match self.caller {
            Caller::Root => flense(&self.store),
            Caller::User(_) => {
                let mut cmd = as_test_user(&flense_bin());
                cmd.arg("--root").arg(&self.store);
                cmd
            }
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        output(self.cmd().args(args))
    }

    /// `flense run --image busybox [opts] -- sh -c script`.
    fn sh(&self, opts: &[&str], script: &str) -> Output {
        let mut cmd = self.cmd();
        cmd.args(["run", "--image", "localhost/busybox"]);
        if let Caller::User(mode) = self.caller {
            cmd.args(["--userns", mode]);
        }
        cmd.args(opts).args(["--", "sh", "-c", script]);
        output(&mut cmd)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exit_code_env_workdir_user_and_hostname_are_as_asked() {
    for caller in CALLERS {
        let env = Env::new(caller);
        let out = env.sh(
            &[
                "-e",
                "GREETING=hi there",
                "--workdir",
                "/var/tmp",
                "--user",
                "65534:65534",
                "--hostname",
                "box",
            ],
            "echo $GREETING; pwd; id -u; id -g; hostname; exit 5",
        );
        assert_eq!(
            out.status.code(),
            Some(5),
            "{caller:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stdout),
            "hi there\n/var/tmp\n65534\n65534\nbox\n",
            "{caller:?}"
        );
        // The image's own user (root) by default.
        let out = env.sh(&[], "id -u");
        assert_eq!(
            text(&out.stdout),
            "0\n",
            "{caller:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn signals_timeouts_and_missing_programs_give_shell_codes() {
    for caller in CALLERS {
        let env = Env::new(caller);
        let out = env.sh(&[], "kill -KILL $$");
        assert_eq!(
            out.status.code(),
            Some(137),
            "{caller:?}: {}",
            text(&out.stderr)
        );
        let out = env.sh(&["--timeout", "0.5"], "sleep 600 & sleep 600");
        assert_eq!(
            out.status.code(),
            Some(124),
            "{caller:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("timeout"),
            "{}",
            text(&out.stderr)
        );
        let out = env.run(&[
            "run",
            "--image",
            "localhost/busybox",
            "--",
            "no-such-program",
        ]);
        assert_eq!(
            out.status.code(),
            Some(127),
            "{caller:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).contains("no-such-program"));
    }
}

#[test]
fn network_none_and_mounts() {
    for caller in CALLERS {
        let env = Env::new(caller);
        let out = env.sh(
            &["--network", "none"],
            "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
        );
        assert_eq!(
            text(&out.stdout),
            "lo\n",
            "{caller:?}: {}",
            text(&out.stderr)
        );
        // A fresh sysfs of the sandbox's network namespace, not the host's /sys.
        let out = env.sh(&["--network", "none"], "ls /sys/class/net");
        assert_eq!(
            text(&out.stdout),
            "lo\n",
            "{caller:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{caller:?}: {}", text(&out.stderr));

        // `private`: a network of its own with outbound access through pasta (a default
        // route); only loopback, with a warning, where pasta cannot give it (a user
        // where /dev/net/tun is not open to users, as on this machine).
        let out = env.sh(
            &["--network", "private"],
            "ip route | grep -c '^default' || true",
        );
        let routed = text(&out.stdout) == "1\n";
        let warned = text(&out.stderr).contains("no outbound network for the run");
        assert!(
            routed || (matches!(caller, Caller::User(_)) && warned),
            "{caller:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );

        let shared = env.store.parent().unwrap().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::write(shared.join("in"), "from host\n").unwrap();
        if let Caller::User(_) = caller {
            give_to_test_user(&shared);
        }
        let ro = format!("type=bind,src={},dst=/mnt/shared,ro", shared.display());
        let out = env.sh(
            &["--mount", &ro],
            "cat /mnt/shared/in; echo x > /mnt/shared/out || echo refused",
        );
        assert_eq!(text(&out.stdout), "from host\nrefused\n", "{caller:?}");
        assert!(!shared.join("out").exists());
        let rw = format!("type=bind,src={},dst=/mnt/shared", shared.display());
        let out = env.sh(
            &["--mount", &rw, "--mount", "type=tmpfs,dst=/scratch"],
            "echo y > /mnt/shared/out && echo z > /scratch/z && cat /scratch/z",
        );
        assert_eq!(
            text(&out.stdout),
            "z\n",
            "{caller:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(shared.join("out")).unwrap(), "y\n");
    }
}

#[test]
fn writes_stay_in_the_sandbox_and_leave_nothing_behind() {
    for caller in CALLERS {
        let env = Env::new(caller);
        let out = env.sh(
            &[],
            "echo scribble > /bin/busybox-note && rm /bin/sh && ls /bin/sh || echo gone",
        );
        assert_eq!(
            text(&out.stdout),
            "gone\n",
            "{caller:?}: {}",
            text(&out.stderr)
        );
        // The next run sees the image unchanged, and no run state is left in the store.
        let out = env.sh(
            &[],
            "test ! -e /bin/busybox-note && test -e /bin/sh && echo pristine",
        );
        assert_eq!(text(&out.stdout), "pristine\n", "{caller:?}");
        let left: Vec<PathBuf> = std::fs::read_dir(env.store.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{caller:?} left {left:?}");
    }
}

#[test]
fn bad_input_exits_with_2() {
    let env = Env::new(Caller::Root);
    for args in [
        vec!["run", "--image", "localhost/nope", "--", "true"],
        vec![
            "run",
            "--image",
            "localhost/busybox",
            "--mount",
            "type=bind,dst=/x",
            "--",
            "true",
        ],
        vec![
            "run",
            "--image",
            "localhost/busybox",
            "--network",
            "bridge",
            "--",
            "true",
        ],
        vec![
            "run",
            "--image",
            "localhost/busybox",
            "--userns",
            "both",
            "--",
            "true",
        ],
        vec![
            "run",
            "--image",
            "localhost/busybox",
            "--user",
            "nosuchuser",
            "--",
            "true",
        ],
        vec![
            "run",
            "--image",
            "localhost/busybox",
            "-e",
            "=x",
            "--",
            "true",
        ],
        vec!["run", "--", "true"],
    ] {
        let out = env.run(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} printed no error");
    }
    let missing = Path::new("/nonexistent/flense-src");
    let spec = format!("type=bind,src={},dst=/x", missing.display());
    let out = env.run(&[
        "run",
        "--image",
        "localhost/busybox",
        "--mount",
        &spec,
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn sigterm_to_flense_reaches_the_command() {
    use std::io::{BufRead, BufReader};
    for caller in CALLERS {
        let env = Env::new(caller);
        let mut cmd = env.cmd();
        cmd.args(["run", "--image", "localhost/busybox"]);
        if let Caller::User(mode) = caller {
            cmd.args(["--userns", mode]);
        }
        let script =
            "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done";
        let mut child = cmd
            .args(["--", "sh", "-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "got-term", "{caller:?}");
        assert_eq!(child.wait().unwrap().code(), Some(3), "{caller:?}");
    }
}

#[test]
fn forced_copy_fallback_runs_the_same_and_says_so() {
    for caller in CALLERS {
        let env = Env::new(caller);
        let mut cmd = env.cmd();
        cmd.env("FLENSE_FORCE_COPY", "1")
            .args(["-v", "run", "--image", "localhost/busybox"]);
        if let Caller::User(mode) = caller {
            cmd.args(["--userns", mode]);
        }
        let out = output(cmd.args([
            "--",
            "sh",
            "-c",
            "echo x > /root/f && cat /root/f && rm /bin/sh && echo ok",
        ]));
        assert!(out.status.success(), "{caller:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "x\nok\n");
        assert!(
            text(&out.stderr).contains("copy fallback"),
            "{}",
            text(&out.stderr)
        );
        let out = env.sh(&[], "test -e /bin/sh && test ! -e /root/f && echo pristine");
        assert_eq!(text(&out.stdout), "pristine\n", "{caller:?}");
        let left = std::fs::read_dir(env.store.join("tmp")).unwrap().count();
        assert_eq!(left, 0, "{caller:?} left run state behind");
    }
}
