//! Struct validation (spec §3.2): every rule with Blubber's message text, plus the file
//! position, the variant and the full path of the offending value.

use std::collections::HashSet;

use super::decode::{field_of, Positions};
use super::error::{ConfigError, Pos, Problem};
use super::model::*;
use super::paths;
use super::rules;

mod apt;
mod builders;

/// Collects validation errors for one file.
pub(crate) struct Validator<'a> {
    file: &'a str,
    positions: &'a Positions,
    variant_names: HashSet<&'a str>,
    /// Path prefixes to try, in order, when a value's own path has no recorded
    /// position (values inherited through merging).
    fallbacks: Vec<String>,
    variant: Option<String>,
    /// Errors found.
    pub errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    pub fn new(file: &'a str, positions: &'a Positions, variant_names: HashSet<&'a str>) -> Self {
        Validator {
            file,
            positions,
            variant_names,
            fallbacks: Vec::new(),
            variant: None,
            errors: Vec::new(),
        }
    }

    /// Where `path` is, trying the path itself, then the same suffix under each
    /// fallback prefix, then parent paths.
    fn locate(&self, path: &str) -> Option<Pos> {
        let mut candidate = path.to_string();
        loop {
            if let Some(p) = self.positions.get(&candidate) {
                return Some(*p);
            }
            if let Some(prefix) = self.variant.as_ref().map(|v| format!("variants.{v}")) {
                if let Some(suffix) = candidate.strip_prefix(&prefix) {
                    for fb in &self.fallbacks {
                        let alt = format!("{fb}{suffix}");
                        let alt = alt.trim_start_matches('.');
                        if let Some(p) = self.positions.get(alt) {
                            return Some(*p);
                        }
                    }
                }
            }
            match parent(&candidate) {
                Some(p) => candidate = p,
                None => return None,
            }
        }
    }

    fn err(&mut self, path: &str, problem: Problem) {
        self.err_at(path, path, problem);
    }

    /// Reports an error about `path` at the position of `at` (e.g. one bad key).
    fn err_at(&mut self, at: &str, path: &str, problem: Problem) {
        let pos = self.locate(at);
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            pos,
            variant: self.variant.clone(),
            path: path.to_string(),
            problem,
        });
    }

    /// Validates the variant-name keys.
    pub fn variant_names(&mut self, variants: &[Variant]) {
        for v in variants {
            if !rules::is_variant_name(&v.name) {
                let path = format!("variants.{}#key", v.name);
                self.err(
                    &path,
                    Problem::BadVariantName {
                        field: "variants".into(),
                    },
                );
                if let Some(last) = self.errors.last_mut() {
                    last.path = format!("variants.{}", v.name);
                }
            }
        }
    }

    /// Validates the top level.
    pub fn top(&mut self, common: &CommonConfig) {
        self.variant = None;
        self.fallbacks.clear();
        self.common(common, "");
    }

    /// Validates one raw variant.
    pub fn raw_variant(&mut self, v: &Variant) {
        self.variant = Some(v.name.clone());
        self.fallbacks.clear();
        let path = format!("variants.{}", v.name);
        for (i, inc) in v.includes.iter().enumerate() {
            if inc != LOCAL && !self.variant_names.contains(inc.as_str()) {
                self.err(
                    &format!("{path}.includes[{i}]"),
                    Problem::UnknownVariantRef {
                        field: format!("includes[{i}]"),
                        value: inc.clone(),
                    },
                );
            }
        }
        self.copies(&v.copies, &format!("{path}.copies"));
        self.common(&v.common, &path);
        self.variant = None;
    }

    /// Validates a merged variant; positions of inherited values are looked up in the
    /// variants it includes (latest first), then at the top level.
    pub fn expanded(&mut self, v: &VariantConfig) {
        self.variant = Some(v.name.clone());
        self.fallbacks = v
            .includes
            .iter()
            .rev()
            .map(|i| format!("variants.{i}"))
            .chain(std::iter::once(String::new()))
            .collect();
        let path = format!("variants.{}", v.name);
        self.copies(&v.copies, &format!("{path}.copies"));
        self.common(&v.common, &path);
        self.variant = None;
        self.fallbacks.clear();
    }

    fn common(&mut self, c: &CommonConfig, path: &str) {
        let p = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        if let Some(base) = c.base.as_deref().filter(|b| !b.is_empty()) {
            if !rules::is_image_ref(base) {
                self.err(
                    &p("base"),
                    Problem::ImageRef {
                        field: "base".into(),
                        value: base.into(),
                    },
                );
            }
        }
        if let Some(bad) = c.arguments.keys().find(|k| !rules::is_env_name(k)) {
            let path = p("arguments");
            let at = format!("{path}.{bad}#key");
            let problem = Problem::EnvVars {
                field: "arguments".into(),
            };
            self.err_at(&at, &path, problem);
        }
        self.apt(&c.apt, &p("apt"));
        if let Some(b) = &c.builder {
            self.custom_builder(b, &p("builder"));
        }
        self.builders(c, &p("builders"));
        self.node(&c.node, &p("node"));
        self.php(&c.php, &p("php"));
        self.python(&c.python, &p("python"));
        self.user(&c.lives.user, &p("lives"));
        self.abs_path(&c.lives.dir, &p("lives.in"));
        self.user(&c.runs.user, &p("runs"));
        self.abs_path(&c.runs.dir, &p("runs.in"));
        if let Some(bad) = c.runs.environment.keys().find(|k| !rules::is_env_name(k)) {
            let path = p("runs.environment");
            let at = format!("{path}.{bad}#key");
            let problem = Problem::EnvVars {
                field: "environment".into(),
            };
            self.err_at(&at, &path, problem);
        }
    }

    fn abs_path(&mut self, value: &str, path: &str) {
        if !value.is_empty() && !paths::is_abs_non_root(value) {
            self.err(
                path,
                Problem::AbsPath {
                    field: "in".into(),
                    value: value.into(),
                },
            );
        }
    }

    fn user(&mut self, u: &UserConfig, path: &str) {
        if !u.name.is_empty() && !rules::is_user_name(&u.name) {
            self.err(
                &format!("{path}.as"),
                Problem::UserName {
                    field: "as".into(),
                    value: u.name.clone(),
                },
            );
        }
    }

    fn copies(&mut self, copies: &[Artifact], path: &str) {
        if has_duplicates(copies) {
            self.err(
                path,
                Problem::Duplicates {
                    field: "copies".into(),
                },
            );
            return;
        }
        for (i, a) in copies.iter().enumerate() {
            self.artifact(a, &format!("{path}[{i}]"));
        }
    }

    fn requirements(&mut self, reqs: &[Artifact], path: &str) {
        if has_duplicates(reqs) {
            self.err(
                path,
                Problem::Duplicates {
                    field: "requirements".into(),
                },
            );
            return;
        }
        for (i, a) in reqs.iter().enumerate() {
            self.artifact(a, &format!("{path}[{i}]"));
        }
    }

    fn artifact(&mut self, a: &Artifact, path: &str) {
        let from_path = format!("{path}.from");
        if a.from.is_empty() {
            self.err(
                &from_path,
                Problem::Required {
                    field: "from".into(),
                },
            );
        } else if a.from != LOCAL
            && !self.variant_names.contains(a.from.as_str())
            && !rules::is_image_ref(&a.from)
        {
            self.err(
                &from_path,
                Problem::ArtifactFrom {
                    field: "from".into(),
                    value: a.from.clone(),
                },
            );
        }
        let source_path = format!("{path}.source");
        if a.source.is_empty() && !a.destination.is_empty() {
            self.err(
                &source_path,
                Problem::RequiredWith {
                    field: "source".into(),
                    param: "destination".into(),
                },
            );
        } else if a.from == LOCAL && !a.source.is_empty() && paths::escapes_context(&a.source) {
            self.err(
                &source_path,
                Problem::RelativeLocal {
                    field: "source".into(),
                },
            );
        }
    }
}

fn has_duplicates<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, x)| items[..i].contains(x))
}

/// The parent of a dotted/indexed path (`a.b[1].c` -> `a.b[1]` -> `a.b` -> `a`).
fn parent(path: &str) -> Option<String> {
    let path = path.strip_suffix("#key").unwrap_or(path);
    if path.is_empty() {
        return None;
    }
    let mut depth = 0usize;
    let mut cut = None;
    for (i, c) in path.char_indices() {
        match c {
            '[' => {
                if depth == 0 {
                    cut = Some(i);
                }
                depth += 1;
            }
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => cut = Some(i),
            _ => {}
        }
    }
    cut.map(|i| path[..i].to_string())
        .or(Some(String::new()))
        .filter(|p| p != path)
}
