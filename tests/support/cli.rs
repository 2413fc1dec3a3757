//! Running the `flense` binary from tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the `flense` binary built for these tests.
pub fn flense_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flense"))
}

/// A `flense` command with `--root` set to `store_root` and no inherited `FLENSE_ROOT`.
pub fn flense(store_root: &Path) -> Command {
    let mut cmd = Command::new(flense_bin());
    cmd.env_remove("FLENSE_ROOT").arg("--root").arg(store_root);
    cmd
}

/// Runs a command and returns its output; panics with the command line if it cannot start.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command, asserts it exited 0, and returns its output.
pub fn ok_output(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command, asserts it exited 0, and returns its stdout as text.
pub fn ok_stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&ok_output(cmd).stdout).into_owned()
}

/// `flense build test -q EXTRA... -C PROJECT` in the store at `root`, asserted to
/// succeed; returns the printed image digest.
pub fn build_test_variant(root: &Path, project: &Path, extra: &[&str]) -> String {
    let out = ok_stdout(
        flense(root)
            .args(["build", "test", "-q"])
            .args(extra)
            .arg("-C")
            .arg(project),
    );
    out.trim().to_string()
}
