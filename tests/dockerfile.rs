//! `flense dockerfile`: the Dockerfile-equivalent renderings of spec §6, byte for byte.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::cli::{flense, ok_stdout, output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The golden text with the `<version>` placeholder filled in with flense's label value.
fn golden(name: &str) -> String {
    let path = fixtures().join("golden").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.replace(
        "<version>",
        &format!("flense-{}", env!("CARGO_PKG_VERSION")),
    )
}

/// `flense dockerfile VARIANT -f fixtures/plan/FILE [ARGS...]`, which must succeed.
fn render(file: &str, variant: &str, extra: &[&str]) -> String {
    let root = tempfile::tempdir().unwrap();
    let config = fixtures().join("plan").join(file);
    ok_stdout(
        flense(root.path())
            .arg("dockerfile")
            .arg(variant)
            .arg("-f")
            .arg(config)
            .args(extra),
    )
}

fn assert_text_eq(actual: &str, expected: &str) {
    if actual != expected {
        let mut report = String::new();
        for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
            if a != e {
                report = format!(
                    "first difference at line {}:\n  got:      {a}\n  expected: {e}",
                    i + 1
                );
                break;
            }
        }
        panic!("rendering differs ({report})\n--- got ---\n{actual}\n--- expected ---\n{expected}");
    }
}

#[test]
fn renders_6_1_defaults() {
    assert_text_eq(
        &render("defaults.blubber.yaml", "hello", &[]),
        &golden("6.1-defaults.Dockerfile"),
    );
}

#[test]
fn renders_6_2_node_builder() {
    assert_text_eq(
        &render("node.blubber.yaml", "hello", &[]),
        &golden("6.2-node.Dockerfile"),
    );
}

#[test]
fn renders_6_3_python_builder() {
    assert_text_eq(
        &render("python.blubber.yaml", "hello", &[]),
        &golden("6.3-python.Dockerfile"),
    );
}

#[test]
fn renders_6_3_python_poetry1() {
    assert_text_eq(
        &render("python-poetry1.blubber.yaml", "hello", &[]),
        &golden("6.3-python-poetry1.Dockerfile"),
    );
}

#[test]
fn renders_6_4_copies_into_scratch_with_dependency_stage_first() {
    assert_text_eq(
        &render("copies-to-scratch.blubber.yaml", "production", &[]),
        &golden("6.4-copies-to-scratch.Dockerfile"),
    );
}

#[test]
fn renders_6_5_apt_proxies_sources_and_signed_by() {
    assert_text_eq(
        &render("apt-merge.blubber.yaml", "build", &[]),
        &golden("6.5-apt.Dockerfile"),
    );
}

#[test]
fn renders_6_6_build_arguments_with_defaults_in_arg_lines() {
    // The ARG line keeps the config default; the --build-arg value applies at build time.
    assert_text_eq(
        &render(
            "build-arguments.blubber.yaml",
            "make",
            &["--build-arg", "MAKE_TARGET=bar"],
        ),
        &golden("6.6-build-arguments.Dockerfile"),
    );
}

