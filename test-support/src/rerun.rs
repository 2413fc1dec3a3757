//! Running a test's body again as the unprivileged test user (the test binary re-executes
//! itself through `setpriv`, so in-process APIs are exercised without root), with a busybox
//! root filesystem and scratch directories that user can read.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::users;

/// Environment variable that marks the re-executed, unprivileged run of a test.
pub const AS_USER_ENV: &str = "FLENSE_RUNTIME_TEST_AS_USER";

/// Environment variable naming the directory [`scratch`] directories go in (else /tmp).
pub const SCRATCH_ENV: &str = "FLENSE_RUNTIME_TEST_SCRATCH";

/// True inside the unprivileged re-run of a test.
pub fn is_user_run() -> bool {
    std::env::var_os(AS_USER_ENV).is_some()
}

/// Makes a busybox root filesystem at `dir` with the repository's fixture script.
pub fn busybox_rootfs(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/rootfs/busybox.sh");
    let status = Command::new("sh")
        .arg(script)
        .arg(dir)
        .status()
        .expect("run busybox.sh");
    assert!(
        status.success(),
        "busybox.sh failed (apt-get install busybox-static)"
    );
}

/// A scratch directory: under /tmp (or `$FLENSE_RUNTIME_TEST_SCRATCH`), readable by the
/// test user.
pub fn scratch() -> tempfile::TempDir {
    let parent = std::env::var_os(SCRATCH_ENV).unwrap_or_else(|| "/tmp".into());
    let dir = tempfile::Builder::new()
        .prefix("flense-rt-")
        .tempdir_in(parent)
        .expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

/// Runs the test named `name` (this test binary's own test) again as the unprivileged
/// user, with `extra_env`, asserts that it passed and returns its output. Does nothing
/// (and returns an empty string) in the re-run itself.
pub fn rerun_as_test_user(name: &str, extra_env: &[(&str, &str)]) -> String {
    if is_user_run() {
        return String::new();
    }
    let exe = std::env::current_exe().expect("current_exe");
    // The re-run's scratch directories go in one the test user owns, removed here as
    // root: the user cannot remove what its sandboxes left owned by subordinate IDs.
    let parent = tempfile::Builder::new()
        .prefix("flense-rt-user-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    users::give_to_test_user(parent.path());
    std::fs::set_permissions(
        parent.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut cmd = users::as_test_user(&exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(AS_USER_ENV, "1")
        .env(SCRATCH_ENV, parent.path());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run test as test user");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed as the unprivileged user:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.into_owned()
}
