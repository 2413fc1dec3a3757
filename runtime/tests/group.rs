//! Sandboxes sharing one network (a service and its client) and commands entering a
//! running sandbox. Each test runs as root and again as the unprivileged test user.

mod support;

use std::time::Duration;

use flense_runtime::{ExitStatus, IdMode, NetworkGroup, Sandbox, Stdio, User};
use support::*;

fn mode() -> IdMode {
    IdMode::Auto
}

#[test]
fn sandboxes_of_a_group_share_loopback_and_commands_enter_them() {
    let tmp = scratch();
    busybox_rootfs(tmp.path());
    std::fs::create_dir_all(tmp.path().join("www")).unwrap();
    std::fs::write(tmp.path().join("www/index.html"), "served\n").unwrap();
    let group = NetworkGroup::new(mode(), 0, 0).expect("create the shared network");
    let mut server = Sandbox::new(
        dir_root(tmp.path(), false),
        ["httpd", "-f", "-p", "8080", "-h", "/www"],
    )
    .env("PATH", "/bin")
    .stdout(Stdio::Null)
    .join(&group)
    .unwrap();
    let mut server = server.spawn().expect("start the server");
    // The readiness check enters the server's sandbox: it sees its processes.
    let env = [("PATH".to_string(), "/bin".to_string())];
    let ready = (0..50).any(|_| {
        let status = server
            .run_inside(
                &[
                    "sh".into(),
                    "-c".into(),
                    "pidof httpd && wget -q -O /dev/null http://127.0.0.1:8080/".into(),
                ],
                &env,
                &User::default(),
                None,
                Duration::from_secs(5),
            )
            .expect("run the check inside");
        std::thread::sleep(Duration::from_millis(100));
        status.success()
    });
    assert!(ready, "the server never listened");
    let missing = server.run_inside(
        &["no-such-check".into()],
        &env,
        &User::default(),
        None,
        Duration::from_secs(5),
    );
    assert!(missing.is_err(), "{missing:?}");
    let mut client = sh(
        dir_root(tmp.path(), false),
        "wget -q -O - http://127.0.0.1:8080/index.html",
    )
    .join(&group)
    .unwrap();
    let (status, out, _) = run_capture(&mut client);
    assert!(status.success(), "{status:?} {out}");
    assert_eq!(out, "served\n");
    // A sandbox outside the group does not see the server.
    let mut outsider = sh(
        dir_root(tmp.path(), false),
        "wget -q -O /dev/null http://127.0.0.1:8080/",
    )
    .network(flense_runtime::Network::None);
    let (status, _, _) = run_capture(&mut outsider);
    assert!(!status.success());
    server.kill(libc::SIGTERM).unwrap();
    let ended = server.wait_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        matches!(
            ended,
            Some(ExitStatus::Signaled(15) | ExitStatus::Exited(_))
        ),
        "{ended:?}"
    );
    rerun_as_test_user(
        "sandboxes_of_a_group_share_loopback_and_commands_enter_them",
        &[],
    );
}