/// The acceptance case: a Node project, `flense dockerfile` with no arguments in its
/// directory renders variant `test` of `.pipeline/blubber.yaml`.
#[test]
fn node_sample_defaults_to_variant_test_and_pipeline_file() {
    let root = tempfile::tempdir().unwrap();
    let text = ok_stdout(
        flense(root.path())
            .current_dir(fixtures().join("plan/node-app"))
            .arg("dockerfile"),
    );
    assert_text_eq(&text, &golden("node-app.Dockerfile"));
    let order = [
        "RUN (getent group \"$LIVES_GID\"",
        "WORKDIR \"/srv/app\"",
        "COPY --chown=$LIVES_UID:$LIVES_GID [\"package.json\", \"package-lock.json\", \"./\"]",
        "RUN npm install",
        "COPY --chown=$LIVES_UID:$LIVES_GID [\".\", \".\"]",
        "USER $RUNS_UID",
        "ENTRYPOINT [\"npm\", \"test\"]",
    ];
    let mut at = 0;
    for line in order {
        let found = text[at..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order in:\n{text}"));
        at += found + line.len();
    }
}

fn run_failing(args: &[&str], cwd: &Path) -> Output {
    let root = tempfile::tempdir().unwrap();
    output(flense(root.path()).current_dir(cwd).args(args))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_variant_is_invalid_input() {
    let file = fixtures().join("plan/defaults.blubber.yaml");
    let out = run_failing(
        &["dockerfile", "nosuchvariant", "-f", file.to_str().unwrap()],
        &fixtures(),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("nosuchvariant"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn invalid_config_is_invalid_input_and_names_the_file() {
    let file = fixtures().join("plan/examples/derived/09-two-letter-variant-name.blubber.yaml");
    let out = run_failing(
        &["dockerfile", "ab", "-f", file.to_str().unwrap()],
        &fixtures(),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("bad variant name"),
        "stderr: {}",
        stderr(&out)
    );
}

#[test]
fn missing_default_file_is_invalid_input() {
    let empty = tempfile::tempdir().unwrap();
    let out = run_failing(&["dockerfile"], empty.path());
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains(".pipeline/blubber.yaml"),
        "stderr: {}",
        stderr(&out)
    );
}

#[test]
fn malformed_build_arg_is_invalid_input() {
    let file = fixtures().join("plan/build-arguments.blubber.yaml");
    let out = run_failing(
        &[
            "dockerfile",
            "make",
            "-f",
            file.to_str().unwrap(),
            "--build-arg",
            "NOEQUALS",
        ],
        &fixtures(),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("NOEQUALS"),
        "stderr: {}",
        stderr(&out)
    );
}

#[test]
fn non_numeric_uid_build_arg_is_invalid_input() {
    let file = fixtures().join("plan/defaults.blubber.yaml");
    let out = run_failing(
        &[
            "dockerfile",
            "hello",
            "-f",
            file.to_str().unwrap(),
            "--build-arg",
            "LIVES_UID=abc",
        ],
        &fixtures(),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("LIVES_UID"),
        "stderr: {}",
        stderr(&out)
    );
}

/// The RUN/ENV lines of a variant of `variations.blubber.yaml` after `WORKDIR`.
fn variation(variant: &str) -> Vec<String> {
    let text = render("variations.blubber.yaml", variant, &[]);
    text.lines()
        .skip_while(|l| !l.starts_with("WORKDIR"))
        .skip(1)
        .filter(|l| !l.is_empty() && !l.starts_with("LABEL"))
        .map(str::to_string)
        .collect()
}

#[test]
fn node_variations_of_6_2() {
    let tail = [
        "USER $RUNS_UID",
        "ENV HOME=\"/home/$RUNS_AS\"",
        "ENV NODE_ENV=\"production\"",
    ];
    let copy = "COPY --chown=$LIVES_UID:$LIVES_GID [\"package.json\", \"./\"]";
    let expect = |runs: &[&str]| -> Vec<String> {
        let mut v = vec![copy.to_string()];
        v.extend(runs.iter().map(|s| s.to_string()));
        v.extend(tail.iter().map(|s| s.to_string()));
        v
    };
    assert_eq!(
        variation("node-production"),
        expect(&["RUN npm install \"--only=production\"", "RUN npm dedupe"])
    );
    assert_eq!(
        variation("node-ci-production"),
        expect(&["RUN npm ci \"--only=production\"", "RUN npm dedupe"])
    );
    assert_eq!(
        variation("node-dedupe"),
        expect(&[
            "RUN npm install \"--only=production\"",
            "RUN npm dedupe || echo \"WARNING: npm dedupe failed, continuing anyways\""
        ])
    );
    assert_eq!(
        variation("node-env-only"),
        [
            "USER $RUNS_UID",
            "ENV HOME=\"/home/$RUNS_AS\"",
            "ENV NODE_ENV=\"development\""
        ]
    );
}

#[test]
fn php_composer_install() {
    assert_eq!(
        variation("php-production")[..2],
        [
            "COPY --chown=$LIVES_UID:$LIVES_GID [\"composer.json\", \"composer.lock\", \"./\"]",
            "RUN composer install \"--no-scripts\" \"--no-dev\""
        ]
    );
    assert_eq!(
        variation("php-dev")[1],
        "RUN composer install \"--no-scripts\""
    );
}

#[test]
fn python_no_deps_pip2_and_custom_venv() {
    let no_deps = variation("python-no-deps");
    assert_eq!(
        no_deps[0],
        "COPY --chown=$LIVES_UID:$LIVES_GID [\"requirements.txt\", \"./\"]"
    );
    assert_eq!(
        no_deps[1],
        "COPY --chown=$LIVES_UID:$LIVES_GID [\"docs/requirements.txt\", \"docs/\"]"
    );
    assert!(no_deps.contains(
        &"RUN python3.11 \"-m\" \"pip\" \"install\" \"--no-deps\" \"-r\" \"requirements.txt\" \"-r\" \"docs/requirements.txt\"".to_string()
    ));
    // pip check runs after the switch to the runs user.
    let user = no_deps.iter().position(|l| l == "USER $RUNS_UID").unwrap();
    assert_eq!(no_deps[user + 2], "RUN python3.11 \"-m\" \"pip\" \"check\"");

    let py2 = variation("python2");
    assert!(py2.contains(&"RUN python2.7 \"-m\" \"pip\" \"install\" \"-U\" \"setuptools!=60.9.0\" && python2.7 \"-m\" \"pip\" \"install\" \"-U\" \"wheel\" \"tox\" \"pip<21\"".to_string()), "{py2:#?}");

    // A short `version` does not crash (Blubber v1.8.0 panics: quirk Q7); the venv moves.
    let venv = variation("python-venv");
    assert_eq!(
        venv[..2],
        [
            "RUN python \"-m\" \"venv\" \"/srv/venv\"",
            "ENV PATH=\"/srv/venv/bin:$PATH\" VIRTUAL_ENV=\"/srv/venv\""
        ]
    );
}

#[test]
fn multi_line_commands_and_scripts_render_as_heredocs() {
    let text = render("multiline.blubber.yaml", "build", &[]);
    assert!(
        text.contains("RUN <<'EOF'\necho one\necho two\nEOF\n"),
        "{text}"
    );
    assert!(
        text.contains("RUN <<'EOF'\n#!/bin/sh\necho three\nEOF\n"),
        "{text}"
    );
}
