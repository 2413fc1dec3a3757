//! `flense export argo`: a pipeline as an Argo Workflow — a DAG of container tasks, one
//! per stage, each running its image's entrypoint with the stage's arguments and env.
//!
//! Images are expected in the registry as `<registry>/<project>-<variant>:<tag>` (tag:
//! the commit's first 12 characters, or `latest`), i.e. what
//! `flense build VARIANT --push REF` produces; the workflow lists them in the
//! `flense/images` annotation. `${stage.output}` becomes the task's stdout
//! (`{{tasks.<stage>.outputs.result}}`), credentials become secret references.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};
use serde_yaml::Value;

use super::error::Result;
use super::graph::user_frames;
use super::interp::{stringify, Namespace, Scope};
use super::model::{services_of, Pipeline};
use super::setup::SetupInfo;
use super::steps::{credential, sanitise_name};

/// An Argo-safe name: lower case, `[a-z0-9-]`, starting alphanumeric.
pub fn task_name(stage: &str) -> String {
    let mut s: String = stage
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s = s.trim_start_matches('-').to_string();
    if s.is_empty() {
        s = "stage".into();
    }
    s.truncate(63);
    s
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => stringify(other),
    }
}

/// The container template of a stage's `run` step (binding `container` and `output`
/// first, as the step would).
fn run_template(scope: &mut Scope, run: &Value, task: &str) -> Result<Json> {
    let mut m = run.as_mapping().cloned().unwrap_or_default();
    let credentials = m.remove("credentials").unwrap_or(Value::Null);
    m.remove("tail");
    scope.bind("container", Value::String(task.to_string()))?;
    scope.bind(
        "output",
        Value::String(format!("{{{{tasks.{task}.outputs.result}}}}")),
    )?;
    let r = scope.interpolate(&Value::Mapping(m))?;
    let args: Vec<String> = r["arguments"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let mut env: Vec<Json> = r["env"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| json!({"name": text(k), "value": text(v)}))
        .collect();
    for c in credentials.as_sequence().into_iter().flatten() {
        let (id, var) = credential(c);
        env.push(json!({"name": var, "valueFrom": {"secretKeyRef": {"name": task_name(&id), "key": id}}}));
    }
    let mut container = json!({"image": text(&r["image"]), "args": args});
    if !env.is_empty() {
        container["env"] = Json::Array(env);
    }
    Ok(json!({"name": task, "container": container}))
}

/// A stage's services as Argo sidecars of its run's pod (sharing its network, so each
/// name is a host alias of 127.0.0.1), `ready` as a readiness probe. Argo does not hold
/// the main container back until a sidecar is ready, as flense does.
fn add_sidecars(
    template: &mut Json,
    scope: &Scope,
    services: &Value,
    image_of: impl Fn(&str) -> String,
    images: &mut Vec<String>,
) -> Result<()> {
    let services = services_of(&scope.interpolate(services)?);
    let mut sidecars = Vec::new();
    for s in &services {
        let image = match (&s.build, &s.image) {
            (Some(variant), _) => {
                let image = image_of(variant);
                images.push(image.clone());
                image
            }
            (None, image) => image.clone().unwrap_or_default(),
        };
        let mut sidecar = json!({"name": task_name(&s.name), "image": image});
        if !s.arguments.is_empty() {
            sidecar["args"] = json!(s.arguments);
        }
        if !s.env.is_empty() {
            let env: Vec<Json> = s
                .env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            sidecar["env"] = Json::Array(env);
        }
        if let Some(ready) = &s.ready {
            let timeout = s.timeout.map(|t| t.as_secs()).unwrap_or(60).max(1);
            sidecar["readinessProbe"] = json!({
                "exec": {"command": ready},
                "periodSeconds": 1,
                "failureThreshold": timeout,
            });
        }
        sidecars.push(sidecar);
    }
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    template["sidecars"] = Json::Array(sidecars);
    template["hostAliases"] = json!([{"ip": "127.0.0.1", "hostnames": names}]);
    Ok(())
}

/// Binds what a `publish.image` step would, with the image named in `registry`.
fn bind_publish(scope: &mut Scope, publish: &Value, registry: &str) -> Result<()> {
    let p = scope.interpolate(publish)?;
    let name = sanitise_name(&text(&p["name"]));
    let full = format!("{registry}/{name}");
    let primary = text(&p["tag"]);
    scope.bind("imageName", Value::String(name))?;
    scope.bind("imageFullName", Value::String(full.clone()))?;
    scope.bind("imageTag", Value::String(primary.clone()))?;
    scope.bind(
        "imageTags",
        Value::Sequence(vec![Value::String(sanitise_name(&primary))]),
    )?;
    scope.bind("publishedImage", Value::String(format!("{full}:{primary}")))
}

/// Renders `pipeline` as an Argo Workflow (YAML). With `dag`, each task depends on its
/// true predecessors; otherwise on every task of the previous frame (PipelineLib's
/// barriers).
pub fn export(pipeline: &Pipeline, setup: &SetupInfo, registry: &str, dag: bool) -> Result<String> {
    let value = workflow(pipeline, setup, registry, dag)?;
    Ok(serde_yaml::to_string(&value).expect("JSON values serialise as YAML"))
}

/// The Workflow as a JSON value (what [`export`] renders).
pub fn workflow(pipeline: &Pipeline, setup: &SetupInfo, registry: &str, dag: bool) -> Result<Json> {
    let frames = pipeline.frames()?;
    let graph = pipeline.full_graph();
    let graph_text = graph.to_string();
    let user_frames = user_frames(&frames);
    let project = sanitise_name(&setup.project);
    let tag = if setup.commit.len() >= 12 {
        setup.commit[..12].to_string()
    } else {
        "latest".to_string()
    };
    let registry = registry.trim_end_matches('/');
    let mut namespaces: BTreeMap<String, Namespace> = BTreeMap::new();
    namespaces.insert("setup".into(), setup.namespace(&pipeline.name));
    let mut tasks = Vec::new();
    let mut templates = Vec::new();
    let mut images = Vec::new();
    let mut previous: Vec<String> = Vec::new();
    for frame in &user_frames {
        for name in frame {
            let stage = pipeline.stage(name);
            let ancestors: BTreeMap<String, Namespace> = graph
                .ancestors(name)
                .into_iter()
                .filter(|a| a != name)
                .map(|a| {
                    let ns = namespaces.get(&a).cloned().unwrap_or_default();
                    (a, ns)
                })
                .collect();
            let mut scope = Scope::new(name, Namespace::new(), ancestors, graph_text.clone());
            scope.bind("stage", Value::String(name.clone()))?;
            let task = task_name(name);
            if let Some(build) = &stage.build {
                let b = scope.interpolate(build)?;
                let image = format!(
                    "{registry}/{project}-{}:{tag}",
                    sanitise_name(&text(&b["variant"]))
                );
                images.push(image.clone());
                scope.bind("imageID", Value::String(image.clone()))?;
                scope.bind("imageLocalName", Value::String(image))?;
            }
            let mut template = match &stage.run {
                Some(run) => run_template(&mut scope, run, &task)?,
                None => json!({"name": task, "suspend": {"duration": "0"}}),
            };
            if let (Some(services), Some(_)) = (&stage.services, &stage.run) {
                let image_of = |variant: &str| {
                    format!("{registry}/{project}-{}:{tag}", sanitise_name(variant))
                };
                add_sidecars(&mut template, &scope, services, image_of, &mut images)?;
            }
            if let Some(p) = &stage.publish_image {
                bind_publish(&mut scope, p, registry)?;
            }
            if stage.deploy.is_some() {
                scope.bind("releaseName", Value::String(task.clone()))?;
            }
            if let Some(exports) = &stage.exports {
                for (k, v) in exports {
                    let value = scope.interpolate(v)?;
                    scope.bind(&text(k), value)?;
                }
            }
            let deps: Vec<String> = if dag {
                graph
                    .in_to(name)
                    .into_iter()
                    .filter(|p| p != "setup")
                    .map(|p| task_name(&p))
                    .collect()
            } else {
                previous.iter().map(|p| task_name(p)).collect()
            };
            let mut t = json!({"name": task, "template": task});
            if !deps.is_empty() {
                t["dependencies"] = json!(deps);
            }
            tasks.push(t);
            templates.push(template);
            namespaces.insert(name.clone(), scope.own().clone());
        }
        previous = frame.clone();
    }
    let entry = task_name(&format!("pipeline-{}", pipeline.name));
    let mut all_templates = vec![json!({"name": entry, "dag": {"tasks": tasks}})];
    all_templates.extend(templates);
    images.dedup();
    Ok(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": format!("{}-", task_name(&format!("{project}-{}", pipeline.name))),
            "labels": {"flense/pipeline": task_name(&pipeline.name)},
            "annotations": {"flense/images": images.join(" ")},
        },
        "spec": {"entrypoint": entry, "templates": all_templates},
    }))
}
