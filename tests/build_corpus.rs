//! The real-world Blubber corpus against the executor: every variant of every accepted
//! corpus file whose images (bases, `copies.from` images, mount images, of the variant
//! and of every variant it copies from) map to a fixture image through a registries
//! config is checked with `flense build V --dry-run`, which must accept it. The
//! fixtures are served by a real `docker-registry` and pulled once into one store shared
//! by every dry run; each file gets a context holding its copy sources as empty files.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use flense::image::reference::Reference;
use flense::plan::{CompileOptions, CopySource, Instruction, MountSource, Plan};
use support::cli::{flense, ok_stdout, output};
use support::fixtures::rootfs_tar;
use support::registry::TestRegistry;

/// Wikimedia image names (prefix rules of the registries config) and the fixture each
/// maps to; the longest matching prefix wins, as in flense's rewrites.
const MAPPINGS: &[(&str, &str)] = &[
    ("docker-registry.wikimedia.org/nodejs", "nodejs-devel"),
    (
        "docker-registry.wikimedia.org/buster-nodejs",
        "nodejs-devel",
    ),
    ("docker-registry.wikimedia.org/bookworm", "bookworm"),
    ("docker-registry.wikimedia.org/bullseye", "bookworm"),
    ("docker-registry.wikimedia.org/buster", "bookworm"),
    ("docker-registry.wikimedia.org/trixie", "bookworm"),
    ("docker-registry.wikimedia.org/python3", "bookworm"),
    ("docker-registry.wikimedia.org/wikimedia-", "bookworm"),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus/blubber")
}

/// The corpus files `OUTCOMES.tsv` lists as accepted.
fn accepted_files() -> Vec<PathBuf> {
    let table = fs::read_to_string(corpus_dir().join("OUTCOMES.tsv")).expect("OUTCOMES.tsv");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (cols.len() == 3 && cols[1] == "accepted").then(|| corpus_dir().join(cols[0]))
        })
        .collect()
}

/// The fixture and tag an image reference maps to, or `None` when no rule matches or
/// the reference is pinned by digest (a fixture cannot have that digest).
fn mapped(reference: &str) -> Option<(&'static str, String)> {
    let parsed = Reference::parse(reference).ok()?;
    if parsed.digest().is_some() {
        return None;
    }
    let name = parsed.name();
    let (_, fixture) = MAPPINGS
        .iter()
        .filter(|(prefix, _)| name.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())?;
    Some((fixture, parsed.tag().unwrap_or("latest").to_string()))
}

