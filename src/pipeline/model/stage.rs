//! One stage with PipelineLib's defaults (§1.5-§1.14).

use serde_yaml::{Mapping, Value};

use super::super::interp::is_falsy;

/// One stage with PipelineLib's defaults applied; `None` means the step is off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stage {
    /// The stage name.
    pub name: String,
    /// Stage-level Blubber file (string path or inline map).
    pub blubberfile: Option<Value>,
    /// `{variant, context, excludes?, imagePullPolicy}`.
    pub build: Option<Value>,
    /// `{image, arguments, env, credentials, tail}`.
    pub run: Option<Value>,
    /// A list of copy items or a whole-list expression (normalised at run time).
    pub copy: Option<Value>,
    /// `{id, name, tag, tags}`.
    pub publish_image: Option<Value>,
    /// flense extension: `publish.files: {paths: [...]}` copies workspace files to the
    /// artifacts directory.
    pub publish_files: Option<Value>,
    /// A list of `{chart, environments, version}` or an expression.
    pub promote: Option<Value>,
    /// `{chart: {name, version}, image, tag, cluster, test, timeout, overrides}`.
    pub deploy: Option<Value>,
    /// name -> value.
    pub exports: Option<Mapping>,
    /// `{email: {to, subject, body}}`.
    pub notify: Option<Value>,
    /// `{name, parameters, propagate, wait}`.
    pub trigger: Option<Value>,
    /// flense extension: services beside the run, a list of `{name, build | image, env,
    /// arguments, ready, timeout}` (docs/services.md).
    pub services: Option<Value>,
}

fn y(s: &str) -> Value {
    serde_yaml::from_str(s).expect("built-in default is valid YAML")
}

pub(super) fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

/// Inserts `key: default` into a map when the key is missing.
pub(super) fn default_key(map: &mut Mapping, key: &str, default: Value) {
    if !map.contains_key(key) {
        map.insert(s(key), default);
    }
}

fn truthy(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !is_falsy(v))
}

impl Stage {
    /// Applies PipelineLib's defaults to a raw stage map (§1.5-§1.14).
    pub fn from_value(raw: &Mapping) -> Stage {
        let get = |k: &str| truthy(raw.get(k));
        let name = raw
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name_only = raw.len() == 1 && raw.contains_key("name");
        let build = if name_only {
            Some(s("${.stage}"))
        } else {
            get("build").cloned()
        };
        let build = build.map(build_defaults);
        let run = if name_only {
            Some(Value::Bool(true))
        } else {
            get("run").cloned()
        };
        let run = run.map(|r| run_defaults(&r));
        let publish = get("publish").and_then(Value::as_mapping);
        let publish_image = publish
            .and_then(|p| truthy(p.get("image")))
            .map(publish_image_defaults);
        let publish_files = publish.and_then(|p| truthy(p.get("files"))).cloned();
        let promote = get("promote").map(|p| match p {
            Value::Bool(true) => Value::Sequence(vec![promote_defaults(&Mapping::new())]),
            Value::Sequence(items) => Value::Sequence(
                items
                    .iter()
                    .map(|i| {
                        i.as_mapping()
                            .map(promote_defaults)
                            .unwrap_or_else(|| i.clone())
                    })
                    .collect(),
            ),
            other => other.clone(),
        });
        let deploy = get("deploy").map(deploy_defaults);
        Stage {
            name,
            blubberfile: get("blubberfile").cloned(),
            build,
            run,
            copy: get("copy").cloned(),
            publish_image,
            publish_files,
            promote,
            deploy,
            exports: get("exports").and_then(Value::as_mapping).cloned(),
            notify: get("notify").cloned(),
            trigger: get("trigger").cloned(),
            services: get("services").cloned(),
        }
    }

    /// The actions this stage performs (after defaults), as the allowed-actions check sees them.
    pub fn actions(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let present = [
            ("blubberfile", self.blubberfile.is_some()),
            ("build", self.build.is_some()),
            ("run", self.run.is_some()),
            ("copy", self.copy.is_some()),
            (
                "publish",
                self.publish_image.is_some() || self.publish_files.is_some(),
            ),
            ("promote", self.promote.is_some()),
            ("deploy", self.deploy.is_some()),
            ("exports", self.exports.is_some()),
            ("notify", self.notify.is_some()),
            ("trigger", self.trigger.is_some()),
            ("services", self.services.is_some()),
        ];
        for (name, on) in present {
            if on {
                out.push(name);
            }
        }
        out
    }

