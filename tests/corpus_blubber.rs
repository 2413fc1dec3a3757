//! The real-world Blubber corpus (`fixtures/corpus/blubber/`): every file is read,
//! every variant of every accepted file is expanded, and the outcome must match the
//! committed table `OUTCOMES.tsv` (file, accepted|rejected, reason). A panic, a new
//! file without a row, or any change of outcome or rejection reason fails the test.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use flense::config::{self, BuilderEntry, Problem};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus/blubber")
}

struct Row {
    outcome: String,
    reason: String,
}

fn outcomes() -> BTreeMap<String, Row> {
    let text = fs::read_to_string(corpus_dir().join("OUTCOMES.tsv")).expect("OUTCOMES.tsv");
    let mut rows = BTreeMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "OUTCOMES.tsv line {}: want 3 columns", i + 1);
        assert!(
            cols[1] == "accepted" || cols[1] == "rejected",
            "OUTCOMES.tsv line {}: bad outcome {:?}",
            i + 1,
            cols[1]
        );
        let previous = rows.insert(
            cols[0].to_string(),
            Row {
                outcome: cols[1].to_string(),
                reason: cols[2].to_string(),
            },
        );
        assert!(previous.is_none(), "OUTCOMES.tsv lists {} twice", cols[0]);
    }
    rows
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The reason code a rejection must start with in the table.
fn reason_code(problem: &Problem) -> String {
    match problem {
        Problem::CurrentVersion { .. } => "version:".into(),
        Problem::UnknownField { name, .. } => format!("unknown-field {name}:"),
        Problem::Yaml(_) => "yaml:".into(),
        other => format!("{other}"),
    }
}

/// Exercises everything a build would ask of an accepted file.
fn expand_everything(file: &str, cfg: &config::Config) {
    cfg.check_all()
        .unwrap_or_else(|e| panic!("{file}: check_all failed:\n{e}"));
    for name in cfg.variant_names() {
        let v = cfg
            .expand(name)
            .unwrap_or_else(|e| panic!("{file}: expanding {name} failed:\n{e}"));
        assert_eq!(v.name, name);
        assert!(
            !v.common.lives.dir.is_empty() && !v.common.runs.user.name.is_empty(),
            "{file}: {name}: defaults for lives/runs missing after expansion"
        );
        for copy in &v.expanded_copies {
            assert!(
                !copy.source.is_empty() && !copy.destination.is_empty(),
                "{file}: {name}: an expanded copy lacks source or destination: {copy:?}"
            );
        }
        let deps = cfg
            .copies_dependencies(name)
            .unwrap_or_else(|e| panic!("{file}: copies graph of {name} failed:\n{e}"));
        assert!(
            !deps.iter().any(|d| d == name),
            "{file}: {name} depends on itself"
        );
        let mut requirement_lists = Vec::new();
        if let Some(b) = &v.common.builder {
            requirement_lists.extend(b.requirements.clone());
        }
        requirement_lists.extend(v.common.node.requirements.clone());
        requirement_lists.extend(v.common.python.requirements.clone());
        requirement_lists.extend(v.common.php.requirements.clone());
        for e in &v.common.builders {
            match e {
                BuilderEntry::Custom(b) => requirement_lists.extend(b.requirements.clone()),
                BuilderEntry::Node(n) => requirement_lists.extend(n.requirements.clone()),
                BuilderEntry::Php(p) => requirement_lists.extend(p.requirements.clone()),
                BuilderEntry::Python(p) => requirement_lists.extend(p.requirements.clone()),
            }
        }
        for reqs in requirement_lists {
            let groups = config::group_requirements(&reqs);
            let sources: usize = groups.iter().map(|g| g.sources.len()).sum();
            assert_eq!(
                sources,
                reqs.len(),
                "{file}: {name}: grouping lost requirements"
            );
        }
    }
}

