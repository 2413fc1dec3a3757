//! Validation against PipelineLib's JSON Schema (`schema/pipelines.v0.yaml`, draft 2020-12,
//! shipped verbatim). A small evaluator of the keywords that schema uses: `type`,
//! `required`, `properties`, `additionalProperties`, `items`, `oneOf`, `$ref`, `const`,
//! `uniqueItems` (plus `anyOf`, `allOf` and `enum` for other schemas such as Argo's). flense's relaxations (§1.16 decisions) are applied on top of the
//! verbatim schema unless `strict` is asked for; see docs/compatibility.md.

use serde_yaml::{Mapping, Value};

/// The upstream schema, verbatim.
pub const UPSTREAM_SCHEMA: &str = include_str!("../../schema/pipelines.v0.yaml");

/// A schema violation: where (`pipelines.test.stages[0].run`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path in the document, dotted keys and `[index]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "(top level)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// A loaded schema.
pub struct Schema {
    root: Value,
}

impl Schema {
    /// The upstream schema; with `strict == false`, plus flense's relaxations:
    /// `promote: true`, `promote[].version` and `publish.files`.
    pub fn load(strict: bool) -> Schema {
        let mut root: Value =
            serde_yaml::from_str(UPSTREAM_SCHEMA).expect("the shipped schema is valid YAML");
        if !strict {
            relax(&mut root);
        }
        Schema { root }
    }

    /// Any JSON Schema using the supported keywords (e.g. Argo's Workflow schema).
    pub fn from_value(root: Value) -> Schema {
        Schema { root }
    }

    /// Every violation of `doc`, in document order.
    pub fn validate(&self, doc: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        self.check(&self.root, doc, "", &mut out);
        out
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let mut node = &self.root;
                for part in r.trim_start_matches("#/").split('/') {
                    match node.get(part) {
                        Some(n) => node = n,
                        None => return &Value::Null,
                    }
                }
                self.resolve(node)
            }
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
        let schema = self.resolve(schema);
        let mut push = |message: String| {
            out.push(Violation {
                path: path.to_string(),
                message,
            })
        };
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            if !type_matches(t, value) {
                push(format!(
                    "must be {} (found {})",
                    article(t),
                    describe(value)
                ));
                return;
            }
        }
        if let Some(c) = schema.get("const") {
            if c != value {
                push(format!(
                    "must be {}",
                    serde_yaml::to_string(c).unwrap_or_default().trim()
                ));
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_sequence) {
            if !allowed.contains(value) {
                push(format!(
                    "must be one of {}",
                    serde_json::to_string(allowed).unwrap_or_default()
                ));
            }
        }
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_sequence) {
            self.check_one_of(branches, value, path, out);
        }
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_sequence) {
            let results = self.check_branches(branches, value, path);
            if results.iter().all(|r| !r.is_empty()) {
                // Report the most specific branch: the one whose errors go deepest.
                let best = results
                    .into_iter()
                    .max_by_key(|r| r.iter().map(|v| v.path.len()).max().unwrap_or(0));
                out.extend(best.unwrap_or_default());
            }
        }
        for sub in schema
            .get("allOf")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            self.check(sub, value, path, out);
        }
        if let Value::Mapping(map) = value {
            self.check_object(schema, map, path, out);
        }
        if let Value::Sequence(items) = value {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.check(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
            if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
                let mut seen = std::collections::HashSet::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if !seen.insert(item) {
                        out.push(Violation {
                            path: format!("{path}[{i}]"),
                            message: "duplicates an earlier item (items must be unique)".into(),
                        });
                    }
                }
            }
        }
    }

    fn check_object(&self, schema: &Value, map: &Mapping, path: &str, out: &mut Vec<Violation>) {
        let props = schema.get("properties").and_then(Value::as_mapping);
        if let Some(required) = schema.get("required").and_then(Value::as_sequence) {
            for key in required {
                if !map.contains_key(key) {
                    out.push(Violation {
                        path: path.to_string(),
                        message: format!(
                            "missing required key '{}'",
                            key.as_str().unwrap_or_default()
                        ),
                    });
                }
            }
        }
        for (k, v) in map {
            let key = k
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| describe(k));
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if let Some(prop) = props.and_then(|p| p.get(k)) {
                self.check(prop, v, &child, out);
                continue;
            }
            match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    let allowed: Vec<&str> = props
                        .map(|p| p.keys().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    out.push(Violation {
                        path: child,
                        message: format!("unknown key '{key}' (allowed: {})", allowed.join(", ")),
                    });
                }
                Some(extra @ Value::Mapping(_)) => self.check(extra, v, &child, out),
                _ => {}
            }
        }
    }

    /// The violations of `value` against each of `branches` (empty: the branch matches).
    fn check_branches(&self, branches: &[Value], value: &Value, path: &str) -> Vec<Vec<Violation>> {
        branches
            .iter()
            .map(|b| {
                let mut errs = Vec::new();
                self.check(b, value, path, &mut errs);
                errs
            })
            .collect()
    }

    fn check_one_of(
        &self,
        branches: &[Value],
        value: &Value,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        let results = self.check_branches(branches, value, path);
        let passing = results.iter().filter(|r| r.is_empty()).count();
        if passing == 1 {
            return;
        }
        if passing > 1 {
            out.push(Violation {
                path: path.to_string(),
                message: "matches more than one allowed form".into(),
            });
            return;
        }
        // Report the errors of the branches whose type fits; if none fits, list the forms.
        let fitting: Vec<usize> = (0..branches.len())
            .filter(|i| {
                let b = self.resolve(&branches[*i]);
                let type_ok = b
                    .get("type")
                    .and_then(Value::as_str)
                    .is_none_or(|t| type_matches(t, value));
                let is_expr = b
                    .get("required")
                    .and_then(Value::as_sequence)
                    .is_some_and(|r| {
                        r.iter()
                            .any(|k| k.as_str().is_some_and(|k| k.starts_with('$')))
                    });
                let expr_fits = value.as_mapping().is_some_and(|m| {
                    m.keys()
                        .any(|k| k.as_str().is_some_and(|k| k.starts_with('$')))
                });
                type_ok && (!is_expr || expr_fits)
            })
            .collect();
        if fitting.len() == 1 {
            out.extend(results[fitting[0]].iter().cloned());
            return;
        }
        let forms: Vec<String> = branches
            .iter()
            .map(|b| form_name(self.resolve(b), b))
            .collect();
        out.push(Violation {
            path: path.to_string(),
            message: format!(
                "must be one of: {} (found {})",
                forms.join(", "),
                describe(value)
            ),
        });
    }
}

