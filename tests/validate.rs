//! `flense validate` and `flense variants`: Blubber's error messages with file:line:col
//! and variant, exit code 2 for every invalid input (never a panic), exit 0 and an OK
//! line for valid files.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::cli::{flense, ok_stdout, output};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/blubber-examples")
}

fn example(rel: &str) -> PathBuf {
    examples().join(rel)
}

fn validate(file: &Path) -> Output {
    let store = tempfile::tempdir().unwrap();
    output(flense(store.path()).arg("validate").arg("-f").arg(file))
}

/// Runs `validate` on a file that must be invalid; returns stderr.
fn invalid(file: &Path) -> String {
    let out = validate(file);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "{}: panic:\n{stderr}",
        file.display()
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}: want exit 2\nstdout:\n{}\nstderr:\n{stderr}",
        file.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Writes `text` to a temp file and returns stderr of the failing validation.
fn invalid_text(text: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blubber.yaml");
    fs::write(&file, text).unwrap();
    let stderr = invalid(&file);
    (dir, file, stderr)
}

fn assert_lines(file: &Path, stderr: &str, want: &[&str]) {
    for line in want {
        let full = format!("{}:{line}", file.display());
        assert!(
            stderr.lines().any(|l| l == full),
            "missing line {full:?} in:\n{stderr}"
        );
    }
}