#[test]
fn every_corpus_file_matches_the_outcome_table() {
    let table = outcomes();
    let files = corpus_files();
    assert!(
        files.len() >= 150,
        "corpus looks incomplete: {} files",
        files.len()
    );
    let mut failures = Vec::new();
    let mut v4 = 0;
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(path).unwrap();
        if text.lines().any(|l| l.trim() == "version: v4") {
            v4 += 1;
        }
        let Some(row) = table.get(&file) else {
            failures.push(format!("{file}: no row in OUTCOMES.tsv"));
            continue;
        };
        let result = std::panic::catch_unwind(|| config::load(path));
        let loaded = match result {
            Ok(r) => r,
            Err(_) => {
                failures.push(format!("{file}: load panicked"));
                continue;
            }
        };
        match (loaded, row.outcome.as_str()) {
            (Ok(cfg), "accepted") => {
                if std::panic::catch_unwind(|| expand_everything(&file, &cfg)).is_err() {
                    failures.push(format!("{file}: expansion failed or panicked (see above)"));
                }
            }
            (Ok(_), _) => failures.push(format!("{file}: accepted, but the table says rejected")),
            (Err(e), "rejected") => {
                let code = reason_code(&e.errors[0].problem);
                if !row.reason.starts_with(&code) {
                    failures.push(format!(
                        "{file}: rejected for {code:?}, the table says {:?}",
                        row.reason
                    ));
                }
                for err in &e.errors {
                    assert!(err.pos.is_some(), "{file}: error without a position: {err}");
                }
            }
            (Err(e), _) => {
                failures.push(format!("{file}: rejected, the table says accepted:\n{e}"))
            }
        }
    }
    for name in table.keys() {
        if !files
            .iter()
            .any(|p| p.file_name().unwrap().to_string_lossy() == name.as_str())
        {
            failures.push(format!("{name}: in OUTCOMES.tsv but not in the corpus"));
        }
    }
    assert!(v4 >= 150, "expected the corpus's v4 files, found {v4}");
    assert!(
        failures.is_empty(),
        "corpus mismatches:\n{}",
        failures.join("\n")
    );
}

/// The CLI agrees with the table: exit 0 for accepted files, 2 for rejected ones, and
/// never a panic.
#[test]
fn cli_validate_exit_codes_match_the_table() {
    let table = outcomes();
    let store = tempfile::tempdir().unwrap();
    for path in corpus_files() {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let out = support::cli::output(
            support::cli::flense(store.path())
                .arg("validate")
                .arg("-f")
                .arg(&path),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{file}: panic:\n{stderr}");
        let want = if table[&file].outcome == "accepted" {
            0
        } else {
            2
        };
        assert_eq!(out.status.code(), Some(want), "{file}:\n{stderr}");
        if want == 2 {
            let located = format!("{}:", path.display());
            assert!(
                stderr.contains(&located),
                "{file}: error does not name the file:\n{stderr}"
            );
        }
    }
}

/// Damaged copies of real files (truncated anywhere, or with one line deleted) give
/// errors or configs, never a panic, and every error has a position or names the file.
#[test]
fn damaged_corpus_files_never_panic() {
    let mut cases = 0;
    for path in corpus_files().into_iter().step_by(6) {
        let text = fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut variants: Vec<String> = Vec::new();
        let cuts: Vec<usize> = (1..24).map(|i| text.len() * i / 24).collect();
        for cut in cuts {
            let cut = (0..=cut).rev().find(|c| text.is_char_boundary(*c)).unwrap();
            variants.push(text[..cut].to_string());
        }
        let lines: Vec<&str> = text.lines().collect();
        for skip in (0..lines.len()).step_by(3) {
            let damaged: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, l)| *l)
                .collect();
            variants.push(damaged.join("\n"));
        }
        for damaged in variants {
            cases += 1;
            let result = std::panic::catch_unwind(|| match config::load_str(&damaged, &name) {
                Ok(cfg) => {
                    let _ = cfg.check_all();
                    for v in cfg.variant_names() {
                        let _ = cfg.expand(v);
                        let _ = cfg.copies_dependencies(v);
                    }
                    let _ = cfg.warnings();
                }
                Err(errors) => {
                    assert!(!errors.errors.is_empty());
                    for e in &errors.errors {
                        assert_eq!(e.file, name);
                    }
                }
            });
            assert!(result.is_ok(), "{name}: panic on damaged input:\n{damaged}");
        }
    }
    assert!(cases > 500, "only {cases} damaged inputs");
}
