//! The `config.yaml` model: pipelines and stages with PipelineLib's defaults (§1),
//! read from YAML (anchors and merge keys applied), validated by the schema and by the
//! code's own rules. Step values stay YAML values: they are interpolated lazily, when
//! the step runs.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::error::{PipelineError, Result};
use super::graph::Graph;
use super::interp::is_falsy;
use super::locate::Locator;
use super::schema::Schema;

mod services;
mod stage;

pub use services::{services_of, ServiceDef};
use stage::s;
pub use stage::{normalise_copy, Stage};

/// Reserved stage names.
pub const RESERVED: [&str; 2] = ["setup", "teardown"];

/// Every step, in the fixed order a stage runs them.
pub const STEPS: [&str; 8] = [
    "build", "run", "copy", "publish", "promote", "deploy", "exports", "trigger",
];

/// A parsed and validated `config.yaml`.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The pipelines, in file order.
    pub pipelines: Vec<Pipeline>,
    /// Warnings (stages that never run, unreferenceable names, ...).
    pub warnings: Vec<String>,
}

/// One pipeline with its defaults filled in.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Its name (the key under `pipelines`).
    pub name: String,
    /// Stage definitions, declaration order; with duplicate names the last one wins.
    pub stages: Vec<Stage>,
    /// The arcs of the execution graph (explicit, or one arc of every stage in order).
    pub execution: Vec<Vec<String>>,
    /// The default Blubber file: a path relative to `.pipeline/`, or an inline map.
    pub blubberfile: Value,
    /// Working directory of the steps, relative to the project root.
    pub directory: String,
    /// Git fetch options (they only matter to Zuul checkouts; kept for reports).
    pub fetch: Fetch,
    /// Pipeline-level `notify`, merged under each failing stage's own.
    pub notify: Value,
}

/// `fetch` options with their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// Shallow clone (default true).
    pub shallow: bool,
    /// Depth when shallow (default 20).
    pub depth: i64,
    /// Recursive submodules (default true).
    pub submodules: bool,
    /// Fetch tags (default false).
    pub tags: bool,
}

