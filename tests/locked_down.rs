//! flense where CI runners lock things down: as root with namespace creation refused by
//! a seccomp filter (chroot isolation), as a user with the same filter (a clear refusal),
//! as a user in a mount namespace whose /proc is masked (a bound /proc instead of a new
//! one), and parallel pipeline stages serving on the same port (with outbound access).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::cli::{flense, flense_bin, ok_stdout, output};
use support::fixtures::rootfs_tar;
use support::users::{as_test_user, give_to_test_user, reachable_copy, test_user};

const BLUBBER: &str = r#"version: v4
base: localhost/busybox:latest
variants:
  built:
    builder:
      requirements: [input.txt]
      command: "tr a-z A-Z < input.txt > upper.txt && mkdir -p out && cp upper.txt out/copy.txt && echo discarded > /dev/null"
    entrypoint: [cat, upper.txt]
"#;

/// The seccomp wrapper that refuses namespace creation (fixtures/seccomp).
fn no_namespaces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/seccomp/no-namespaces.py")
}

/// A scratch directory the test user can enter, with the busybox tarball and the
/// project.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("flense-locked-")
        .tempdir_in("/tmp")
        .unwrap();
    let tar = tmp.path().join("busybox.tar");
    fs::copy(rootfs_tar("busybox"), &tar).unwrap();
    let project = tmp.path().join("project");
    fs::create_dir_all(project.join(".pipeline")).unwrap();
    fs::write(project.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    fs::write(project.join("input.txt"), "shout\n").unwrap();
    fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    (tmp, tar, project)
}

