//! Services beside a stage (docs/services.md), end to end: a `redis` variant (Debian's
//! redis-server) and a `test` variant (redis-tools) whose entrypoint writes and reads a
//! key through the host name `db`; a slower `mariadb` service (Debian's mariadb-server,
//! its data directory initialised by the image build) beside a `sql` variant that
//! creates a table and reads it back. The images are built once for the whole file (as
//! root: the capture of apt's files owned by a daemon's subordinate ID fails in subuid
//! mode), pipelines run as root, and `flense run --service` also as the unprivileged
//! test user on the saved and loaded images, with outbound access through pasta
//! (Debian's passt, installed by scripts/test; deb.debian.org is reached as the apt
//! tests do). The tests take turns (a lock), so that
//! counting redis-server processes before and after each run is exact.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use support::cli::{flense, flense_bin, ok_stdout, output};
use support::fixtures::{import_fixture, rootfs_tar};
use support::users::{as_test_user, give_to_test_user};

const BLUBBER: &str = r#"version: v4
base: localhost/bookworm:latest
variants:
  redis:
    apt: {packages: [redis-server]}
    entrypoint: [redis-server, --save, '', --appendonly, 'no']
  test:
    apt: {packages: [redis-tools]}
    entrypoint: [sh, -c, 'echo RUN STARTED; redis-cli -h db set greeting "$GREETING" >/dev/null && echo "READ BACK $(redis-cli -h db get greeting)"; sleep "${PAUSE:-0}"']
  mariadb:
    apt: {packages: [mariadb-server]}
    builder:
      command: [sh, -c, 'mariadb-install-db --datadir=/srv/app/db --skip-test-db --auth-root-authentication-method=normal >/dev/null && chmod -R a+rwX /srv/app/db']
    entrypoint: [mariadbd, --datadir=/srv/app/db, --socket=/tmp/mysqld.sock, --pid-file=/tmp/mysqld.pid, --bind-address=127.0.0.1, --port=3306, --skip-grant-tables, --skip-log-bin]
  sql:
    apt: {packages: [mariadb-client]}
    entrypoint: [sh, -c, 'mariadb -h db -N -B -e "CREATE DATABASE t; CREATE TABLE t.notes (v TEXT); INSERT INTO t.notes VALUES (\"$NOTE\"); SELECT v FROM t.notes" | sed "s/^/READ BACK /"']
"#;

const CONFIG: &str = r#"pipelines:
  ok:
    blubberfile: blubber.yaml
    stages:
      - name: one
        build: test
        run: {env: {GREETING: from-one}}
        services:
          - {name: db, build: redis, ready: [redis-cli, ping], timeout: 60}
      - name: two
        build: test
        run: {env: {GREETING: from-two}}
        services:
          - {name: db, build: redis, ready: [redis-cli, ping]}
    execution: [[one], [two]]
  bad:
    blubberfile: blubber.yaml
    stages:
      - name: never
        build: test
        run: {env: {GREETING: never}}
        services:
          - {name: db, image: localhost/svc-redis, ready: ['false'], timeout: 2}
      - name: crash
        build: test
        run: {env: {GREETING: crash}}
        services:
          - {name: db, image: localhost/svc-redis, arguments: [--port, not-a-port], ready: [redis-cli, ping]}
    execution: [[never], [crash]]
  sql:
    blubberfile: blubber.yaml
    stages:
      - name: notes
        build: sql
        run: {env: {NOTE: kept}}
        services:
          - {name: db, build: mariadb, ready: [mariadb-admin, --socket=/tmp/mysqld.sock, ping]}
  hang:
    blubberfile: blubber.yaml
    stages:
      - name: long
        build: test
        run: {env: {GREETING: long, PAUSE: '300'}}
        services:
          - {name: db, build: redis, ready: [redis-cli, ping]}
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    fn flense(&self) -> Command {
        flense(&self.store())
    }

    fn user_flense(&self) -> Command {
        let mut cmd = as_test_user(&flense_bin());
        cmd.arg("--root").arg(self.dir.path().join("user-store"));
        cmd
    }

    fn pipeline(&self, name: &str, extra: &[&str]) -> Command {
        let mut cmd = self.flense();
        cmd.arg("pipeline")
            .arg(name)
            .arg("-C")
            .arg(self.project())
            .arg("--log-dir")
            .arg(self.dir.path().join(format!("logs-{name}")))
            .args(extra)
            .env("NO_COLOR", "1");
        cmd
    }
}

