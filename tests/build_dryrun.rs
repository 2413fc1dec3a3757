//! `flense build --dry-run`: what it refuses (with the file, variant and instruction)
//! and what it reports (steps that would run, then cached ones after a real build),
//! without writing an image.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::cli::{flense, ok_stdout, output};
use support::fixtures::rootfs_tar;

/// A store with the busybox and bookworm fixtures and a context whose config is
/// `blubber`. Returns (store, context).
fn setup(tmp: &Path, blubber: &str) -> (PathBuf, PathBuf) {
    let store = tmp.join("store");
    for name in ["busybox", "bookworm"] {
        ok_stdout(
            flense(&store)
                .arg("import")
                .arg(rootfs_tar(name))
                .args(["--tag", &format!("localhost/{name}:latest")]),
        );
    }
    let ctx = tmp.join("ctx");
    fs::create_dir_all(ctx.join(".pipeline")).unwrap();
    fs::write(ctx.join(".pipeline/blubber.yaml"), blubber).unwrap();
    (store, ctx)
}

#[test]
fn a_missing_copy_source_is_named_with_file_variant_and_instruction() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, ctx) = setup(
        tmp.path(),
        "version: v4\nbase: localhost/busybox:latest\nvariants:\n  app:\n    copies:\n      \
         - from: local\n        source: present.txt\n        destination: /srv/\n      \
         - from: local\n        source: absent.txt\n        destination: /srv/\n",
    );
    fs::write(ctx.join("present.txt"), "here\n").unwrap();
    let out = output(
        flense(&store)
            .args(["build", "app", "--dry-run", "-C"])
            .arg(&ctx),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("blubber.yaml"), "{stderr}");
    assert!(stderr.contains("variant 'app'"), "{stderr}");
    assert!(stderr.contains("\"absent.txt\" not found"), "{stderr}");
    assert!(!stderr.contains("present.txt"), "{stderr}");

    // The same build with the file present: accepted, and nothing was written.
    fs::write(ctx.join("absent.txt"), "now here\n").unwrap();
    let before = ok_stdout(flense(&store).arg("images"));
    let stdout = ok_stdout(
        flense(&store)
            .args(["build", "app", "--dry-run", "-C"])
            .arg(&ctx),
    );
    assert!(stdout.contains("(would run)"), "{stdout}");
    assert_eq!(ok_stdout(flense(&store).arg("images")), before);

    // After a real build every layer step is cached.
    ok_stdout(flense(&store).args(["build", "app", "-q", "-C"]).arg(&ctx));
    let stdout = ok_stdout(
        flense(&store)
            .args(["build", "app", "--dry-run", "-C"])
            .arg(&ctx),
    );
    assert!(!stdout.contains("(would run)"), "{stdout}");
    assert!(stdout.contains("(cached)"), "{stdout}");
}

#[test]
fn a_missing_source_in_a_copies_from_image_names_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, ctx) = setup(
        tmp.path(),
        r#"version: v4
base: localhost/busybox:latest
variants:
  app:
    copies:
      - from: localhost/bookworm:latest
        source: /etc/debian_version
        destination: /srv/debian_version
      - from: localhost/bookworm:latest
        source: /etc/no-such-file
        destination: /srv/
"#,
    );
    let out = output(
        flense(&store)
            .args(["build", "app", "--dry-run", "-C"])
            .arg(&ctx),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("\"/etc/no-such-file\" not found in image localhost/bookworm:latest"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--from=localhost/bookworm:latest"),
        "{stderr}"
    );
}

#[test]
fn a_command_on_an_image_without_a_shell_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // A one-file image: nothing to run a shell line with.
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/motd"), "no shell here\n").unwrap();
    let tar = tmp.path().join("noshell.tar");
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs)
        .arg("etc")
        .status()
        .unwrap();
    assert!(status.success());
    let (store, ctx) = setup(
        tmp.path(),
        r#"version: v4
base: localhost/noshell:latest
variants:
  app:
    builder:
      command: [make, all]
"#,
    );
    ok_stdout(
        flense(&store)
            .arg("import")
            .arg(&tar)
            .args(["--tag", "localhost/noshell:latest"]),
    );
    let out = output(
        flense(&store)
            .args(["build", "app", "--dry-run", "-C"])
            .arg(&ctx),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("variant 'app'"), "{stderr}");
    assert!(stderr.contains("no /bin/sh"), "{stderr}");
}

