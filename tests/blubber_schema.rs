//! `schema/blubber.v4.schema.json` (the editor schema) agrees with flense: every file
//! of the corpus and of the examples that flense accepts validates against it, and
//! typical mistakes that flense refuses are refused by the schema too.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    let text = fs::read_to_string(root().join("schema/blubber.v4.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn yaml_to_json(text: &str) -> Value {
    serde_yaml::from_str(text).expect("YAML")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_file_flense_accepts_validates_against_the_schema() {
    let v = validator();
    let mut files = Vec::new();
    yaml_files(&root().join("fixtures/corpus/blubber"), &mut files);
    yaml_files(&root().join("fixtures/blubber-examples"), &mut files);
    files.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in files {
        if flense::config::load(&path).is_err() {
            continue;
        }
        let doc = yaml_to_json(&fs::read_to_string(&path).unwrap());
        let errs = errors(&v, &doc);
        if !errs.is_empty() {
            failures.push(format!("{}:\n  {}", path.display(), errs.join("\n  ")));
        }
        checked += 1;
    }
    assert!(checked > 150, "only {checked} accepted files");
    assert!(
        failures.is_empty(),
        "schema rejects accepted files:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_schema_refuses_what_flense_refuses() {
    let v = validator();
    let bad = [
        ("unknown key", "version: v4\nnewphone: whodis\n"),
        ("old version", "version: v3\n"),
        ("no version", "variants: {}\n"),
        (
            "removed python key",
            "version: v4\npython: { version: python3, use-system-flag: true }\n",
        ),
        ("bad variant name", "version: v4\nvariants:\n  go: {}\n"),
        ("null variant", "version: v4\nvariants:\n  foo:\n"),
        ("null runs", "version: v4\nvariants:\n  foo:\n    runs:\n"),
        ("null entrypoint", "version: v4\nentrypoint: ~\n"),
        (
            "null python version",
            "version: v4\npython: { version: ~ }\n",
        ),
        ("copies at the top", "version: v4\ncopies: [local]\n"),
        (
            "number in environment",
            "version: v4\nruns: { environment: { CGO_ENABLED: 0 } }\n",
        ),
        (
            "short env name",
            "version: v4\nruns: { environment: { A: b } }\n",
        ),
        ("root user", "version: v4\nruns: { as: root }\n"),
        ("negative uid", "version: v4\nlives: { uid: -1 }\n"),
        ("relative lives.in", "version: v4\nlives: { in: srv/app }\n"),
        (
            "two builder types in one entry",
            "version: v4\nbuilders: [{ node: {}, php: {} }]\n",
        ),
        (
            "unknown builder type",
            "version: v4\nbuilders: [{ ruby: {} }]\n",
        ),
        (
            "cache access",
            "version: v4\nbuilder: { caches: [{ destination: /x, access: sometimes }] }\n",
        ),
        (
            "poetry without operator",
            "version: v4\npython: { poetry: { version: 1.5.1 } }\n",
        ),
        (
            "apt source without distribution",
            "version: v4\napt: { sources: [{ url: http://x }] }\n",
        ),
        (
            "apt proxy scheme",
            "version: v4\napt: { proxies: [ftp://proxy] }\n",
        ),
        (
            "copy without from",
            "version: v4\nvariants:\n  foo: { copies: [{ source: a }] }\n",
        ),
        (
            "destination without source",
            "version: v4\nvariants:\n  foo: { copies: [{ from: local, destination: a }] }\n",
        ),
        (
            "duplicate copies",
            "version: v4\nvariants:\n  foo: { copies: [local, local] }\n",
        ),
    ];
    for (what, text) in bad {
        assert!(
            flense::config::load_str(text, "x.yaml").is_err(),
            "{what}: flense should refuse this too"
        );
        let doc = yaml_to_json(text);
        assert!(!v.is_valid(&doc), "{what}: the schema accepts {text:?}");
    }
}