/// How many tests use the shared fixture: the last one to finish removes it (a static
/// is never dropped).
const FIXTURE_TESTS: usize = 5;

/// A test's turn with the fixture; the last turn removes the fixture's directory.
struct Turn {
    _lock: MutexGuard<'static, ()>,
    dir: PathBuf,
}

impl Drop for Turn {
    fn drop(&mut self) {
        static FINISHED: AtomicUsize = AtomicUsize::new(0);
        if FINISHED.fetch_add(1, Ordering::SeqCst) + 1 == FIXTURE_TESTS {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Fixtures of earlier runs that only ran some of the tests.
fn remove_stale_fixtures() {
    for entry in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("flense-services-") else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive && pid != std::process::id().to_string() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The shared fixture (bookworm imported, both variants built and tagged) and the
/// turn of the calling test.
fn fixture() -> (&'static Fixture, Turn) {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = FIXTURE.get_or_init(|| {
        remove_stale_fixtures();
        let dir = tempfile::Builder::new()
            .prefix(&format!("flense-services-{}", std::process::id()))
            .rand_bytes(0)
            .tempdir_in("/tmp")
            .unwrap();
        let f = Fixture { dir };
        std::fs::create_dir_all(f.project().join(".pipeline")).unwrap();
        std::fs::write(f.project().join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
        std::fs::write(f.project().join(".pipeline/config.yaml"), CONFIG).unwrap();
        ok_stdout(
            f.flense()
                .arg("import")
                .arg(rootfs_tar("bookworm"))
                .args(["--tag", "localhost/bookworm:latest"]),
        );
        for variant in ["redis", "test"] {
            ok_stdout(
                f.flense()
                    .args(["build", variant, "-q", "--tag"])
                    .arg(format!("localhost/svc-{variant}"))
                    .arg("-C")
                    .arg(f.project()),
            );
        }
        f
    });
    let turn = Turn {
        _lock: turn,
        dir: fixture.dir.path().to_path_buf(),
    };
    (fixture, turn)
}

fn redis_servers() -> usize {
    processes("redis-server")
}

/// Processes named exactly `name`.
fn processes(name: &str) -> usize {
    pgrep_count("-x", name)
}

/// Processes whose command line matches `pattern`.
fn count_matching(pattern: &str) -> usize {
    pgrep_count("-f", pattern)
}

fn pgrep_count(how: &str, what: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-c", how, what])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn parallel_stages_each_reach_their_own_redis_by_name() {
    let (f, _turn) = fixture();
    let before = redis_servers();
    let out = output(&mut f.pipeline("ok", &[]));
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("READ BACK from-one"), "{all}");
    assert!(all.contains("READ BACK from-two"), "{all}");
    // Live lines of a service carry `[stage/service]`; its log sits beside the stage's.
    assert!(
        all.contains("[one/db]") && all.contains("[two/db]"),
        "{all}"
    );
    let log = f.dir.path().join("logs-ok/ok.one.db.log");
    let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(log.contains("Ready to accept connections"), "{log}");
    assert_eq!(redis_servers(), before, "a redis-server is left running");

    let dry = output(&mut f.pipeline("ok", &["--dry-run"]));
    let dry_text = text(&dry);
    assert!(dry.status.success(), "{dry_text}");
    assert!(
        dry_text.contains("would start service db") && dry_text.contains("(variant redis)"),
        "{dry_text}"
    );
}

/// A slower service: MariaDB (its data directory made by the image build) is waited
/// for with `mariadb-admin ping`; the run creates a table through the host name `db`
/// and reads a row back.
#[test]
fn a_mariadb_service_keeps_the_table_the_run_creates() {
    let (f, _turn) = fixture();
    let before = processes("mariadbd");
    let out = output(&mut f.pipeline("sql", &[]));
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("service `db` is ready"), "{all}");
    assert!(all.contains("[notes] READ BACK kept"), "{all}");
    assert!(
        all.contains("[notes/db]") && all.contains("ready for connections"),
        "{all}"
    );
    assert_eq!(processes("mariadbd"), before, "a mariadbd is left running");
}

#[test]
fn a_service_that_never_gets_ready_or_crashes_fails_its_stage_before_the_run() {
    let (f, _turn) = fixture();
    let before = redis_servers();
    let out = output(&mut f.pipeline("bad", &[]));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("[never] FAILED") && all.contains("[crash] FAILED"),
        "{all}"
    );
    assert!(!all.contains("RUN STARTED"), "a run started: {all}");
    assert!(
        all.contains("service `db` did not become ready within 2s"),
        "{all}"
    );
    assert!(all.contains("service `db` exited with code"), "{all}");
    // The log tail: redis's own start-up lines and its complaint about the port.
    assert!(all.contains("| ") && all.contains("not-a-port"), "{all}");
    assert_eq!(redis_servers(), before, "a redis-server is left running");
}