#[test]
fn an_unresolvable_base_fails_naming_it_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, ctx) = setup(
        tmp.path(),
        "version: v4\nbase: 127.0.0.1:1/nothing/here:latest\nvariants:\n  app: {}\n",
    );
    let before = ok_stdout(flense(&store).arg("images"));
    let out = output(
        flense(&store)
            .args(["build", "app", "--dry-run", "-C"])
            .arg(&ctx),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:1/nothing/here:latest"),
        "{stderr}"
    );
    assert_eq!(ok_stdout(flense(&store).arg("images")), before);
}

#[test]
fn a_build_checks_copy_sources_before_running_any_step() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, ctx) = setup(
        tmp.path(),
        r#"version: v4
base: localhost/busybox:latest
variants:
  app:
    builder:
      command: [sh, -c, "echo BUILDER-RAN >&2"]
    copies:
      - from: local
        source: absent.txt
        destination: /srv/
"#,
    );
    let out = output(flense(&store).args(["build", "app", "-C"]).arg(&ctx));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("\"absent.txt\" not found"), "{stderr}");
    assert!(
        !stderr.contains("BUILDER-RAN"),
        "the builder before the copy did not run: {stderr}"
    );

    fs::write(ctx.join("absent.txt"), "present now\n").unwrap();
    let out = output(flense(&store).args(["build", "app", "-C"]).arg(&ctx));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("BUILDER-RAN"), "{stderr}");
}

#[test]
fn after_a_multi_stage_build_every_step_is_cached_and_a_change_shows_what_reruns() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, ctx) = setup(
        tmp.path(),
        r#"version: v4
base: localhost/busybox:latest
variants:
  build:
    builder:
      requirements: [input.txt]
      command: [sh, -c, "tr a-z A-Z < input.txt > upper.txt"]
  app:
    copies:
      - from: build
        source: upper.txt
        destination: upper.txt
      - from: local
        source: notes.txt
        destination: notes.txt
"#,
    );
    fs::write(ctx.join("input.txt"), "shout\n").unwrap();
    fs::write(ctx.join("notes.txt"), "v1\n").unwrap();
    let dry = |ctx: &Path| -> serde_json::Value {
        let out = ok_stdout(
            flense(&store)
                .args(["build", "app", "--dry-run", "--json", "-C"])
                .arg(ctx),
        );
        serde_json::from_str(&out).expect("one JSON object")
    };
    let status_of = |report: &serde_json::Value, variant: &str, needle: &str| -> String {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["variant"] == variant && s["instruction"].as_str().unwrap().contains(needle)
            })
            .unwrap_or_else(|| panic!("no {variant} step with {needle}: {report}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let before = dry(&ctx);
    assert_eq!(before["stages"], serde_json::json!(["build", "app"]));
    assert_eq!(status_of(&before, "build", "tr a-z A-Z"), "would-run");
    assert_eq!(status_of(&before, "app", "--from=build"), "would-run");

    ok_stdout(flense(&store).args(["build", "app", "-q", "-C"]).arg(&ctx));
    let after = dry(&ctx);
    assert!(
        after["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] != "would-run"),
        "{after}"
    );
    assert_eq!(status_of(&after, "build", "tr a-z A-Z"), "cached");
    assert_eq!(status_of(&after, "app", "--from=build"), "cached");
    assert_eq!(status_of(&after, "app", "notes.txt"), "cached");

    // A changed context file: only its copy would run again.
    fs::write(ctx.join("notes.txt"), "v2\n").unwrap();
    let changed = dry(&ctx);
    assert_eq!(status_of(&changed, "build", "tr a-z A-Z"), "cached");
    assert_eq!(status_of(&changed, "app", "--from=build"), "cached");
    assert_eq!(status_of(&changed, "app", "notes.txt"), "would-run");
}
