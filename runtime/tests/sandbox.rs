//! The sandbox itself: exit codes, signals, identity, isolation, timeouts. Each test runs
//! as root and again as the unprivileged test user.

mod support;

use std::time::Duration;

use flense_runtime::{ExitStatus, IdMode, Mount, Network, Overlay, RootFs, Sandbox, Stdio};
use support::*;

#[test]
fn exit_codes_and_signals_propagate() {
    let tmp = scratch();
    busybox_rootfs(tmp.path());
    let root = dir_root(tmp.path(), false);
    let (status, _, _) = run_capture(&mut sh(root.clone(), "exit 7"));
    assert_eq!(status, ExitStatus::Exited(7));
    let (status, _, _) = run_capture(&mut sh(root.clone(), "kill -TERM $$; sleep 5"));
    assert_eq!(status, ExitStatus::Signaled(15));
    assert_eq!(status.code(), 143);
    let err = Sandbox::new(root, ["no-such-program"])
        .env("PATH", "/bin")
        .spawn()
        .expect_err("a missing program must fail to start");
    assert!(err.to_string().contains("no-such-program"), "{err}");
    rerun_as_test_user("exit_codes_and_signals_propagate", &[]);
}

#[test]
fn env_cwd_hostname_and_ids_are_as_asked() {
    let tmp = scratch();
    busybox_rootfs(tmp.path());
    let script = "echo $GREETING; pwd; hostname; id -u; id -g";
    let mut sandbox = sh(dir_root(tmp.path(), false), script)
        .env("GREETING", "hello world")
        .cwd("/tmp")
        .hostname("boxy")
        .user(1000, 1001);
    let (status, out, child) = run_capture(&mut sandbox);
    assert!(status.success(), "{status:?}");
    assert_eq!(out, "hello world\n/tmp\nboxy\n1000\n1001\n");
    if is_user_run() {
        assert_ne!(child.id_mode(), IdMode::Root);
    } else {
        assert_eq!(child.id_mode(), IdMode::Root);
    }
    // Single mode maps the caller straight to the asked user, root included.
    for (uid, gid) in [(0, 0), (33, 33)] {
        let mut sandbox = sh(dir_root(tmp.path(), false), "id -u; id -g")
            .user(uid, gid)
            .id_mode(if is_user_run() {
                IdMode::Single
            } else {
                IdMode::Root
            });
        let (status, out, _) = run_capture(&mut sandbox);
        assert!(status.success());
        assert_eq!(out, format!("{uid}\n{gid}\n"));
    }
    rerun_as_test_user("env_cwd_hostname_and_ids_are_as_asked", &[]);
}

#[test]
fn only_the_sandbox_processes_are_visible() {
    let tmp = scratch();
    busybox_rootfs(tmp.path());
    let (status, out, _) = run_capture(&mut sh(
        dir_root(tmp.path(), false),
        "echo $$; ps -o pid | tail -n +2 | wc -l",
    ));
    assert!(status.success());
    let lines: Vec<&str> = out.lines().collect();
    // PID 1 is the sandbox's init, the shell is PID 2; ps sees init, sh, ps (and the
    // pipeline's tail and wc).
    assert_eq!(lines[0], "2", "{out}");
    let count: u32 = lines[1].trim().parse().unwrap();
    assert!(count <= 5, "ps saw {count} processes:\n{out}");
    rerun_as_test_user("only_the_sandbox_processes_are_visible", &[]);
}

#[test]
fn orphans_are_reaped() {
    let tmp = scratch();
    busybox_rootfs(tmp.path());
    // The inner shell exits at once, so its background child is re-parented to PID 1;
    // when that child exits, only PID 1 can reap it.
    let script = r#"
        sh -c 'sleep 0.2 &'
        for i in $(seq 100); do
            sleep 0.1
            if ! ps -o stat,comm | grep -q sleep && ! ps -o stat | grep -q Z; then
                echo clean; exit 0
            fi
        done
        ps -o pid,stat,comm; exit 1"#;
    let (status, out, _) = run_capture(&mut sh(dir_root(tmp.path(), false), script));
    assert!(status.success(), "{out}");
    assert_eq!(out, "clean\n");
    rerun_as_test_user("orphans_are_reaped", &[]);
}