#[test]
fn upstream_unit_errors_have_blubber_text_position_and_variant() {
    let cases: &[(&str, &[&str])] = &[
        (
            "unit/01-unknown-field.blubber.yaml",
            &[r#"2:1: json: unknown field "newphone""#],
        ),
        (
            "unit/03-bad-variant-names.blubber.yaml",
            &[
                "3:3: variants: contains a bad variant name",
                "4:3: variants: contains a bad variant name",
            ],
        ),
        (
            "unit/05-includes-cycle.blubber.yaml",
            &[
                r#"3:21: variant "varA": processing includes for variant 'varA': Detected dependency graph cycle at 'varA'"#,
                r#"4:21: variant "varB": processing includes for variant 'varB': Detected dependency graph cycle at 'varB'"#,
            ],
        ),
        (
            "unit/14-builders-duplicate-type.blubber.yaml",
            &["4:3: builders: contains disallowed repetitions of entries"],
        ),
        (
            "unit/15-builders-with-standalone-node.blubber.yaml",
            &[
                r#"7:3: builders: is not allowed if any of field(s) "node php python builder" is declared/included"#,
            ],
        ),
        (
            "unit/16-builder-command-and-script.blubber.yaml",
            &[
                r#"6:16: variant "build": command: is not allowed if any of field(s) "script" is declared/included"#,
                r#"8:9: variant "build": script: is not allowed if any of field(s) "command" is declared/included"#,
            ],
        ),
        (
            "unit/22-includes-unknown.blubber.yaml",
            &[
                r#"4:28: variant "foo": includes[1]: references an unknown variant "foobuild""#,
                r#"4:38: variant "foo": includes[2]: references an unknown variant "foo_build""#,
            ],
        ),
        (
            "unit/23-copies-duplicates.blubber.yaml",
            &[r#"4:18: variant "foo": copies: cannot contain duplicates"#],
        ),
        (
            "unit/24-artifact-from-missing.blubber.yaml",
            &[r#"6:15: variant "foo": from: is required"#],
        ),
        (
            "unit/25-artifact-from-bad.blubber.yaml",
            &[
                r#"6:15: variant "foo": from: "foo bar" is not a valid image reference or known variant"#,
            ],
        ),
        (
            "unit/26-artifact-destination-without-source.blubber.yaml",
            &[r#"6:9: variant "foo": source: is required if "destination" is also set"#],
        ),
        (
            "unit/27-artifact-local-absolute-source.blubber.yaml",
            &[r#"6:17: variant "foo": source: path must be relative when "from" is "local""#],
        ),
        (
            "unit/28-artifact-local-dotdot-source.blubber.yaml",
            &[r#"6:17: variant "foo": source: path must be relative when "from" is "local""#],
        ),
        (
            "unit/29-artifact-exact-duplicates.blubber.yaml",
            &[r#"5:6: variant "foo": copies: cannot contain duplicates"#],
        ),
        (
            "derived/08-single-letter-env-name.blubber.yaml",
            &["4:5: environment: contains invalid environment variable names"],
        ),
        (
            "derived/09-two-letter-variant-name.blubber.yaml",
            &["3:3: variants: contains a bad variant name"],
        ),
        (
            "derived/10-command-then-script-conflict.blubber.yaml",
            &[
                r#"4:12: variant "build": command: is not allowed if any of field(s) "script" is declared/included"#,
                r#"9:9: variant "build": script: is not allowed if any of field(s) "command" is declared/included"#,
            ],
        ),
    ];
    for (rel, want) in cases {
        let file = example(rel);
        let stderr = invalid(&file);
        assert_lines(&file, &stderr, want);
        let reported = stderr
            .lines()
            .filter(|l| l.starts_with(&*file.to_string_lossy()))
            .count();
        assert_eq!(
            reported,
            want.len(),
            "{rel}: unexpected extra errors:\n{stderr}"
        );
        assert!(
            stderr.contains("is invalid"),
            "{rel}: no summary line:\n{stderr}"
        );
    }
}

#[test]
fn version_is_checked_before_unknown_fields() {
    let file = example("unit/02-bad-version.blubber.yaml");
    let stderr = invalid(&file);
    assert_lines(
        &file,
        &stderr,
        &[r#"1:10: version: config version "foo" is unsupported"#],
    );
    assert!(!stderr.contains("unknown field"), "{stderr}");
}

#[test]
fn unquoted_numbers_in_string_maps_are_type_errors() {
    let file = example("derived/03-env-number-rejected.blubber.yaml");
    let stderr = invalid(&file);
    assert!(
        stderr.contains(&format!(
            "{}:7:22: variant \"build\": json: cannot unmarshal number into Go struct field variants.build.runs.environment.CGO_ENABLED of type string",
            file.display()
        )),
        "{stderr}"
    );
}

#[test]
fn null_values_are_refused_where_blubbers_schema_refuses_them() {
    // (value as written, its JSON type in Blubber's schema, column of the value)
    let cases = [
        ("runs: ~", "object", 11),
        ("runs:", "object", 5),
        ("lives: null", "object", 12),
        ("copies: ~", "array", 13),
        ("entrypoint: ~", "array", 17),
        ("node: ~", "object", 11),
    ];
    for (value, kind, col) in cases {
        let text = format!(
            "version: v4\nbase: debian\nvariants:\n  web:\n    {value}\n    base: debian\n"
        );
        let (_dir, file, stderr) = invalid_text(&text);
        let key = value.split(':').next().unwrap();
        assert_lines(
            &file,
            &stderr,
            &[&format!(
                "5:{col}: variant \"web\": jsonschema: '/variants/web/{key}' does not validate: expected {kind}, but got null"
            )],
        );
        if key == "copies" {
            continue; // only allowed inside a variant
        }
        let text = format!("version: v4\nbase: debian\n{value}\nvariants:\n  web: {{}}\n");
        let (_dir, file, stderr) = invalid_text(&text);
        assert_lines(
            &file,
            &stderr,
            &[&format!(
                "3:{}: jsonschema: '/{key}' does not validate: expected {kind}, but got null",
                col - 4
            )],
        );
    }
}

#[test]
fn null_values_are_accepted_where_blubbers_schema_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blubber.yaml");
    fs::write(
        &file,
        "version: v4\nbase: debian\nruns:\n  environment: {GRADLE_USER_HOME: ~}\n\
         arguments: {TARGET: ~}\nvariants:\n  web:\n    base: ~\n",
    )
    .unwrap();
    let out = validate(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_keys_inside_copies_items_are_rejected() {
    // Blubber ignores them (quirk Q9); flense refuses the typo instead of dropping it.
    let file = example("derived/06-unknown-keys-in-copies-ignored.blubber.yaml");
    let stderr = invalid(&file);
    assert_lines(
        &file,
        &stderr,
        &[r#"10:9: variant "prod": json: unknown field "destinaton""#],
    );
}

#[test]
fn removed_keys_fail_like_blubber_with_a_hint() {
    let (_d, file, stderr) = invalid_text(
        "version: v4\nsharedvolume: true\nvariants:\n  build:\n    artifacts:\n      - from: foo\n    python:\n      version: python3\n      use-system-flag: true\n",
    );
    assert!(
        stderr.contains(&format!(
            "{}:2:1: json: unknown field \"sharedvolume\" (",
            file.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("`copies`"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:5:5: variant \"build\": json: unknown field \"artifacts\" (",
            file.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:9:7: variant \"build\": json: unknown field \"use-system-flag\" (",
            file.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("use-system-site-packages"), "{stderr}");
}

#[test]
fn includes_and_copies_are_variant_only() {
    let (_d, file, stderr) =
        invalid_text("version: v4\nincludes: [foo]\ncopies: [local]\nvariants:\n  foo: {}\n");
    assert!(
        stderr.contains(&format!(
            "{}:2:1: json: unknown field \"includes\"",
            file.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:3:1: json: unknown field \"copies\"",
            file.display()
        )),
        "{stderr}"
    );
}

#[test]
fn invalid_yaml_names_the_position() {
    let (_d, file, stderr) = invalid_text("version: v4\nvariants:\n  foo: [a, b\n  bar: {}\n");
    let prefix = format!("{}:", file.display());
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .expect("an error line");
    assert!(line.contains("invalid YAML"), "{stderr}");
    let pos: Vec<&str> = line[prefix.len()..].splitn(3, ':').collect();
    assert!(
        pos[0].parse::<usize>().is_ok() && pos[1].parse::<usize>().is_ok(),
        "no line:col in {line}"
    );
}

#[test]
fn every_value_rule_is_reported_at_once() {
    let text = r#"version: v4
base: foo fighter
apt:
  packages: [libfoo, foo fighter]
  proxies:
    - url: bad://proxy.example
    - source: http://security.debian.org
  sources:
    - url: bad://security.debian.org/
      distribution: "123"
      components: [M]
node:
  env: foo bar
lives:
  in: /
  as: foo bar
runs:
  in: /foo/..
  as: root
  environment:
    "1FOO": bar
arguments:
  BAD-NAME: x
python:
  poetry:
    version: 1.5.1
variants:
  ok-variant:
    lives:
      as: fo
      in: foo/bar
    builder:
      caches:
        - id: x
"#;
    let (_d, file, stderr) = invalid_text(text);
    assert_lines(
        &file,
        &stderr,
        &[
            r#"2:7: base: "foo fighter" is not a valid image reference"#,
            r#"4:22: packages[default][1]: "foo fighter" is not a valid Debian package name"#,
            r#"6:12: url: "bad://proxy.example" is not a valid HTTP/HTTPS URL"#,
            "7:7: url: is required",
            r#"9:12: url: "bad://security.debian.org/" is not a valid HTTP/HTTPS URL"#,
            r#"10:21: distribution: "123" is not a valid Debian release name"#,
            r#"11:20: components[0]: "M" is not a valid Debian component name"#,
            r#"13:8: env: "foo bar" is not a valid Node environment name"#,
            r#"15:7: in: "/" is not a valid absolute non-root path"#,
            r#"16:7: as: "foo bar" is not a valid user name"#,
            r#"18:7: in: "/foo/.." is not a valid absolute non-root path"#,
            r#"19:7: as: "root" is not a valid user name"#,
            "21:5: environment: contains invalid environment variable names",
            "23:3: arguments: contains invalid environment variable names",
            r#"26:14: version: "1.5.1" is not a valid Python package version specification"#,
            r#"30:11: variant "ok-variant": as: "fo" is not a valid user name"#,
            r#"31:11: variant "ok-variant": in: "foo/bar" is not a valid absolute non-root path"#,
            r#"34:11: variant "ok-variant": destination: is required"#,
        ],
    );
}

#[test]
fn merged_conflicts_are_reported_for_the_variant_that_causes_them() {
    let (_d, file, stderr) = invalid_text(
        "version: v4\nbase: debian:bookworm\nnode:\n  requirements: [package.json]\nvariants:\n  build:\n    builders:\n      - custom:\n          command: [make]\n",
    );
    assert_lines(
        &file,
        &stderr,
        &[
            r#"8:7: variant "build": builders: is not allowed if any of field(s) "node php python builder" is declared/included"#,
        ],
    );
}

#[test]
fn yaml_1_1_booleans_are_booleans() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blubber.yaml");
    fs::write(
        &file,
        "version: v4\nbase: debian:bookworm\nruns: { insecurely: yes }\nnode: { use-npm-ci: on }\nvariants:\n  test: {}\n",
    )
    .unwrap();
    let out = validate(&file);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_d, file, stderr) =
        invalid_text("version: v4\nruns:\n  environment:\n    FOO: off\nvariants:\n  test: {}\n");
    assert!(
        stderr.contains(&format!(
            "{}:4:10: json: cannot unmarshal bool into Go struct field runs.environment.FOO of type string",
            file.display()
        )),
        "{stderr}"
    );
}

#[test]
fn hostile_inputs_exit_2_without_a_panic() {
    let mut bomb = String::from("version: v4\na: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9u8 {
        let (prev, cur) = ((b'a' + i - 1) as char, (b'a' + i) as char);
        let refs = vec![format!("*{prev}"); 10].join(", ");
        bomb.push_str(&format!("{cur}: &{cur} [{refs}]\n"));
    }
    let inputs: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("a list", "- 1\n- 2\n".into()),
        ("a scalar", "hello\n".into()),
        ("no version", "variants: {}\n".into()),
        ("numeric version", "version: 4\n".into()),
        ("null variant", "version: v4\nvariants:\n  foo:\n".into()),
        (
            "variants is a list",
            "version: v4\nvariants: [a, b]\n".into(),
        ),
        ("negative uid", "version: v4\nlives: { uid: -1 }\n".into()),
        (
            "huge uid",
            "version: v4\nlives: { uid: 99999999999 }\n".into(),
        ),
        ("float gid", "version: v4\nruns: { gid: 1.5 }\n".into()),
        ("tabs", "version: v4\n\tvariants: {}\n".into()),
        ("duplicate keys", "version: v4\nbase: a\nbase: b\n".into()),
        ("unknown anchor", "version: v4\nbase: *nope\n".into()),
        ("alias bomb", bomb),
        (
            "deep nesting",
            format!(
                "version: v4\nbase: {}{}\n",
                "[".repeat(3000),
                "]".repeat(3000)
            ),
        ),
        (
            "copies is a map",
            "version: v4\nvariants:\n  foo: { copies: { from: local } }\n".into(),
        ),
        (
            "builders entry is a list",
            "version: v4\nbuilders: [[1]]\n".into(),
        ),
        (
            "builders entry with two keys",
            "version: v4\nbuilders: [{ node: {}, php: {} }]\n".into(),
        ),
        (
            "empty builders entry",
            "version: v4\nbuilders: [{}]\n".into(),
        ),
        (
            "bad cache access",
            "version: v4\nbuilder: { caches: [{ destination: /x, access: sometimes }] }\n".into(),
        ),
        (
            "command is a map",
            "version: v4\nbuilder: { command: { a: b } }\n".into(),
        ),
    ];
    for (what, text) in inputs {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blubber.yaml");
        fs::write(&file, &text).unwrap();
        let stderr = invalid(&file);
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("{}:", file.display()))),
            "{what}: error does not name the file:\n{stderr}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blubber.yaml");
    fs::write(&file, [0xffu8, 0xfe, 0x00, 0x01]).unwrap();
    let stderr = invalid(&file);
    assert!(stderr.contains("not UTF-8"), "{stderr}");
}

#[test]
fn byte_order_mark_and_crlf_line_ends_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blubber.yaml");
    fs::write(
        &file,
        "\u{feff}version: v4\r\nvariants:\r\n  test:\r\n    base: debian\r\n",
    )
    .unwrap();
    let out = validate(&file);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_file_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = invalid(&dir.path().join("nope.yaml"));
    assert!(
        stderr.contains("nope.yaml: cannot read the file"),
        "{stderr}"
    );
}

#[test]
fn a_missing_or_non_utf8_file_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = invalid(&dir.path().join("nope.yaml"));
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );

    let file = dir.path().join("latin1.yaml");
    fs::write(&file, b"version: v4\nvariants:\n  caf\xe9: {}\n").unwrap();
    let stderr = invalid(&file);
    // Line 3, column 6: the first invalid byte (offset 27), after "  caf".
    assert!(
        stderr.contains("latin1.yaml:3:6: not UTF-8 text (byte 27 is not valid UTF-8)"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("not UTF-8").count(), 1, "{stderr}");

    // Columns count characters: the two-byte "é" before the bad byte is one column.
    fs::write(&file, b"version: v4\nbase: \"\xc3\xa9\xff\"\n").unwrap();
    let stderr = invalid(&file);
    assert!(stderr.contains("latin1.yaml:2:9: not UTF-8"), "{stderr}");
}

#[test]
fn valid_files_print_an_ok_line() {
    let store = tempfile::tempdir().unwrap();
    for rel in [
        "acceptance/01-basic-usage/04-includes.blubber.yaml",
        "acceptance/04-builders/06-builder-mounts-from-variant.blubber.yaml",
        "repo/pipeline.blubber.yaml",
        "historical/examples-blubber.yaml",
        "derived/12-copies-shorthand-variant.blubber.yaml",
    ] {
        let file = example(rel);
        let stdout = ok_stdout(flense(store.path()).arg("validate").arg("-f").arg(&file));
        assert!(
            stdout.starts_with(&format!("{}: OK (", file.display())),
            "{rel}: {stdout}"
        );
    }
}

#[test]
fn default_file_is_dot_pipeline_blubber_yaml() {
    let project = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    fs::create_dir(project.path().join(".pipeline")).unwrap();
    fs::write(
        project.path().join(".pipeline/blubber.yaml"),
        "version: v4\nbase: debian:bookworm\nvariants:\n  test: {}\n  build: {}\n",
    )
    .unwrap();
    let stdout = ok_stdout(
        flense(store.path())
            .current_dir(project.path())
            .arg("validate"),
    );
    assert_eq!(stdout, ".pipeline/blubber.yaml: OK (2 variants)\n");
    let stdout = ok_stdout(
        flense(store.path())
            .current_dir(project.path())
            .arg("variants"),
    );
    assert_eq!(stdout, "test\nbuild\n");
}

#[test]
fn variants_lists_names_in_file_order() {
    let store = tempfile::tempdir().unwrap();
    let file = example("repo/pipeline.blubber.yaml");
    let stdout = ok_stdout(flense(store.path()).arg("variants").arg("-f").arg(&file));
    let text = fs::read_to_string(&file).unwrap();
    // The variant names are the keys indented by two spaces under `variants:`.
    let body = &text[text.find("\nvariants:\n").expect("variants key")..];
    let want: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    assert!(want.len() > 3, "{want:?}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want);
}

#[test]
fn variants_of_an_invalid_file_exit_2() {
    let store = tempfile::tempdir().unwrap();
    let file = example("unit/01-unknown-field.blubber.yaml");
    let out = output(flense(store.path()).arg("variants").arg("-f").arg(&file));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field \"newphone\""));
}

#[test]
fn type_errors_and_rule_errors_are_reported_together_without_follow_ons() {
    let (_d, file, stderr) =
        invalid_text("version: v4\nvariants:\n  go:\n    base: 1\n    copies: [{from: 7}]\n");
    assert_lines(
        &file,
        &stderr,
        &[
            "3:3: variants: contains a bad variant name",
            r#"4:11: variant "go": json: cannot unmarshal number into Go struct field variants.go.base of type string (quote it to make it a string: YAML 1.1 reads unquoted numbers and yes/no/on/off as numbers and booleans)"#,
            r#"5:21: variant "go": json: cannot unmarshal number into Go struct field variants.go.copies[0].from of type string (quote it to make it a string: YAML 1.1 reads unquoted numbers and yes/no/on/off as numbers and booleans)"#,
        ],
    );
    // The undecodable `from` is not reported a second time as missing.
    assert!(!stderr.contains("from: is required"), "{stderr}");
    assert!(stderr.contains("is invalid (3 errors)"), "{stderr}");
}

#[test]
fn valid_but_suspicious_configs_get_warnings() {
    let store = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blubber.yaml");
    fs::write(
        &file,
        "version: v4\nvariants:\n  tiny:\n    apt: { packages: [curl] }\n    runs: { environment: { FOO: bar } }\n    copies: [local]\n",
    )
    .unwrap();
    let out = output(flense(store.path()).arg("validate").arg("-f").arg(&file));
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "{}:3:3: warning: variant \"tiny\": it has no base image, so apt, runs are ignored (only copies and entrypoint apply)",
            file.display()
        )
    );
    // Top-level settings are for the other variants: no warning for derived/01.
    let quiet = example("derived/01-scratch-ignores-common-config.blubber.yaml");
    let out = output(flense(store.path()).arg("validate").arg("-f").arg(&quiet));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    fs::write(
        &file,
        "version: v4\nbase: debian\nvariants:\n  build: {}\n  prod:\n    copies: [{ from: biuld, source: /srv/app/x }]\n",
    )
    .unwrap();
    let out = output(flense(store.path()).arg("validate").arg("-f").arg(&file));
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("variant \"prod\": \"biuld\" is not a variant, so it will be pulled as an image; did you mean \"build\"?"),
        "{stderr}"
    );
}