impl Pipeline {
    fn from_value(name: &str, raw: &Mapping) -> Pipeline {
        let mut stages: Vec<Stage> = Vec::new();
        let mut declared: Vec<String> = Vec::new();
        for st in raw
            .get("stages")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            if let Some(m) = st.as_mapping() {
                let stage = Stage::from_value(m);
                declared.push(stage.name.clone());
                stages.retain(|s| s.name != stage.name);
                stages.push(stage);
            }
        }
        let execution: Vec<Vec<String>> = raw
            .get("execution")
            .and_then(Value::as_sequence)
            .map(|arcs| {
                arcs.iter()
                    .filter_map(Value::as_sequence)
                    .map(|arc| {
                        arc.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let execution = if execution.is_empty() && !declared.is_empty() {
            vec![declared]
        } else {
            execution
        };
        let fetch = raw.get("fetch").and_then(Value::as_mapping);
        let flag = |k: &str, d: bool| {
            fetch
                .and_then(|f| f.get(k))
                .and_then(Value::as_bool)
                .unwrap_or(d)
        };
        Pipeline {
            name: name.to_string(),
            stages,
            execution,
            blubberfile: raw
                .get("blubberfile")
                .filter(|v| !is_falsy(v))
                .cloned()
                .unwrap_or_else(|| s(&format!("{name}/blubber.yaml"))),
            directory: raw
                .get("directory")
                .and_then(Value::as_str)
                .unwrap_or(".")
                .to_string(),
            fetch: Fetch {
                shallow: flag("shallow", true),
                depth: fetch
                    .and_then(|f| f.get("depth"))
                    .and_then(Value::as_i64)
                    .unwrap_or(20),
                submodules: flag("submodules", true),
                tags: flag("tags", false),
            },
            notify: raw.get("notify").cloned().unwrap_or(Value::Null),
        }
    }

    /// The user graph (the arcs of `execution`).
    pub fn user_graph(&self) -> Graph {
        Graph::from_arcs(&self.execution)
    }

    /// `setup + user graph + teardown`.
    pub fn full_graph(&self) -> Graph {
        let user = self.user_graph();
        let setup = Graph::from_arcs(&[vec!["setup"]]);
        let teardown = Graph::from_arcs(&[vec!["teardown"]]);
        if user.is_empty() {
            return setup.union(&teardown);
        }
        setup.concat(&user).concat(&teardown)
    }

    /// The frames of the full graph, or the cycle error.
    pub fn frames(&self) -> Result<Vec<Vec<String>>> {
        self.full_graph()
            .frames()
            .map_err(|graph| PipelineError::Cycle {
                pipeline: self.name.clone(),
                graph,
            })
    }

    /// The stage definition for `name`; names without a definition are empty stages.
    pub fn stage(&self, name: &str) -> Stage {
        self.stages
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| Stage::empty(name))
    }

    /// The code's own checks (§2.5), every problem reported: reserved names, list of
    /// lists, nameless stages and actions outside `allowed_actions` (when given). `raw`
    /// is the pipeline's mapping in `text`, the content of `file`; each error starts
    /// with the `file:line:col` of the node it is about.
    pub fn check(
        &self,
        file: &Path,
        text: &str,
        raw: &Mapping,
        allowed_actions: Option<&[String]>,
    ) -> Vec<String> {
        let locator = Locator::new(text);
        let at = |rel: &str, message: &str| {
            locator.at_node(file, &format!("pipelines.{}.{rel}", self.name), message)
        };
        let mut errors = Vec::new();
        let stages = raw.get("stages").and_then(Value::as_sequence);
        for (i, st) in stages.into_iter().flatten().enumerate() {
            match st.get("name").and_then(Value::as_str) {
                None => errors.push(at(
                    &format!("stages[{i}]"),
                    &format!("pipeline `{}`: stage #{} has no `name`", self.name, i + 1),
                )),
                Some(n) if RESERVED.contains(&n) => errors.push(at(
                    &format!("stages[{i}].name"),
                    &format!("{n} is a reserved stage name"),
                )),
                Some(_) => {}
            }
        }
        if let Some(exec) = raw.get("execution") {
            let ok = exec
                .as_sequence()
                .is_some_and(|arcs| arcs.iter().all(Value::is_sequence));
            if !ok && !exec.is_null() {
                errors.push(at(
                    "execution",
                    "`execution` graph must be a list of lists (graph branches)",
                ));
            }
        }
        if let Some(allowed) = allowed_actions {
            for st in &self.stages {
                // The stage's definition is the last one with its name (see from_value).
                let index = stages
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .rposition(|s| s.get("name").and_then(Value::as_str) == Some(&st.name));
                for action in st.actions() {
                    if !allowed.iter().any(|a| a == action) {
                        // An action filled in by default has no key: the stage is meant.
                        let node = index.map(|i| format!("stages[{i}].{action}"));
                        errors.push(at(
                            node.as_deref().unwrap_or("stages"),
                            &format!(
                                "stage `{}` contains an action (`{action}`) that is not allowed by this pipeline",
                                st.name
                            ),
                        ));
                    }
                }
            }
        }
        errors
    }

    /// Warnings: stages that are defined but not in `execution`, unreferenceable names.
    pub fn warnings(&self) -> Vec<String> {
        let graph = self.user_graph();
        let mut out = Vec::new();
        for st in &self.stages {
            if !graph.nodes().contains(&st.name) {
                out.push(format!(
                    "pipeline `{}`: stage `{}` is not in `execution` and will not run",
                    self.name, st.name
                ));
            }
            if st.name.contains('.')
                || !st
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                out.push(format!(
                    "pipeline `{}`: stage name `{}` cannot be referenced in ${{...}} (use [A-Za-z0-9_-])",
                    self.name, st.name
                ));
            }
        }
        for n in graph.nodes() {
            if !self.stages.iter().any(|s| &s.name == n) {
                out.push(format!(
                    "pipeline `{}`: `{n}` in `execution` has no stage definition and runs as an empty stage",
                    self.name
                ));
            }
        }
        out
    }
}

/// How strictly to validate.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Validate against the verbatim upstream schema (no flense relaxations).
    pub strict: bool,
    /// Only these stage keys are allowed (like the CI admin's allowed actions).
    pub allowed_actions: Option<Vec<String>>,
}

/// The deepest nesting of collections serde_yaml accepts (its own recursion limit).
const MAX_NESTING: usize = 128;