#[test]
fn a_timeout_kills_the_whole_tree() {
    let tmp = scratch();
    busybox_rootfs(tmp.path());
    let marker = format!("{}", 900000 + std::process::id() % 90000);
    let script = format!("sleep {marker} & sleep {marker}; echo never");
    let mut sandbox = sh(dir_root(tmp.path(), false), &script).timeout(Duration::from_millis(500));
    let (status, out, _) = run_capture(&mut sandbox);
    assert_eq!(status, ExitStatus::TimedOut);
    assert_eq!(out, "");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.trim() != format!("sleep {marker}"),
            "process {:?} survived the timeout",
            entry.file_name()
        );
    }
    rerun_as_test_user("a_timeout_kills_the_whole_tree", &[]);
}

#[test]
fn the_sandbox_cannot_write_outside_its_root_and_mounts() {
    let tmp = scratch();
    let rootfs = tmp.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let host_ro = tmp.path().join("ro");
    let host_rw = tmp.path().join("rw");
    std::fs::create_dir(&host_ro).unwrap();
    std::fs::write(host_ro.join("given"), "data\n").unwrap();
    let state = tmp.path().join("state");
    let script = r#"
        cat /data/given
        echo x > /data/new 2>/dev/null && echo wrote-ro
        echo cached > /cache/file
        echo scratch > /scratch/file && cat /scratch/file
        echo y > /etc/hosts 2>/dev/null && echo wrote-hosts
        ls /.flense-oldroot 2>/dev/null && echo saw-host-root
        echo z > /root/inside
        true"#;
    let mut sandbox = sh(
        RootFs::Overlay(Overlay::new(vec![rootfs.clone()], &state)),
        script,
    )
    .mount(Mount::Bind {
        src: host_ro.clone(),
        dst: "/data".into(),
        readonly: true,
    })
    .mount(Mount::Cache {
        src: host_rw.clone(),
        dst: "/cache".into(),
    })
    .mount(Mount::Tmpfs {
        dst: "/scratch".into(),
        size: Some(1 << 20),
    });
    let (status, out, child) = run_capture(&mut sandbox);
    assert!(status.success(), "{status:?} {out}");
    assert_eq!(out, "data\nscratch\n");
    assert!(!host_ro.join("new").exists());
    assert_eq!(
        std::fs::read_to_string(host_rw.join("file")).unwrap(),
        "cached\n"
    );
    // The lower layer is untouched; the write went to the upper directory.
    assert!(!rootfs.join("root/inside").exists());
    assert!(state.join("upper/root/inside").exists());
    let paths: Vec<String> = child
        .diff((0, 0))
        .unwrap()
        .iter()
        .map(|e| e.path.display().to_string())
        .collect();
    assert_eq!(
        paths,
        ["root", "root/inside"],
        "mount points must not be captured"
    );
    rerun_as_test_user("the_sandbox_cannot_write_outside_its_root_and_mounts", &[]);
}