/// Starts the `hang` pipeline and returns once its run has started.
fn start_hanging(f: &Fixture, extra: &[&str]) -> (std::process::Child, Vec<String>) {
    let mut child = f
        .pipeline("hang", extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start flense pipeline");
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        lines.push(std::mem::take(&mut line));
        if lines.last().is_some_and(|l| l.contains("READ BACK long")) {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
    });
    (child, lines)
}

#[test]
fn nothing_is_left_after_sigterm_or_a_stage_timeout() {
    let (f, _turn) = fixture();
    let before = redis_servers();
    let (mut child, lines) = start_hanging(f, &[]);
    assert!(
        lines.iter().any(|l| l.contains("READ BACK long")),
        "{lines:?}"
    );
    assert_eq!(redis_servers(), before + 1, "the service is not running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    assert_eq!(redis_servers(), before, "a redis-server outlived SIGTERM");

    let (mut child, lines) = start_hanging(f, &["--run-timeout", "3"]);
    assert!(
        lines.iter().any(|l| l.contains("READ BACK long")),
        "{lines:?}"
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert_eq!(
        redis_servers(),
        before,
        "a redis-server outlived the timeout"
    );
}

#[test]
fn flense_run_starts_an_image_service_as_a_user() {
    let (f, _turn) = fixture();
    let archive = f.dir.path().join("images.tar");
    ok_stdout(
        f.flense()
            .args(["save", "localhost/svc-test", "localhost/svc-redis", "-o"])
            .arg(&archive),
    );
    give_to_test_user(f.dir.path());
    ok_stdout(f.user_flense().arg("load").arg(&archive));
    let before = redis_servers();
    let out = output(
        f.user_flense()
            .args(["run", "--image", "localhost/svc-test", "-e", "GREETING=cli"])
            .args(["--service", "db=localhost/svc-redis"])
            .args(["--service-ready", "db=redis-cli ping"]),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("READ BACK cli"), "{all}");
    assert!(
        all.contains("[db] ") && all.contains("service `db` is ready"),
        "{all}"
    );
    assert_eq!(redis_servers(), before, "a redis-server is left running");
    // `--network host` (the default) and `private` give the group outbound access
    // through pasta;
    // `--network none` keeps it on loopback. (As root: this machine's /dev/net/tun,
    // unlike a Debian host's, is not open to other users.)
    let connect = |network: &str| {
        output(
            f.flense()
                .args(["run", "--image", "localhost/svc-test", "--network", network])
                .args(["--entrypoint", "perl", "--service", "db=localhost/svc-redis"])
                .args(["--", "-MIO::Socket::INET", "-e"])
                .arg("IO::Socket::INET->new(PeerAddr => 'deb.debian.org:80', Timeout => 10) or die qq(no connection: $@\n)"),
        )
    };
    // With a VARIANT to run, a service value naming a variant builds it (cached here).
    let out = output(
        f.flense()
            .args([
                "run",
                "test",
                "--network",
                "none",
                "-e",
                "GREETING=variant",
                "-C",
            ])
            .arg(f.project())
            .args([
                "--service",
                "db=redis",
                "--service-ready",
                "db=redis-cli ping",
            ]),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("READ BACK variant"), "{}", text(&out));
    let pastas = processes("pasta");
    let out = connect("host");
    assert!(out.status.success(), "{}", text(&out));
    let out = connect("private");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(processes("pasta"), pastas, "pasta is left running");
    let out = connect("none");
    assert!(text(&out).contains("no connection"), "{}", text(&out));
    assert_eq!(redis_servers(), before, "a redis-server is left running");
    // Names are checked before anything starts.
    let out = output(
        f.user_flense()
            .args(["run", "--image", "localhost/svc-test"])
            .args([
                "--service",
                "db=localhost/svc-redis",
                "--service-ready",
                "cache=true",
            ]),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no --service named `cache`"),
        "{}",
        text(&out)
    );
}

#[test]
fn sigterm_while_a_service_is_not_ready_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ok_stdout(
        flense(&store)
            .arg("import")
            .arg(rootfs_tar("busybox"))
            .args(["--tag", "localhost/busybox:latest"]),
    );
    // A service whose ready check never passes: flense waits in its start-up phase.
    let mut child = flense(&store)
        .args(["run", "--image", "localhost/busybox", "--network", "none"])
        .args(["--service", "web=localhost/busybox"])
        .args(["--service-arg", "web=sleep", "--service-arg", "web=313"])
        .args([
            "--service-ready",
            "web=false",
            "--service-timeout",
            "web=300",
        ])
        .args(["--", "echo", "RUN STARTED"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pattern = "^sleep 313$";
    while count_matching(pattern) == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "flense run ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("RUN STARTED"));
    assert_eq!(count_matching(pattern), 0, "the service outlived SIGTERM");
}

/// An `image:` service missing from the store is pulled from its registry (busybox's
/// httpd, pushed to the test registry from another store); `--pull never` refuses,
/// naming the image, before anything starts.
#[test]
fn an_image_service_is_pulled_when_missing_unless_the_policy_is_never() {
    let dir = tempfile::tempdir().unwrap();
    let registry = support::registry::TestRegistry::start();
    let web = registry.image("services/web:1");
    let pusher = dir.path().join("pusher");
    ok_stdout(
        flense(&pusher)
            .arg("push")
            .arg(import_fixture(&pusher, "busybox"))
            .arg(&web),
    );
    let store = dir.path().join("store");
    import_fixture(&store, "busybox");
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join(".pipeline")).unwrap();
    std::fs::write(
        project.join(".pipeline/blubber.yaml"),
        "version: v4\nbase: localhost/busybox:latest\nvariants:\n  client:\n    entrypoint: [sh, -c, 'echo \"GOT $(wget -q -O - http://web:8080/)\"']\n",
    )
    .unwrap();
    let serve = "mkdir -p /tmp/www && echo served > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www";
    std::fs::write(
        project.join(".pipeline/config.yaml"),
        format!(
            "pipelines:\n  web:\n    blubberfile: blubber.yaml\n    stages:\n      - name: fetch\n        build: client\n        run: true\n        services:\n          - {{name: web, image: '{web}', arguments: [sh, -c, '{serve}'], ready: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/']}}\n"
        ),
    )
    .unwrap();
    let pipeline = |extra: &[&str]| {
        output(
            flense(&store)
                .args(["pipeline", "web", "-C"])
                .arg(&project)
                .args(extra)
                .env("NO_COLOR", "1"),
        )
    };
    let out = pipeline(&["--pull", "never"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("service `web`")
            && all.contains(&format!("image {web} is not in the local store")),
        "{all}"
    );
    assert!(!all.contains("GOT"), "{all}");
    let out = pipeline(&[]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("GOT served"), "{all}");
}