/// Imports the busybox tarball as `localhost/busybox:latest` with `flense` (its store
/// already given); returns the printed digest.
fn import(flense: &mut Command, tar: &Path) -> String {
    ok_stdout(
        flense
            .arg("import")
            .arg(tar)
            .args(["--tag", "localhost/busybox:latest"]),
    )
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `flense ARGS` as root under the seccomp filter.
fn filtered(store: &Path) -> Command {
    let mut cmd = Command::new(no_namespaces());
    cmd.env_remove("FLENSE_ROOT")
        .env_remove("FLENSE_ISOLATION")
        .arg(flense_bin())
        .arg("--root")
        .arg(store);
    cmd
}

#[test]
fn root_without_namespaces_builds_and_runs_in_chroot() {
    let (tmp, tar, project) = scratch();
    let store = tmp.path().join("store");
    import(&mut flense(&store), &tar);
    // The reference: namespaces with the copied root and stat-walk diff chroot uses.
    let copied = ok_stdout(
        flense(&store)
            .env("FLENSE_FORCE_COPY", "1")
            .args(["build", "built", "-q", "--tag", "ref:1", "-C"])
            .arg(&project),
    );

    let dry = output(
        filtered(&store)
            .args(["build", "built", "--dry-run", "--no-cache", "-C"])
            .arg(&project),
    );
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{text}{}", stderr_of(&dry));
    assert!(
        text.contains("isolation: chroot (namespace creation is refused: a seccomp filter"),
        "{text}"
    );

    let build = output(
        filtered(&store)
            .args(["-v", "build", "built", "-q", "--no-cache", "-C"])
            .arg(&project),
    );
    let stderr = stderr_of(&build);
    assert!(build.status.success(), "{stderr}");
    assert!(stderr.contains("isolation: chroot"), "announced: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&build.stdout).trim(),
        copied.trim(),
        "chroot gives the layers of the copy fallback"
    );

    let run = output(
        filtered(&store)
            .args(["run", "built", "-q", "-C"])
            .arg(&project),
    );
    assert!(run.status.success(), "{}", stderr_of(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "SHOUT\n");
    let run = output(filtered(&store).args([
        "run",
        "--image",
        "project:built",
        "--entrypoint",
        "sh",
        "--",
        "-c",
        "echo $(id -u) > /dev/null && id -u && exit 4",
    ]));
    assert_eq!(run.status.code(), Some(4), "{}", stderr_of(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "900\n");
    // A writable bind mount is a copy in the chroot, copied back when the command ends
    // (a pipeline's `copy` goes through one).
    let out_dir = tmp.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let bind = format!("type=bind,src={},dst=/out", out_dir.display());
    let run = output(filtered(&store).args([
        "run",
        "--image",
        "project:built",
        "--user",
        "0",
        "--mount",
        &bind,
        "--entrypoint",
        "cp",
        "--",
        "upper.txt",
        "/out/copied.txt",
    ]));
    assert!(run.status.success(), "{}", stderr_of(&run));
    assert_eq!(
        fs::read_to_string(out_dir.join("copied.txt")).unwrap(),
        "SHOUT\n"
    );

    // Asked for where namespaces work: no /proc in the chroot.
    let asked = output(
        flense(&store)
            .env("FLENSE_ISOLATION", "chroot")
            .args([
                "-v",
                "run",
                "--image",
                "project:built",
                "--entrypoint",
                "sh",
            ])
            .args(["--", "-c", "test ! -e /proc/self && cat upper.txt"]),
    );
    assert!(asked.status.success(), "{}", stderr_of(&asked));
    assert_eq!(String::from_utf8_lossy(&asked.stdout), "SHOUT\n");
    assert!(stderr_of(&asked).contains("isolation: chroot (asked for)"));

    let forced = output(
        filtered(&store)
            .args([
                "build",
                "built",
                "--isolation",
                "namespace",
                "--no-cache",
                "-C",
            ])
            .arg(&project),
    );
    let stderr = stderr_of(&forced);
    assert_eq!(forced.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot create user namespaces"), "{stderr}");
}

#[test]
fn a_user_without_namespaces_is_told_why() {
    let (tmp, tar, project) = scratch();
    give_to_test_user(tmp.path());
    let store = tmp.path().join("store");
    import(as_test_user(&flense_bin()).arg("--root").arg(&store), &tar);
    let out = output(
        as_test_user(&no_namespaces())
            .arg(reachable_copy(&flense_bin()))
            .arg("--root")
            .arg(&store)
            .args(["build", "built", "-C"])
            .arg(&project),
    );
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for words in [
        "cannot create user namespaces",
        "seccomp",
        "an administrator can",
    ] {
        assert!(stderr.contains(words), "{words:?} in {stderr}");
    }
}

/// A shell command that makes a private mount namespace whose /proc has a masked file
/// and a read-only /proc/sys, as podman and Kubernetes give a container, then runs the
/// rest as the test user.
fn masked_proc_as_test_user(script: &str) -> Command {
    let (uid, gid) = test_user();
    let mask = r#"for f in kcore keys timer_list latency_stats sched_debug; do
  [ -e /proc/$f ] && mount --bind /dev/null /proc/$f && break
done
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-ec"])
        .arg(format!(
            "{mask}exec setpriv --reuid={uid} --regid={gid} --init-groups sh -ec '{script}'"
        ))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/tmp");
    cmd
}

#[test]
fn a_masked_proc_is_replaced_by_the_containers_own() {
    let (tmp, tar, project) = scratch();
    give_to_test_user(tmp.path());
    let bin = reachable_copy(&flense_bin());
    let f = format!("{} --root {}/store", bin.display(), tmp.path().display());
    let script = format!(
        "{f} import {tar} --tag localhost/busybox:latest >/dev/null
{f} build built -q -C {project}
{f} run --image project:built --entrypoint sh -- -c \"test -r /proc/self/status && cat upper.txt\"",
        tar = tar.display(),
        project = project.display()
    );
    let out = output(&mut masked_proc_as_test_user(&script));
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("SHOUT\n"), "{stdout}");
    // Said once per process (build, run), never a mount error.
    assert_eq!(
        stderr.matches("cannot mount a new /proc here").count(),
        2,
        "{stderr}"
    );
}

const SERVERS: &str = r#"pipelines:
  servers:
    execution: [[one], [two], [out]]
    stages:
      - name: one
        run: {image: '${setup.params.IMAGE}', arguments: [sh, -c, 'SERVE', serve, one]}
      - name: two
        run: {image: '${setup.params.IMAGE}', arguments: [sh, -c, 'SERVE', serve, two]}
      - name: out
        run: {image: '${setup.params.IMAGE}', arguments: [sh, -c, 'FETCH']}
"#;

/// Reaches a server on the host's loopback from a run's own network: pasta maps its
/// gateway address to the host.
const FETCH: &str = r#"gw=$(ip route | awk "/^default/ {print \$3}") && test "$(wget -q -O - "http://$gw:PORT/")" = host-says-hi"#;

/// A server on the host's loopback answering every request with `host-says-hi`;
/// returns its port (it lives as long as the test process).
fn serve_on_host_loopback() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ =
                stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nhost-says-hi\n");
        }
    });
    port
}

/// Serves its name on port 8080 and checks, at once and 3 seconds later, that the
/// server answering is its own: with a shared network the second server cannot bind.
const SERVE: &str = r#"mkdir -p /tmp/www && echo "$1" > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www && i=0 && until wget -q -O /tmp/got http://127.0.0.1:8080/; do i=$((i+1)); [ $i -lt 100 ] || exit 3; sleep 0.1; done && test "$(cat /tmp/got)" = "$1" && sleep 3 && test "$(wget -q -O - http://127.0.0.1:8080/)" = "$1""#;

