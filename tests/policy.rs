//! Blubber's `--policy` on `flense validate`, `dockerfile` and `plan`: enforcements
//! checked after the target and its copies dependencies are expanded, Blubber's
//! violation text, exit 2; policies from files and over http.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::cli::{flense, ok_stdout, output};

fn unit(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/blubber-examples/unit")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    let root = tempfile::tempdir().unwrap();
    output(flense(root.path()).args(args))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn target() -> String {
    unit("30-policy-target.blubber.yaml").display().to_string()
}

#[test]
fn violation_in_an_included_base_fails_the_target() {
    let policy = unit("30-policy.policy.yaml").display().to_string();
    let out = run(&[
        "dockerfile",
        "production",
        "-f",
        &target(),
        "--policy",
        &policy,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "no Dockerfile on a violation");
    let want = format!(
        "Configuration fails policy check against:\npolicy: {policy}\nviolation: value: \"foo\", for \"variants.production.base\" violates policy rule \"omitempty,startswith=docker-registry.wikimedia.org\""
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
}

#[test]
fn copies_dependencies_are_expanded_but_other_variants_stay_raw() {
    let policy = unit("30-policy.policy.yaml").display().to_string();
    let out = run(&["plan", "copier", "-f", &target(), "-p", &policy]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    // `production` is raw here (its base comes only through includes), so the first
    // enforcement passes and the second fails for the copies dependency `pred`.
    assert!(
        err.contains("value: \"foo\", for \"variants.pred.base\" violates policy rule"),
        "{err}"
    );
    assert!(!err.contains("variants.production.base"), "{err}");
}

#[test]
fn a_passing_policy_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "enforcements:\n  - path: variants.production.runs.insecurely\n    rule: isfalse\n  - path: base\n    rule: startswith=docker-registry.wikimedia.org\n  - path: variants.production.runs.as\n    rule: ne=root\n",
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let with = ok_stdout(flense(root.path()).args([
        "dockerfile",
        "production",
        "-f",
        &target(),
        "--policy",
        policy.to_str().unwrap(),
    ]));
    let without =
        ok_stdout(flense(root.path()).args(["dockerfile", "production", "-f", &target()]));
    assert_eq!(with, without);
}

#[test]
fn validate_reports_every_violating_variant() {
    let policy = unit("30-policy.policy.yaml").display().to_string();
    let out = run(&["validate", "-f", &target(), "--policy", &policy]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for v in ["pred", "production", "copier"] {
        assert!(
            err.contains(&format!("variant \"{v}\": Configuration fails")),
            "{err}"
        );
    }
    assert!(
        !err.contains("variant \"dev\""),
        "dev's own base is not checked: {err}"
    );
    assert!(err.contains("fails policy"), "{err}");
}

#[test]
fn flags_and_numbers_print_like_go() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("blubber.yaml");
    std::fs::write(
        &config,
        "version: v4\nbase: docker-registry.wikimedia.org/bookworm\nvariants:\n  production:\n    runs: {insecurely: true}\n",
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "enforcements:\n  - {path: variants.production.runs.uid, rule: gte=1000}\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let out = run(&[
        "dockerfile",
        "production",
        "-f",
        c,
        "-p",
        policy.to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("value: \"%!s(uint=900)\""),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        &policy,
        "enforcements:\n  - {path: variants.production.runs.insecurely, rule: isfalse}\n",
    )
    .unwrap();
    let out = run(&[
        "dockerfile",
        "production",
        "-f",
        c,
        "-p",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("value: \"%!s(bool=true)\", for \"variants.production.runs.insecurely\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_policies_are_invalid_input_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "enforcements:\n  - path: base\n    rule: ne=root,frobnicate\n",
    )
    .unwrap();
    let out = run(&[
        "dockerfile",
        "production",
        "-f",
        &target(),
        "-p",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "{}:3:11: enforcements[0].rule \"ne=root,frobnicate\": unknown validation \"frobnicate\"",
            policy.display()
        )),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "dockerfile",
        "production",
        "-f",
        &target(),
        "-p",
        "/nonexistent/policy.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("loading policy /nonexistent/policy.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn policies_load_over_http() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = std::fs::read_to_string(unit("30-policy.policy.yaml")).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf).unwrap();
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(reply.as_bytes()).unwrap();
    });
    let uri = format!("http://127.0.0.1:{port}/policy.yaml");
    let out = run(&[
        "dockerfile",
        "production",
        "-f",
        &target(),
        "--policy",
        &uri,
    ]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("policy: {uri}\nviolation: value: \"foo\"")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn build_and_run_check_the_policy_before_anything_runs() {
    let policy = unit("30-policy.policy.yaml").display().to_string();
    let root = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    for verb in ["build", "run"] {
        let out = output(flense(root.path()).args([
            verb,
            "production",
            "-f",
            &target(),
            "-C",
            context.path().to_str().unwrap(),
            "--policy",
            &policy,
        ]));
        assert_eq!(out.status.code(), Some(2), "{verb}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("for \"variants.production.base\" violates policy rule"),
            "{verb}: {}",
            stderr(&out)
        );
    }
    // Nothing was pulled or built: the store has no image and no layer.
    let images = ok_stdout(flense(root.path()).args(["images", "--json"]));
    assert_eq!(images.trim(), "[]", "{images}");
}
