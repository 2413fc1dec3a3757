//! `flense pipeline` end to end on the Node sample (`examples/node-service`, copied to a
//! temp dir) on the `nodejs-devel` fixture: the `test` pipeline runs its test and lint
//! stages in parallel and passes; a lint error fails the pipeline while the test stage
//! still passes and a later frame is skipped (summary, JUnit parsed as XML); the
//! `publish` pipeline pushes the production image to a real registry that `skopeo`
//! reads back; the stage logs stay out of the build context; and the passing pipeline
//! also passes as the unprivileged user.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::cli::{flense, flense_bin, ok_stdout, output};
use support::fixtures::{import_fixture, rootfs_tar};
use support::registry::TestRegistry;
use support::users::{as_test_user, give_to_test_user, reachable_copy};

const WMF_BASE: &str = "docker-registry.wikimedia.org/nodejs20-devel:latest";

/// The sample's `test` pipeline with a third stage in a later frame (after both).
const WITH_LATER_FRAME: &str = r#"pipelines:
  test:
    blubberfile: blubber.yaml
    stages:
      - name: test
      - name: lint
      - name: after
        build: production
    execution:
      - [test, after]
      - [lint, after]
"#;

/// A temp dir with a store and a copy of the sample, driven as root or as the test user.
struct Sample {
    dir: tempfile::TempDir,
    unprivileged: bool,
}

impl Sample {
    fn new(unprivileged: bool) -> Sample {
        let dir = tempfile::Builder::new()
            .prefix("flense-pipeline-node-")
            .tempdir_in("/tmp")
            .unwrap();
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node-service");
        for entry in walkdir::WalkDir::new(&from) {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(&from).unwrap();
            if rel.starts_with("node_modules") || rel.starts_with(".pipeline/logs") {
                continue;
            }
            let dest = dir.path().join("node-service").join(rel);
            if entry.file_type().is_dir() {
                fs::create_dir_all(&dest).unwrap();
            } else {
                fs::copy(entry.path(), &dest).unwrap();
            }
        }
        // Test flense's own default, not the example's `.dockerignore` line.
        let ignore = dir.path().join("node-service/.dockerignore");
        let text = fs::read_to_string(&ignore).unwrap();
        fs::write(&ignore, text.replace(".pipeline/logs/\n", "")).unwrap();
        let sample = Sample { dir, unprivileged };
        let root = sample.store();
        if unprivileged {
            let base = sample.dir.path().join("base.tar");
            fs::copy(rootfs_tar("nodejs-devel"), &base).unwrap();
            give_to_test_user(sample.dir.path());
            ok_stdout(
                sample
                    .flense()
                    .arg("import")
                    .arg(&base)
                    .args(["--tag", WMF_BASE]),
            );
        } else {
            let local = import_fixture(&root, "nodejs-devel");
            ok_stdout(flense(&root).args(["tag", &local, WMF_BASE]));
        }
        sample
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("node-service")
    }

    fn flense(&self) -> Command {
        if self.unprivileged {
            let mut cmd = as_test_user(&flense_bin());
            cmd.arg("--root").arg(self.store());
            cmd
        } else {
            flense(&self.store())
        }
    }

    /// `flense pipeline NAME --json -C <project> ARGS...`.
    fn pipeline(&self, name: &str, args: &[&str]) -> Run {
        let mut cmd = self.flense();
        cmd.args(["pipeline", name, "--json", "-C"])
            .arg(self.project())
            .args(args);
        if self.unprivileged {
            cmd.arg("--flense-bin").arg(reachable_copy(&flense_bin()));
        }
        Run(output(&mut cmd))
    }