/// Refuses a document nested deeper than [`MAX_NESTING`] before serde_yaml parses it:
/// libyaml's work per token grows with the flow nesting depth, so 20,000 nested `[` took
/// it seconds and 200,000 many minutes before its recursion limit applied (a hostile
/// input of issue #16). yaml-rust2's event parser checks the depth in one pass and stops
/// at the limit; a document it cannot parse is left to serde_yaml to judge.
fn check_nesting(path: &Path, text: &str) -> Result<()> {
    use yaml_rust2::parser::{Event, Parser};
    let too_deep = |mark: &yaml_rust2::scanner::Marker| PipelineError::Yaml {
        path: path.to_path_buf(),
        message: format!(
            "recursion limit exceeded at line {} column {}",
            mark.line(),
            mark.col() + 1
        ),
    };
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::SequenceStart(..) | Event::MappingStart(..), mark)) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_deep(&mark));
                }
            }
            Ok((Event::SequenceEnd | Event::MappingEnd, _)) => depth = depth.saturating_sub(1),
            Ok((Event::StreamEnd, _)) => return Ok(()),
            Ok(_) => {}
            // yaml-rust2 stops at 255 flow levels, deeper than serde_yaml goes anyway.
            Err(e) if e.info() == "recursion limit exceeded" => return Err(too_deep(e.marker())),
            Err(_) => return Ok(()),
        }
    }
}

/// Parses YAML text, applying `<<` merge keys; errors carry line and column.
pub fn parse_yaml(path: &Path, text: &str) -> Result<Value> {
    check_nesting(path, text)?;
    let mut v: Value = serde_yaml::from_str(text).map_err(|e| PipelineError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    v.apply_merge().map_err(|e| PipelineError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(v)
}

/// Reads, validates (schema over the whole file, then the code's rules over the
/// pipelines in `selected`, all when empty) and models a `config.yaml`.
pub fn load(path: &Path, selected: &[String], opts: &LoadOptions) -> Result<ConfigFile> {
    let bytes = std::fs::read(path).map_err(|source| PipelineError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|source| PipelineError::NotUtf8 {
        path: path.to_path_buf(),
        pos: crate::config::Pos::at_byte(source.as_bytes(), source.utf8_error().valid_up_to()),
        source,
    })?;
    load_str(path, &text, selected, opts)
}

/// [`load`] on text already read.
pub fn load_str(
    path: &Path,
    text: &str,
    selected: &[String],
    opts: &LoadOptions,
) -> Result<ConfigFile> {
    let doc = parse_yaml(path, text)?;
    let violations = Schema::load(opts.strict).validate(&doc);
    if !violations.is_empty() {
        let locator = Locator::new(text);
        let errors = violations
            .iter()
            .map(|v| match locator.locate(&v.path) {
                Some((line, col)) => format!("{}:{line}:{col}: {v}", path.display()),
                None => v.to_string(),
            })
            .collect();
        return Err(PipelineError::Schema {
            path: path.to_path_buf(),
            errors,
        });
    }
    let raw = doc
        .get("pipelines")
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    for name in selected {
        if !raw.contains_key(name.as_str()) {
            return Err(PipelineError::UnknownPipeline {
                name: name.clone(),
                path: path.to_path_buf(),
            });
        }
    }
    let mut pipelines = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (k, v) in &raw {
        let name = k
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| super::interp::stringify(k));
        let m = v.as_mapping().cloned().unwrap_or_default();
        let p = Pipeline::from_value(&name, &m);
        if selected.is_empty() || selected.contains(&name) {
            errors.extend(p.check(path, text, &m, opts.allowed_actions.as_deref()));
            errors.extend(services::check(path, text, &name, &m));
            warnings.extend(p.warnings());
        }
        pipelines.push(p);
    }
    if !errors.is_empty() {
        return Err(PipelineError::Validation {
            path: path.to_path_buf(),
            errors,
        });
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        pipelines,
        warnings,
    })
}

impl ConfigFile {
    /// The pipelines to run: `names` in the given order, or all in file order.
    pub fn select(&self, names: &[String]) -> Vec<&Pipeline> {
        if names.is_empty() {
            self.pipelines.iter().collect()
        } else {
            names
                .iter()
                .filter_map(|n| self.pipelines.iter().find(|p| &p.name == n))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests;
