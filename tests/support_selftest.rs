//! Checks the shared test support itself: the unprivileged user really is unprivileged.

mod support;

use std::process::Command;

#[test]
fn test_user_runs_commands_without_root() {
    let (uid, _) = support::users::test_user();
    assert_ne!(uid, 0);
    let id = std::path::Path::new("/usr/bin/id");
    let out = support::users::as_test_user(id).arg("-u").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), uid.to_string());
    let out = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "tests run as root"
    );
}