#[test]
fn network_none_has_only_loopback() {
    let tmp = scratch();
    busybox_rootfs(tmp.path());
    let script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip link show lo | head -1";
    let mut sandbox = sh(dir_root(tmp.path(), false), script).network(Network::None);
    let (status, out, _) = run_capture(&mut sandbox);
    assert!(status.success(), "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("lo"), "{out}");
    let lo = lines.next().unwrap_or_default();
    assert!(lo.contains("UP"), "lo is not up: {out}");
    assert_eq!(lines.next(), None, "more than lo: {out}");
    rerun_as_test_user("network_none_has_only_loopback", &[]);
}

#[test]
fn host_files_are_visible_but_not_captured() {
    let tmp = scratch();
    let rootfs = tmp.path().join("rootfs");
    busybox_rootfs(&rootfs);
    std::fs::remove_dir_all(rootfs.join("proc")).unwrap();
    let script = "test -s /etc/resolv.conf && test -s /etc/hosts && test -c /dev/null \
                  && test -d /proc/self && test -d /sys/kernel && echo ok > /dev/null";
    let mut sandbox = Sandbox::new(
        RootFs::Overlay(Overlay::new(vec![rootfs], tmp.path().join("state"))),
        ["/bin/sh", "-c", script],
    )
    .stdout(Stdio::Null);
    let mut child = sandbox.spawn().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(child.diff((0, 0)).unwrap(), vec![]);
    rerun_as_test_user("host_files_are_visible_but_not_captured", &[]);
}

#[test]
fn limits_groups_stdio_files_and_devices() {
    let tmp = scratch();
    let rootfs = tmp.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let out_path = tmp.path().join("out.txt");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let user_run = is_user_run();
    let script = "ulimit -n; id -G; test -c /dev/pts/ptmx && test -L /dev/ptmx && echo pts; \
                  awk '$5 == \"/sys\" { print $6 }' /proc/self/mountinfo | cut -d, -f1; \
                  echo hi > /dev/null && head -c 4 /dev/zero | wc -c";
    let mut sandbox = Sandbox::new(dir_root(&rootfs, false), ["/bin/sh", "-c", script])
        .env("PATH", "/bin")
        .rlimit(libc_rlimit_nofile(), 64, 64)
        .groups(vec![10, 20])
        .stdout(Stdio::File(out_file));
    let mut child = sandbox.spawn().unwrap();
    assert!(child.wait().unwrap().success());
    let out = std::fs::read_to_string(&out_path).unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("64"));
    let groups = lines.next().unwrap();
    if user_run && child.id_mode() == IdMode::Single {
        assert_eq!(groups, "0", "single mode cannot set groups");
    } else {
        assert_eq!(groups, "0 10 20");
    }
    assert_eq!(lines.next(), Some("pts"));
    assert_eq!(lines.next(), Some("ro"), "/sys must be read-only: {out}");
    assert_eq!(lines.next().map(str::trim), Some("4"));
    rerun_as_test_user("limits_groups_stdio_files_and_devices", &[]);
}

/// `RLIMIT_NOFILE` on Linux.
fn libc_rlimit_nofile() -> u32 {
    7
}

#[test]
fn many_layers_fit_in_one_overlay_mount() {
    let tmp = scratch();
    let base = tmp
        .path()
        .join("a-directory-name-long-enough-to-overflow-one-page");
    let mut lowers = vec![base.join("layer-base-000000000000000000000000000000")];
    busybox_rootfs(&lowers[0]);
    for i in 1..80 {
        let layer = base.join(format!("layer-{i:03}-0000000000000000000000000000000"));
        std::fs::create_dir_all(layer.join("layers")).unwrap();
        std::fs::write(layer.join("layers").join(format!("{i:03}")), "").unwrap();
        lowers.push(layer);
    }
    let absolute: usize = lowers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        absolute > 4096,
        "the test needs lower paths longer than a page"
    );
    let mut sandbox = sh(
        RootFs::Overlay(Overlay::new(lowers, tmp.path().join("state"))),
        "ls /layers | wc -l",
    );
    let (status, out, _) = run_capture(&mut sandbox);
    assert!(status.success());
    assert_eq!(out.trim(), "79");
    rerun_as_test_user("many_layers_fit_in_one_overlay_mount", &[]);
}

#[test]
fn piped_stdin_and_kill() {
    use std::io::{Read, Write};
    let tmp = scratch();
    busybox_rootfs(tmp.path());
    let mut sandbox = Sandbox::new(dir_root(tmp.path(), false), ["tr", "a-z", "A-Z"])
        .env("PATH", "/bin")
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped);
    let mut child = sandbox.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "SHOUT\n");
    assert!(child.wait().unwrap().success());

    // SIGTERM to the sandbox reaches the command through PID 1.
    let mut sandbox = sh(dir_root(tmp.path(), false), "echo up; exec sleep 600");
    let mut child = sandbox.spawn().unwrap();
    let mut first = [0u8; 3];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    child.kill(15).unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Signaled(15));
    rerun_as_test_user("piped_stdin_and_kill", &[]);
}
