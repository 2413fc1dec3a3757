//! `services:` of a stage (a flense extension, docs/services.md): the model and the
//! code's checks that the schema cannot express, each error with file:line:col.

use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::super::locate::Locator;

/// One service of a stage, as written (strings are interpolated when the stage runs).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDef {
    /// The host name the run reaches it by.
    pub name: String,
    /// A variant of the stage's Blubber file to build, or
    pub build: Option<String>,
    /// an image reference.
    pub image: Option<String>,
    /// Variables added to the image's env.
    pub env: Vec<(String, String)>,
    /// Arguments appended to the entrypoint.
    pub arguments: Vec<String>,
    /// The ready check, run inside the service until it exits 0.
    pub ready: Option<Vec<String>>,
    /// How long the ready check may keep failing.
    pub timeout: Option<Duration>,
}

fn text(v: &Value) -> String {
    super::super::interp::stringify(v)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| s.iter().map(text).collect())
        .unwrap_or_default()
}

/// The services of a stage's (validated) `services:` value.
pub fn services_of(value: &Value) -> Vec<ServiceDef> {
    let items = value.as_sequence().map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .filter_map(Value::as_mapping)
        .map(|m| ServiceDef {
            name: m.get("name").map(text).unwrap_or_default(),
            build: m.get("build").map(text),
            image: m.get("image").map(text),
            env: m
                .get("env")
                .and_then(Value::as_mapping)
                .map(|env| env.iter().map(|(k, v)| (text(k), text(v))).collect())
                .unwrap_or_default(),
            arguments: strings(m.get("arguments")),
            ready: m.get("ready").map(|r| strings(Some(r))),
            timeout: m
                .get("timeout")
                .and_then(Value::as_u64)
                .map(Duration::from_secs),
        })
        .collect()
}

/// The checks of every stage's `services:` in pipeline `pipeline` (`raw`): one of
/// `build` and `image`, host-name names unique in the stage, a positive `timeout`, and
/// `build` variants that the stage's Blubber file defines (when it is a literal path).
pub(super) fn check(path: &Path, text: &str, pipeline: &str, raw: &Mapping) -> Vec<String> {
    let mut errors = Vec::new();
    let locator = Locator::new(text);
    let stages = raw.get("stages").and_then(Value::as_sequence);
    for (i, stage) in stages.into_iter().flatten().enumerate() {
        let Some(items) = stage.get("services").and_then(Value::as_sequence) else {
            continue;
        };
        let name_only = stage.as_mapping().is_some_and(|m| m.len() == 1);
        let runs = stage
            .get("run")
            .is_some_and(|r| !super::super::interp::is_falsy(r));
        let at = |rel: &str, message: String| {
            let doc_path = format!("pipelines.{pipeline}.stages[{i}].{rel}");
            locator.at_node(path, &doc_path, &format!("{doc_path}: {message}"))
        };
        if !runs && !name_only && !items.is_empty() {
            errors.push(at(
                "services",
                "services run beside the stage's `run` step, and this stage has none".into(),
            ));
        }
        let variants = blubber_variants(path, pipeline, raw, stage);
        let mut seen: Vec<String> = Vec::new();
        for (j, item) in items.iter().enumerate() {
            let Some(m) = item.as_mapping() else { continue };
            let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
            if !valid_host_name(name) {
                errors.push(at(
                    &format!("services[{j}].name"),
                    format!("`{name}` is not a host name (letters, digits and -, not first)"),
                ));
            }
            if seen.iter().any(|s| s == name) {
                errors.push(at(
                    &format!("services[{j}].name"),
                    format!("service name `{name}` is used twice in this stage"),
                ));
            }
            seen.push(name.to_string());
            match (m.get("build"), m.get("image")) {
                (Some(_), Some(_)) | (None, None) => errors.push(at(
                    &format!("services[{j}]"),
                    format!(
                        "service `{name}` needs exactly one of `build` (a variant) and `image`"
                    ),
                )),
                (Some(Value::String(variant)), None) => {
                    if let Some((file, names)) = &variants {
                        if !variant.contains("${") && !names.contains(variant) {
                            errors.push(at(&format!("services[{j}].build"), format!(
                                "service `{name}` builds variant `{variant}`, which {file} does not define (variants: {})",
                                names.join(", ")
                            )));
                        }
                    }
                }
                _ => {}
            }
            if m.get("timeout")
                .and_then(Value::as_i64)
                .is_some_and(|t| t <= 0)
            {
                errors.push(at(
                    &format!("services[{j}].timeout"),
                    "must be seconds > 0".into(),
                ));
            }
            if m.get("ready")
                .and_then(Value::as_sequence)
                .is_some_and(Vec::is_empty)
            {
                errors.push(at(
                    &format!("services[{j}].ready"),
                    "must name a command".into(),
                ));
            }
        }
    }
    errors
}

/// A host name label: letters, digits and `-`, not starting with `-`.
fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The stage's (or the pipeline's) Blubber file and its variant names, when it is a
/// literal path under the config's directory that can be read.
fn blubber_variants(
    config: &Path,
    name: &str,
    pipeline: &Mapping,
    stage: &Value,
) -> Option<(String, Vec<String>)> {
    let file = match stage
        .get("blubberfile")
        .or_else(|| pipeline.get("blubberfile"))
    {
        Some(Value::String(f)) => f.clone(),
        Some(_) => return None,
        None => format!("{name}/blubber.yaml"),
    };
    if file.contains("${") {
        return None;
    }
    let full = config.parent()?.join(&file);
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&full).ok()?).ok()?;
    let names = doc
        .get("variants")?
        .as_mapping()?
        .keys()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    Some((file, names))
}