/// Parallel stages each have a network of their own (both serve on port 8080), with
/// outbound access: a third reaches a server on the host.
#[test]
fn parallel_stages_serve_on_the_same_port() {
    let port = serve_on_host_loopback();
    let (tmp, tar, _) = scratch();
    let store = tmp.path().join("store");
    let imported = import(&mut flense(&store), &tar);
    let digest = imported.trim().rsplit(':').next().unwrap().to_string();
    let dir = tmp.path().join("servers");
    fs::create_dir_all(dir.join(".pipeline")).unwrap();
    fs::write(
        dir.join(".pipeline/config.yaml"),
        SERVERS
            .replace("SERVE", SERVE)
            .replace("FETCH", &FETCH.replace("PORT", &port.to_string())),
    )
    .unwrap();
    let out = output(
        flense(&store)
            .args(["pipeline", "-C"])
            .arg(&dir)
            .args(["--param", &format!("IMAGE={digest}")]),
    );
    let logs: String = fs::read_dir(dir.join(".pipeline/logs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        out.status.success(),
        "{}{}\n{logs}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
}

/// Runs `script` (with `/work` bound to `work` and the flense binary on the PATH) in a
/// podman container of the bookworm fixture image: podman's default seccomp profile,
/// capabilities and masked /proc; as `user` when given.
fn in_podman(work: &Path, user: Option<(u32, u32)>, script: &str) -> std::process::Output {
    let image = podman_bookworm();
    let mut podman = vec![
        "podman run --rm --cgroups=disabled".to_string(),
        // Fixed limits: the default (raising them to the maximum) needs
        // CAP_SYS_RESOURCE, which root may lack in the VM that runs the tests.
        "--ulimit nofile=1024:1024 --ulimit nproc=4096:4096".to_string(),
        format!("-v {}:/usr/local/bin/flense:ro", flense_bin().display()),
        format!("-v {}:/work -e HOME=/work", work.display()),
    ];
    if let Some((uid, gid)) = user {
        podman.push(format!("--user {uid}:{gid}"));
    }
    podman.push(format!("{image} sh -ec '{script}'"));
    // crun refuses a hybrid cgroup hierarchy (cgroup v1 controllers with a v2
    // `unified` mount); a cgroup2 mount of its own in a private mount namespace makes it
    // see cgroup v2, whose controllers it does not need with --cgroups=disabled.
    let cgroup2 = "grep -q '^cgroup2 /sys/fs/cgroup ' /proc/self/mounts || mount -t cgroup2 none /sys/fs/cgroup";
    output(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-ec"])
            .arg(format!("{cgroup2}\nexec {}", podman.join(" "))),
    )
}

/// The bookworm fixture image in podman's storage (imported once per fixture version).
fn podman_bookworm() -> String {
    let tar = rootfs_tar("bookworm");
    let version = tar.file_stem().unwrap().to_string_lossy().into_owned();
    let image = format!("localhost/flense-test-{version}:latest");
    let exists = Command::new("podman")
        .args(["image", "exists", &image])
        .status()
        .expect("podman is installed (scripts/test installs it)");
    if !exists.success() {
        ok_stdout(Command::new("podman").arg("import").arg(&tar).arg(&image));
    }
    image
}

#[test]
fn flense_builds_and_runs_inside_a_podman_container() {
    let (tmp, _, _) = scratch();
    give_to_test_user(tmp.path());
    let script = |store: &str| {
        format!(
            "flense --root /work/{store} import /work/busybox.tar --tag localhost/busybox:latest >/dev/null
flense --root /work/{store} build built -q -C /work/project
flense --root /work/{store} run built -q -C /work/project"
        )
    };
    let as_root = in_podman(tmp.path(), None, &script("root-store"));
    let root_out = String::from_utf8_lossy(&as_root.stdout);
    assert!(
        as_root.status.success(),
        "{root_out}{}",
        stderr_of(&as_root)
    );
    assert!(root_out.ends_with("SHOUT\n"), "{root_out}");

    let as_user = in_podman(tmp.path(), Some(test_user()), &script("user-store"));
    let user_out = String::from_utf8_lossy(&as_user.stdout);
    assert!(
        as_user.status.success(),
        "{user_out}{}",
        stderr_of(&as_user)
    );
    assert_eq!(user_out, root_out, "same image digest and output as root");
}

#[test]
fn a_pipeline_builds_runs_and_copies_without_namespaces() {
    let (tmp, tar, project) = scratch();
    let store = tmp.path().join("store");
    import(&mut flense(&store), &tar);
    fs::write(
        project.join(".pipeline/config.yaml"),
        "pipelines:\n  test:\n    blubberfile: blubber.yaml\n    stages:\n      - name: make\n        build: built\n        run: true\n        copy: [{source: /srv/app/upper.txt, destination: out/upper.txt}]\n",
    )
    .unwrap();
    let out = output(filtered(&store).args(["pipeline", "-C"]).arg(&project));
    let stderr = stderr_of(&out);
    assert!(
        out.status.success(),
        "{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        fs::read_to_string(project.join("out/upper.txt")).unwrap(),
        "SHOUT\n"
    );
    // --isolation reaches the stages' builds: namespaces asked for, and refused.
    let out = output(
        filtered(&store)
            .args(["pipeline", "--isolation", "namespace", "-C"])
            .arg(&project),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot create user namespaces"), "{text}");
}
