//! Every variant of every accepted real-world config (`fixtures/corpus/blubber`,
//! outcomes in its `OUTCOMES.tsv`) compiles, and the plan keeps its invariants.

use flense::plan::{self, Instruction};

fn accepted_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus/blubber");
    let table = std::fs::read_to_string(dir.join("OUTCOMES.tsv")).unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let file = cols.next()?;
            (cols.next()? == "accepted").then(|| dir.join(file))
        })
        .collect()
}

fn check_invariants(plan: &plan::Plan, label: &str) {
    let text = plan::dockerfile::render(plan);
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(froms, plan.stages.len(), "{label}: one FROM per stage");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("LABEL blubber.variant=\"{}\"", plan.target)),
        "{label}: ends with the target's labels, got {last:?}"
    );
    for stage in &plan.stages {
        let scratch = stage.base.is_none();
        assert_eq!(
            scratch,
            stage.image.user.is_none(),
            "{label}: USER iff not scratch"
        );
        if let Some(user) = &stage.image.user {
            assert!(user.parse::<u32>().is_ok(), "{label}: numeric user {user}");
        }
        assert!(stage.image.working_dir.starts_with('/'), "{label}");
        for dep in &stage.depends_on_variants {
            let at = plan.stages.iter().position(|s| &s.variant == dep);
            let me = plan.stages.iter().position(|s| s.variant == stage.variant);
            assert!(at < me, "{label}: {dep} is built before {}", stage.variant);
        }
        for step in &stage.steps {
            if let Instruction::Run { context, .. }
            | Instruction::RunAll { context, .. }
            | Instruction::RunScript { context, .. } = &step.instruction
            {
                assert!(context.user.parse::<u32>().is_ok(), "{label}: {context:?}");
                assert!(context.workdir.starts_with('/'), "{label}: {context:?}");
            }
        }
    }
    serde_json::to_string(plan).unwrap();
}

#[test]
fn every_accepted_corpus_variant_compiles() {
    let files = accepted_files();
    assert!(
        files.len() > 100,
        "the corpus table lists {} files",
        files.len()
    );
    let mut variants = 0;
    for file in files {
        let config =
            flense::config::load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for name in config.variant_names() {
            let label = format!("{} {name}", file.display());
            let plan = plan::compile(&config, name, &Default::default())
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            check_invariants(&plan, &label);
            variants += 1;
        }
    }
    assert!(variants > 400, "only {variants} variants compiled");
}

#[test]
fn every_variant_of_the_upstream_examples_compiles() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/blubber-examples");
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["historical", "repo", "acceptance"] {
        for entry in walkdir::WalkDir::new(root.join(dir)) {
            let path = entry.unwrap().into_path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".yaml") && !name.starts_with("policy") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 36, "{} files", files.len());
    for file in files {
        let config =
            flense::config::load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for name in config.variant_names() {
            let label = format!("{} {name}", file.display());
            let plan = plan::compile(&config, name, &Default::default())
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            check_invariants(&plan, &label);
        }
    }
}
