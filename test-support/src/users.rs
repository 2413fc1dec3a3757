//! An unprivileged user for rootless tests. CI runs as root; every rootless claim is
//! also tested as this user, through `setpriv`, so no setuid helper or PAM is involved.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Name of the unprivileged test user.
pub const TEST_USER: &str = "flense-test";

/// The test user's (uid, gid), creating the user if it does not exist yet.
/// Panics when not run as root (the tests need root to create the user).
pub fn test_user() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        if lookup().is_none() {
            // Several test processes may race here; "already exists" (9) is fine.
            let status = Command::new("useradd")
                .args(["--create-home", "--shell", "/bin/sh", TEST_USER])
                .status()
                .expect("useradd must exist (tests run as root)");
            assert!(
                status.success() || status.code() == Some(9),
                "useradd {TEST_USER} failed: {status}"
            );
        }
        lookup().expect("test user exists after useradd")
    })
}

fn lookup() -> Option<(u32, u32)> {
    let out = Command::new("id").args(["-u", TEST_USER]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", TEST_USER]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

/// A copy of `program` that the test user can execute: the checkout may sit below a
/// directory only root can enter (e.g. /root), so the binary is copied to a world-readable
/// temporary directory. The directory is named after the program's path and the copy
/// after its build (size, mtime): the test processes of one build share one copy, and the
/// first test of a new build removes the copies of older builds (a process started from
/// one keeps running), so rebuilds do not fill /tmp.
pub fn reachable_copy(program: &Path) -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(program).expect("stat program");
    fn hash_of(value: impl Hash) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        value.hash(&mut h);
        h.finish()
    }
    let place = hash_of(program);
    let build = hash_of((meta.len(), meta.mtime(), meta.mtime_nsec()));
    let place = std::env::temp_dir().join(format!("flense-test-bin-{place:016x}"));
    let dir = place.join(format!("{build:016x}"));
    for d in [&place, &dir] {
        std::fs::create_dir_all(d).expect("create test bin dir");
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let dest = dir.join(program.file_name().expect("program has a file name"));
    if !dest.exists() {
        let tmp = dir.join(format!(
            ".tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::copy(program, &tmp).expect("copy program for the test user");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&tmp, &dest).expect("rename program copy");
        let older = std::fs::read_dir(&place).into_iter().flatten().flatten();
        for entry in older.filter(|e| e.path() != dir) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    dest
}

/// Wraps `program args...` so it runs as the test user (with its own HOME and an otherwise
/// empty environment: add what the test needs with `.env`), via `setpriv`.
pub fn as_test_user(program: &Path) -> Command {
    let (uid, gid) = test_user();
    let home = format!("/home/{TEST_USER}");
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--init-groups")
        .arg(reachable_copy(program))
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", &home)
        .env("USER", TEST_USER);
    cmd
}

/// Makes `dir` (and everything below it) owned by the test user, so that it can be used
/// as that user's scratch space.
pub fn give_to_test_user(dir: &Path) {
    let (uid, gid) = test_user();
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .expect("chown");
    assert!(status.success(), "chown -R {} failed", dir.display());
}
