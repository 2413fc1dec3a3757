//! `flense export argo`: the Workflow validates against Argo's schema (extracted from the
//! `hera` PyPI package into fixtures/argo/) and has the expected DAG.

mod support;

use std::path::{Path, PathBuf};

use flense::pipeline::schema::Schema;
use serde_yaml::Value;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn argo_schema() -> Schema {
    let text = std::fs::read_to_string(fixture("argo/workflow.schema.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    Schema::from_value(serde_yaml::to_value(json).unwrap())
}

fn export(project: &Path, args: &[&str]) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let out = support::cli::ok_stdout(
        support::cli::flense(tmp.path())
            .arg("export")
            .arg("argo")
            .arg("-C")
            .arg(project)
            .args(args),
    );
    serde_yaml::from_str(&out).unwrap()
}

fn tasks(wf: &Value) -> Vec<(String, Vec<String>)> {
    wf["spec"]["templates"][0]["dag"]["tasks"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|t| {
            let deps = t["dependencies"]
                .as_sequence()
                .map(|d| d.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            (t["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn systemtest_pipelines_export_valid_workflows() {
    let schema = argo_schema();
    let repo = fixture("pipeline-examples/pipelinelib-repo/systemtest-repo1");
    for pipeline in [
        "service1",
        "service2",
        "test-command-output",
        "test-list-comprehensions",
        "test-T287507",
    ] {
        let wf = export(&repo, &[pipeline, "--registry", "registry.example:5000/ci"]);
        let errors = schema.validate(&wf);
        assert!(
            errors.is_empty(),
            "{pipeline}: {errors:?}\n{}",
            serde_yaml::to_string(&wf).unwrap()
        );
    }
}

#[test]
fn frame_barriers_and_true_dependencies() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join(".pipeline")).unwrap();
    std::fs::write(
        tmp.path().join(".pipeline/config.yaml"),
        "pipelines:\n  p:\n    stages: [{name: a}, {name: b}, {name: c}, {name: d}]\n    execution: [[a, b], [c, d]]\n",
    )
    .unwrap();
    let wf = export(tmp.path(), &["p"]);
    let frame = tasks(&wf);
    assert_eq!(
        frame[2],
        ("b".to_string(), vec!["a".to_string(), "c".to_string()]),
        "{frame:?}"
    );
    let wf = export(tmp.path(), &["p", "--dag"]);
    let dag = tasks(&wf);
    assert!(
        dag.contains(&("b".to_string(), vec!["a".to_string()])),
        "{dag:?}"
    );
    assert!(
        dag.contains(&("d".to_string(), vec!["c".to_string()])),
        "{dag:?}"
    );
    assert!(argo_schema().validate(&wf).is_empty());
}

#[test]
fn outputs_and_images_map_to_argo() {
    let repo = fixture("pipeline-examples/pipelinelib-repo/systemtest-repo1");
    let wf = export(&repo, &["test-command-output", "--registry", "reg.example"]);
    let templates = wf["spec"]["templates"].as_sequence().unwrap();
    let test_it = templates.iter().find(|t| t["name"] == "test-it").unwrap();
    assert_eq!(
        test_it["container"]["args"][2],
        Value::String("{{tasks.cat.outputs.result}}".into())
    );
    let image = test_it["container"]["image"].as_str().unwrap();
    assert!(
        image.starts_with("reg.example/") && image.contains("-bash:"),
        "{image}"
    );
}

#[test]
fn the_schema_rejects_a_broken_workflow() {
    let repo = fixture("pipeline-examples/pipelinelib-repo/systemtest-repo1");
    let mut wf = export(&repo, &["service1"]);
    wf["spec"]["templates"][1]["container"]["imagee"] = Value::String("typo".into());
    wf["spec"]["templates"][0]["dag"]["tasks"][0]["dependencies"] =
        Value::String("not-a-list".into());
    let errors = argo_schema().validate(&wf);
    assert!(errors.len() >= 2, "{errors:?}");
}

#[test]
fn services_become_sidecars_with_host_aliases() {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join(".pipeline")).unwrap();
    std::fs::write(
        project.path().join(".pipeline/blubber.yaml"),
        "version: v4\nvariants:\n  redis: {}\n  test: {}\n",
    )
    .unwrap();
    std::fs::write(
        project.path().join(".pipeline/config.yaml"),
        "pipelines:
  p:
    blubberfile: blubber.yaml
    stages:
      - name: t
        build: test
        run: true
        services:
          - {name: db, build: redis, ready: [redis-cli, ping], timeout: 30}
          - {name: cache, image: 'docker.io/library/memcached:1', env: {A: b}, arguments: [-m, '64']}
",
    )
    .unwrap();
    let wf = export(project.path(), &["p", "--registry", "registry.example/ci"]);
    let errors = argo_schema().validate(&wf);
    assert!(errors.is_empty(), "{errors:?}");
    let template = &wf["spec"]["templates"][1];
    let sidecars = template["sidecars"].as_sequence().unwrap();
    assert_eq!(sidecars.len(), 2, "{template:?}");
    assert_eq!(sidecars[0]["name"], "db");
    assert!(sidecars[0]["image"]
        .as_str()
        .unwrap()
        .starts_with("registry.example/ci/"));
    assert!(sidecars[0]["image"].as_str().unwrap().contains("-redis:"));
    assert_eq!(
        sidecars[0]["readinessProbe"]["exec"]["command"][0],
        "redis-cli"
    );
    assert_eq!(sidecars[0]["readinessProbe"]["failureThreshold"], 30);
    assert_eq!(sidecars[1]["image"], "docker.io/library/memcached:1");
    assert_eq!(sidecars[1]["env"][0]["name"], "A");
    assert_eq!(template["hostAliases"][0]["hostnames"][1], "cache");
    assert!(wf["metadata"]["annotations"]["flense/images"]
        .as_str()
        .unwrap()
        .contains("-redis:"));
}