    fn log(&self, name: &str) -> String {
        let path = self.project().join(".pipeline/logs").join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// The output of one `flense pipeline --json` run.
struct Run(Output);

impl Run {
    fn text(&self) -> String {
        format!(
            "status {}\nstdout:\n{}\nstderr:\n{}",
            self.0.status,
            String::from_utf8_lossy(&self.0.stdout),
            String::from_utf8_lossy(&self.0.stderr)
        )
    }

    fn events(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Position of the `event` (stage-start or stage-end) of `stage` in the stream.
    fn position(&self, event: &str, stage: &str) -> usize {
        self.events()
            .iter()
            .position(|e| e["event"] == event && e["stage"] == stage)
            .unwrap_or_else(|| panic!("no {event} of {stage}\n{}", self.text()))
    }

    /// Stage -> result from the closing summary event.
    fn results(&self) -> Vec<(String, String)> {
        let events = self.events();
        let summary = events
            .iter()
            .find(|e| e["event"] == "summary")
            .unwrap_or_else(|| panic!("no summary\n{}", self.text()));
        summary["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["stage"].as_str().unwrap().into(),
                    s["result"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    /// The image the stage built (its stage-end event).
    fn image(&self, stage: &str) -> String {
        let events = self.events();
        let end = &events[self.position("stage-end", stage)];
        end["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{end}"))
            .to_string()
    }
}

/// The stages started and ended in an order where each started before the other ended.
fn assert_overlapped(run: &Run, a: &str, b: &str) {
    assert!(
        run.position("stage-start", a) < run.position("stage-end", b)
            && run.position("stage-start", b) < run.position("stage-end", a),
        "{a} and {b} did not overlap\n{}",
        run.text()
    );
}

/// (stage, child element names) of each testcase of a JUnit file, parsed as XML.
fn junit_cases(path: &Path) -> Vec<(String, Vec<String>)> {
    let text = fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(doc.root_element().tag_name().name(), "testsuites");
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            (
                n.attribute("name").unwrap().to_string(),
                n.children()
                    .filter(|c| c.is_element())
                    .map(|c| c.tag_name().name().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn node_pipeline_tests_and_lints_in_parallel_fails_on_lint_errors_and_publishes() {
    let sample = Sample::new(false);
    let junit = sample.dir.path().join("pass.xml");
    let run = sample.pipeline("test", &["--junit", junit.to_str().unwrap()]);
    assert!(run.0.status.success(), "{}", run.text());
    assert_overlapped(&run, "test", "lint");
    assert_eq!(
        run.results(),
        pairs(&[("test", "passed"), ("lint", "passed")])
    );
    assert!(sample.log("test.test.log").contains("2 passing"));
    assert_eq!(
        junit_cases(&junit),
        vec![("test".to_string(), vec![]), ("lint".to_string(), vec![])]
    );

    // The previous run's logs are not part of the build context, and the two parallel
    // cold builds made their shared layers once: a second run builds the same images.
    let again = sample.pipeline("test", &[]);
    assert!(again.0.status.success(), "{}", again.text());
    for stage in ["test", "lint"] {
        assert_eq!(again.image(stage), run.image(stage), "{}", again.text());
        // Events carry the whole image ID, not the table's short form.
        let hex = run.image(stage).trim_start_matches("sha256:").to_string();
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{}",
            run.image(stage)
        );
    }

    // A lint error: lint fails, test still runs to its end and passes, `after` is skipped.
    let app = sample.project().join("src/app.js");
    let source = fs::read_to_string(&app).unwrap();
    fs::write(&app, format!("{source}const unusedByAnyone = 1;\n")).unwrap();
    fs::write(
        sample.project().join(".pipeline/config.yaml"),
        WITH_LATER_FRAME,
    )
    .unwrap();
    let junit = sample.dir.path().join("fail.xml");
    let run = sample.pipeline("test", &["--junit", junit.to_str().unwrap()]);
    assert_eq!(run.0.status.code(), Some(1), "{}", run.text());
    assert_overlapped(&run, "test", "lint");
    assert_eq!(
        run.results(),
        pairs(&[("test", "passed"), ("lint", "FAILED"), ("after", "skipped")])
    );
    assert!(sample.log("test.test.log").contains("2 passing"));
    assert!(sample.log("test.lint.log").contains("unusedByAnyone"));
    assert_eq!(
        junit_cases(&junit),
        vec![
            ("test".to_string(), vec![]),
            ("lint".to_string(), vec!["failure".to_string()]),
            ("after".to_string(), vec!["skipped".to_string()]),
        ]
    );

    // `publish`: the production variant, pushed to a real registry, seen by skopeo.
    fs::write(&app, source).unwrap();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node-service/.pipeline/config.yaml"),
        sample.project().join(".pipeline/config.yaml"),
    )
    .unwrap();
    let registry = TestRegistry::start();
    let dest = format!("{}/wmf", registry.addr);
    let run = sample.pipeline("publish", &["--registry", &dest]);
    assert!(run.0.status.success(), "{}", run.text());
    let teardown = sample.log("publish.teardown.log");
    let prefix = format!("published by production: {dest}/node-service:");
    let published = teardown
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{teardown}"));
    let tag = published.split_whitespace().next().unwrap();
    assert!(tag.ends_with("-production"), "{teardown}");
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{dest}/node-service:{tag}"))
        .output()
        .expect("skopeo (apt-get install skopeo)");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{text}\n{:?}", inspect);
    let image: Value = serde_json::from_str(&text).unwrap();
    assert!(
        image["RepoTags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == tag),
        "{text}"
    );
    assert!(
        image["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "NODE_ENV=production"),
        "the production variant: {text}"
    );
}

#[test]
fn node_pipeline_passes_as_an_unprivileged_user() {
    let sample = Sample::new(true);
    let run = sample.pipeline("test", &[]);
    assert!(run.0.status.success(), "{}", run.text());
    assert_overlapped(&run, "test", "lint");
    assert_eq!(
        run.results(),
        pairs(&[("test", "passed"), ("lint", "passed")])
    );
    assert!(sample.log("test.test.log").contains("2 passing"));
}