    /// An empty stage: a name in `execution` without a definition (it binds only `stage`).
    pub fn empty(name: &str) -> Stage {
        Stage {
            name: name.to_string(),
            ..Stage::default()
        }
    }
}

/// `build`: a map, or a variant name; the variant defaults to the stage name.
fn build_defaults(build: Value) -> Value {
    let mut m = match build {
        Value::Mapping(m) => m,
        other => {
            let mut m = Mapping::new();
            m.insert(s("variant"), other);
            m
        }
    };
    default_key(&mut m, "variant", s("${.stage}"));
    default_key(&mut m, "context", s("."));
    // PipelineLib defaults `imagePullPolicy` to `always`; flense leaves an unset one to
    // `--pull` (default `missing`), so local and air-gapped runs need no registry.
    if truthy(m.get("imagePullPolicy")).is_none() {
        m.remove("imagePullPolicy");
    }
    Value::Mapping(m)
}

/// `run`: a map or `true`; runs the image built by the stage.
fn run_defaults(run: &Value) -> Value {
    let mut m = run.as_mapping().cloned().unwrap_or_default();
    default_key(&mut m, "image", s("${.imageID}"));
    default_key(&mut m, "arguments", y("[]"));
    default_key(&mut m, "env", y("{}"));
    default_key(&mut m, "credentials", y("[]"));
    default_key(&mut m, "tail", y("0"));
    Value::Mapping(m)
}

/// `publish.image`: a map or `true`; publishes the stage's image as the project.
fn publish_image_defaults(image: &Value) -> Value {
    let mut m = image.as_mapping().cloned().unwrap_or_default();
    default_key(&mut m, "id", s("${.imageID}"));
    default_key(&mut m, "name", s("${setup.project}"));
    if truthy(m.get("tag")).is_none() {
        m.insert(s("tag"), s("${setup.timestamp}-${.stage}"));
    }
    default_key(&mut m, "tags", y("['${setup.tag}']"));
    Value::Mapping(m)
}

/// `deploy`: a map or `true`; deploys the published image's chart to `ci`.
fn deploy_defaults(deploy: &Value) -> Value {
    let mut m = deploy.as_mapping().cloned().unwrap_or_default();
    let mut chart = m
        .get("chart")
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    default_key(&mut chart, "name", s("${setup.projectShortName}"));
    default_key(&mut chart, "version", s(""));
    m.insert(s("chart"), Value::Mapping(chart));
    default_key(&mut m, "image", s("${.imageName}"));
    default_key(&mut m, "tag", s("${.imageTag}"));
    default_key(&mut m, "cluster", s("ci"));
    default_key(&mut m, "test", Value::Bool(true));
    default_key(&mut m, "overrides", y("{}"));
    default_key(&mut m, "timeout", Value::Null);
    Value::Mapping(m)
}

fn promote_defaults(m: &Mapping) -> Value {
    let mut m = m.clone();
    default_key(&mut m, "chart", s("${setup.projectShortName}"));
    default_key(&mut m, "environments", y("[]"));
    default_key(&mut m, "version", s("${.imageTag}"));
    Value::Mapping(m)
}

/// Turns a copy step's interpolated value into items `{from, source, destination, archive}`.
pub fn normalise_copy(value: &Value) -> std::result::Result<Vec<Mapping>, String> {
    let items = value.as_sequence().ok_or("copy must be a list")?;
    items
        .iter()
        .map(|item| {
            let mut m = match item {
                Value::String(src) => {
                    let mut m = Mapping::new();
                    m.insert(s("source"), s(src));
                    m
                }
                Value::Mapping(m) => m.clone(),
                _ => return Err("copy items must be strings or maps".to_string()),
            };
            let source = m
                .get("source")
                .and_then(Value::as_str)
                .ok_or("copy item without a source")?
                .to_string();
            default_key(&mut m, "from", s("${.container}"));
            default_key(&mut m, "destination", s(&source));
            default_key(&mut m, "archive", Value::Bool(false));
            Ok(m)
        })
        .collect()
}
