//! Helpers for the runtime tests: the shared re-run-as-test-user helpers, plus sandboxes
//! running `sh -c` on a directory root and capturing their output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use flense_runtime::{Child, ExitStatus, RootFs, Sandbox, Stdio};

pub use flense_test_support::rerun::*;

/// A sandbox on `rootfs` running `sh -c script`, with PATH set and stdout piped.
pub fn sh(root: RootFs, script: &str) -> Sandbox {
    Sandbox::new(root, ["/bin/sh", "-c", script])
        .env("PATH", "/bin")
        .stdout(Stdio::Piped)
}

/// Spawns, reads stdout to the end, waits.
pub fn run_capture(sandbox: &mut Sandbox) -> (ExitStatus, String, Child) {
    use std::io::Read;
    let mut child = sandbox.spawn().expect("spawn sandbox");
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).expect("read stdout");
    }
    let status = child.wait().expect("wait");
    (status, out, child)
}

/// A plain-directory root.
pub fn dir_root(path: &Path, writable: bool) -> RootFs {
    RootFs::Dir {
        path: PathBuf::from(path),
        writable,
    }
}
