//! Every real config in fixtures/corpus/pipeline/ and fixtures/pipeline-examples/ parses
//! and validates with a recorded outcome: OUTCOMES.tsv (file, strict-schema result,
//! flense result, frames of each pipeline). Any change fails the test; regenerate with
//! `FLENSE_BLESS=1 cargo test --test pipeline_corpus` and review the diff.

use std::path::{Path, PathBuf};

use flense::pipeline::graph::render_frames;
use flense::pipeline::model::{load, LoadOptions};
use flense::pipeline::PipelineError;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn configs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["corpus/pipeline", "pipeline-examples"] {
        for entry in walkdir::WalkDir::new(root().join(dir)).sort_by_file_name() {
            let entry = entry.unwrap();
            let p = entry.path();
            let name = p.file_name().unwrap().to_string_lossy();
            let is_config = if dir == "corpus/pipeline" {
                name.ends_with(".yaml")
            } else {
                name.ends_with("config.yaml") && !p.components().any(|c| c.as_os_str() == "schema")
            };
            if is_config {
                out.push(p.to_path_buf());
            }
        }
    }
    out
}

fn outcome(path: &Path, strict: bool) -> String {
    let opts = LoadOptions {
        strict,
        allowed_actions: None,
    };
    match load(path, &[], &opts) {
        Ok(cfg) => {
            let frames: Vec<String> = cfg
                .pipelines
                .iter()
                .map(|p| match p.frames() {
                    Ok(f) => format!("{}: {}", p.name, render_frames(&f)),
                    Err(e) => format!("{}: {e}", p.name),
                })
                .collect();
            format!("valid\t{}", frames.join(" | "))
        }
        Err(e) => {
            let kind = match &e {
                PipelineError::Yaml { .. } => "yaml-error",
                PipelineError::Schema { .. } => "schema-error",
                PipelineError::Validation { .. } => "validation-error",
                _ => "error",
            };
            let msg = e.to_string();
            let rel = root().display().to_string();
            let first = msg
                .lines()
                .nth(if kind == "yaml-error" { 0 } else { 1 })
                .unwrap_or("")
                .replace(&rel, "fixtures");
            format!("{kind}\t{}", first.trim_start_matches(" - "))
        }
    }
}

#[test]
fn corpus_outcomes_are_recorded() {
    let mut table = String::from("# file\tstrict (upstream schema)\tflense\tdetail\n");
    let (mut strict_valid, mut flense_valid, mut total) = (0, 0, 0);
    for p in configs() {
        let strict = outcome(&p, true);
        let relaxed = outcome(&p, false);
        total += 1;
        strict_valid += usize::from(strict.starts_with("valid"));
        flense_valid += usize::from(relaxed.starts_with("valid"));
        let strict_kind = strict.split('\t').next().unwrap().to_string();
        let rel = p.strip_prefix(root()).unwrap().display().to_string();
        table.push_str(&format!("{rel}\t{strict_kind}\t{relaxed}\n"));
    }
    table.push_str(&format!("# total {total}, valid under the upstream schema {strict_valid}, valid for flense {flense_valid}\n"));
    let path = root().join("corpus/pipeline/OUTCOMES.tsv");
    if std::env::var_os("FLENSE_BLESS").is_some() {
        std::fs::write(&path, &table).unwrap();
    }
    let recorded = std::fs::read_to_string(&path)
        .expect("OUTCOMES.tsv is committed (FLENSE_BLESS=1 writes it)");
    assert_eq!(
        recorded, table,
        "corpus outcomes changed; review and re-bless"
    );
}

#[test]
fn corpus_schema_totals_match_the_research() {
    let corpus: Vec<PathBuf> = configs()
        .into_iter()
        .filter(|p| p.starts_with(root().join("corpus")))
        .collect();
    assert_eq!(corpus.len(), 81);
    let invalid: Vec<String> = corpus
        .iter()
        .filter(|p| !outcome(p, true).starts_with("valid"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        invalid,
        vec![
            "labs-tools-WdTmCollab.yaml",
            "machinelearning-liftwing-inference-services__revscoring-editquality.yaml",
            "mediawiki-services-kartotherian__hist-8930cdf4d3.yaml",
            "mediawiki-services-kask__hist-7ac6780f29.yaml",
            "mediawiki-services-wikifeeds__hist-21522ab5a7.yaml",
        ]
    );
}

#[test]
fn broken_configs_fail_with_a_clear_message() {
    let c = root().join("corpus/pipeline");
    let yaml = outcome(
        &c.join("machinelearning-liftwing-inference-services__revscoring-editquality.yaml"),
        false,
    );
    assert!(
        yaml.starts_with("yaml-error\t") && yaml.contains("line"),
        "{yaml}"
    );
    let root_key = outcome(
        &c.join("mediawiki-services-wikifeeds__hist-21522ab5a7.yaml"),
        false,
    );
    assert!(
        root_key.contains("missing required key 'pipelines'"),
        "{root_key}"
    );
    let publish_type = outcome(
        &c.join("mediawiki-services-kartotherian__hist-8930cdf4d3.yaml"),
        false,
    );
    assert!(
        publish_type.contains("unknown key 'type'"),
        "{publish_type}"
    );
}