fn form_name(resolved: &Value, original: &Value) -> String {
    if let Some(r) = original.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    match resolved.get("type").and_then(Value::as_str) {
        Some("array") => match resolved
            .get("items")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
        {
            Some(t) => format!("a list of {t}s"),
            None => "a list".into(),
        },
        Some(t) => article(t),
        None => "a value".into(),
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_mapping(),
        "array" => v.is_sequence(),
        "string" => v.is_string(),
        "boolean" => v.is_bool(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn article(t: &str) -> String {
    match t {
        "object" => "a map".into(),
        "array" => "a list".into(),
        "integer" => "an integer".into(),
        other => format!("a {other}"),
    }
}

/// A short description of a value's kind for messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() <= 40 => format!("string '{s}'"),
        Value::String(_) => "a string".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a map".into(),
        Value::Tagged(t) => format!("tagged value {}", t.tag),
    }
}

/// flense's `services:` of a stage (docs/services.md); `build` xor `image` and unique
/// names are checked by the model.
const SERVICES_SCHEMA: &str = "
type: array
description: 'flense: services beside the run'
items:
  type: object
  additionalProperties: false
  required: [name]
  properties:
    name: {type: string}
    build: {type: string}
    image: {type: string}
    env: {type: object, additionalProperties: {type: string}}
    arguments: {type: array, items: {type: string}}
    ready: {type: array, items: {type: string}}
    timeout: {type: integer}
";

fn relax(root: &mut Value) {
    let stage = &mut root["definitions"]["stage"]["properties"];
    if let Some(forms) = stage["promote"]["oneOf"].as_sequence_mut() {
        forms.push(
            serde_yaml::from_str(
                "{type: boolean, description: 'flense: promote: true as the code accepts'}",
            )
            .unwrap(),
        );
        if let Some(props) = forms[2]["items"]["properties"].as_mapping_mut() {
            props.insert(
                "version".into(),
                serde_yaml::from_str("{type: string}").unwrap(),
            );
        }
    }
    if let Some(props) = stage.as_mapping_mut() {
        props.insert(
            "services".into(),
            serde_yaml::from_str(SERVICES_SCHEMA).unwrap(),
        );
    }
    if let Some(props) = stage["publish"]["properties"].as_mapping_mut() {
        props.insert(
            "files".into(),
            serde_yaml::from_str("{type: object, additionalProperties: false, properties: {paths: {type: array, items: {type: string}}}}")
                .unwrap(),
        );
    }
}

#[cfg(test)]
mod tests;