/// Every image reference a plan uses: stage bases, copy sources, mount sources.
fn plan_images(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for stage in &plan.stages {
        out.extend(stage.base.clone());
        for step in &stage.steps {
            match &step.instruction {
                Instruction::CopyFrom {
                    from: CopySource::Image(r),
                    ..
                } => out.push(r.clone()),
                Instruction::Run { context, .. }
                | Instruction::RunAll { context, .. }
                | Instruction::RunScript { context, .. } => {
                    for m in &context.mounts {
                        if let MountSource::Image(r) = &m.from {
                            out.push(r.clone());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Context paths a plan copies from the build context (wildcard patterns left out:
/// an empty match is allowed).
fn local_sources(plan: &Plan) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for stage in &plan.stages {
        for step in &stage.steps {
            if let Instruction::Copy(spec) = &step.instruction {
                for s in &spec.sources {
                    if !s.contains(['*', '?', '[']) {
                        out.insert(s.clone());
                    }
                }
            }
        }
    }
    out
}

/// Creates `sources` in `ctx`: directories when written with a trailing `/` or when
/// another source lies below them, empty files otherwise.
fn populate_context(ctx: &Path, sources: &BTreeSet<String>) {
    // (normalized path, written as a directory)
    let rels: Vec<(String, bool)> = sources
        .iter()
        .map(|s| {
            let dir = s.ends_with('/') || s.ends_with("/.");
            let norm: PathBuf = Path::new(s)
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect();
            (norm.to_string_lossy().into_owned(), dir)
        })
        .filter(|(s, _)| !s.is_empty())
        .collect();
    for (rel, dir) in &rels {
        let is_dir = *dir
            || rels
                .iter()
                .any(|(other, _)| other.starts_with(&format!("{rel}/")));
        let path = ctx.join(rel);
        if is_dir {
            fs::create_dir_all(&path)
                .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        } else if !path.exists() {
            let parent = path.parent().unwrap();
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
            fs::write(&path, "").unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        }
    }
}

/// Imports the fixtures into a seed store and pushes each one to `registry` under every
/// tag in `wanted` (fixture -> tags).
fn serve_fixtures(
    registry: &TestRegistry,
    seed: &Path,
    wanted: &BTreeMap<&'static str, BTreeSet<String>>,
) {
    for (fixture, tags) in wanted {
        let local = format!("localhost/{fixture}:latest");
        ok_stdout(
            flense(seed)
                .arg("import")
                .arg(rootfs_tar(fixture))
                .args(["--tag", &local]),
        );
        for tag in tags {
            ok_stdout(
                flense(seed)
                    .args(["push", &local])
                    .arg(registry.image(&format!("{fixture}:{tag}"))),
            );
        }
    }
}

fn registries_config(registry: &TestRegistry) -> String {
    let mut text = String::new();
    for (prefix, fixture) in MAPPINGS {
        text.push_str(&format!(
            "[[rewrite]]\nfrom = \"{prefix}*\"\nto = \"{}\"\n\n",
            registry.image(fixture)
        ));
    }
    text
}

/// One variant to check.
struct Case {
    file: PathBuf,
    variant: String,
    sources: BTreeSet<String>,
}

#[test]
fn every_corpus_variant_on_fixture_bases_passes_the_dry_run() {
    let mut cases = Vec::new();
    let mut wanted: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let mut files_with_cases = BTreeSet::new();
    let mut skipped = 0;
    for file in accepted_files() {
        let cfg = flense::config::load(&file)
            .unwrap_or_else(|e| panic!("{}: accepted in OUTCOMES.tsv but: {e}", file.display()));
        for variant in cfg.variant_names() {
            let plan = flense::plan::compile(&cfg, variant, &CompileOptions::default())
                .unwrap_or_else(|e| panic!("{}: {variant} does not compile: {e}", file.display()));
            let images = plan_images(&plan);
            let Some(targets) = images.iter().map(|r| mapped(r)).collect::<Option<Vec<_>>>() else {
                skipped += 1;
                continue;
            };
            for (fixture, tag) in targets {
                wanted.entry(fixture).or_default().insert(tag);
            }
            files_with_cases.insert(file.clone());
            cases.push(Case {
                file: file.clone(),
                variant: variant.to_string(),
                sources: local_sources(&plan),
            });
        }
    }

    let registry = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    serve_fixtures(&registry, &tmp.path().join("seed"), &wanted);
    let config = tmp.path().join("registries.toml");
    fs::write(&config, registries_config(&registry)).unwrap();
    let store = tmp.path().join("store");

    let mut failures = Vec::new();
    let mut steps_checked = 0;
    for (i, case) in cases.iter().enumerate() {
        let ctx = tmp.path().join(format!("ctx-{i}"));
        fs::create_dir_all(&ctx).unwrap();
        populate_context(&ctx, &case.sources);
        let out = output(
            flense(&store)
                .args(["build", &case.variant, "--dry-run", "--json", "-f"])
                .arg(&case.file)
                .arg("-C")
                .arg(&ctx)
                .arg("--registries-config")
                .arg(&config),
        );
        if !out.status.success() {
            failures.push(format!(
                "{} {}: exit {}\n{}",
                case.file.file_name().unwrap().to_string_lossy(),
                case.variant,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("--dry-run --json prints one object");
        let steps = report["steps"].as_array().expect("steps");
        assert!(
            steps.iter().all(|s| s["status"] != "cached"),
            "{}: nothing was built, so nothing can be cached",
            case.variant
        );
        steps_checked += steps.len();
    }
    eprintln!(
        "corpus dry run: {} files, {} variants checked ({} skipped: images without a \
         fixture), {} accepted, {} steps",
        files_with_cases.len(),
        cases.len(),
        skipped,
        cases.len() - failures.len(),
        steps_checked
    );
    assert!(
        failures.is_empty(),
        "{} of {} variants failed the dry run:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        cases.len() >= 300,
        "only {} variants map to fixtures; the mappings or the corpus changed",
        cases.len()
    );
}
