//! Blubber's `--policy`: a YAML (or JSON) list of enforcements, each a dot-path into
//! the config and a validator rule, checked after the target variant and its copies
//! dependencies are expanded (other variants stay raw, as upstream, quirk Q20). The
//! first violation stops the check with Blubber's wording; a path that resolves to
//! nothing is skipped.
//!
//! ```yaml
//! enforcements:
//!   - path: variants.production.runs.insecurely
//!     rule: isfalse
//!   - path: base
//!     rule: oneof=docker-registry.wikimedia.org/bookworm:latest
//! ```

use std::collections::{BTreeMap, HashSet};

use super::error::Pos;
use super::yaml::{self, Node, NodeKind};
use super::{stage_references, Config, ConfigErrors, DepGraph, VariantConfig};

mod rules;
mod tree;

pub use rules::Rule;
pub use tree::GoValue;

/// Why a policy could not be read or a config fails it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy text is not valid YAML.
    #[error("{origin}:{pos}: invalid YAML: {message}")]
    Yaml {
        /// Where the policy came from.
        origin: String,
        /// Where the parser stopped.
        pos: Pos,
        /// The parser's description.
        message: String,
    },
    /// The policy's structure or a rule is wrong.
    #[error("{origin}:{pos}: {message}")]
    Invalid {
        /// Where the policy came from.
        origin: String,
        /// The offending value.
        pos: Pos,
        /// What is wrong.
        message: String,
    },
    /// The config could not be expanded for the check.
    #[error("{0}")]
    Config(ConfigErrors),
    /// An enforcement failed (Blubber's CLI wording; exit 6 there).
    #[error("Configuration fails policy check against:\npolicy: {policy}\nviolation: value: \"{value}\", for \"{path}\" violates policy rule \"{rule}\"")]
    Violation {
        /// Where the policy came from.
        policy: String,
        /// The value, printed like Go's `%s`.
        value: String,
        /// The enforcement's path.
        path: String,
        /// The enforcement's rule.
        rule: String,
    },
}

/// One enforcement: a config path and the rule its value must pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Enforcement {
    /// Dot-path of JSON field names (`variants.production.runs.as`).
    pub path: String,
    /// The rule as written (`omitempty,startswith=docker-registry.wikimedia.org`).
    pub rule: String,
    parsed: Rule,
}

/// A policy: enforcements checked in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Where the policy came from (path or URL), for messages.
    pub source: String,
    /// The enforcements, in file order.
    pub enforcements: Vec<Enforcement>,
}

impl Policy {
    /// Reads policy text (YAML or JSON). As Go's JSON decoder does, unknown keys are
    /// ignored; wrong types, unknown validators and empty paths are errors.
    pub fn parse(text: &str, source: &str) -> Result<Policy, PolicyError> {
        let root = yaml::parse(text).map_err(|e| PolicyError::Yaml {
            origin: source.to_string(),
            pos: e.pos,
            message: e.message,
        })?;
        let invalid = |pos: Pos, message: String| PolicyError::Invalid {
            origin: source.to_string(),
            pos,
            message,
        };
        let mut enforcements = Vec::new();
        let items = match &root.kind {
            NodeKind::Null => return Ok(Policy::empty(source)),
            NodeKind::Map(entries) => match lookup(entries, "enforcements") {
                None => return Ok(Policy::empty(source)),
                Some(Node {
                    kind: NodeKind::Null,
                    ..
                }) => return Ok(Policy::empty(source)),
                Some(Node {
                    kind: NodeKind::Seq(items),
                    ..
                }) => items,
                Some(other) => {
                    return Err(invalid(
                        other.pos,
                        type_error(other, "enforcements", "[]config.Enforcement"),
                    ))
                }
            },
            _ => return Err(invalid(root.pos, type_error(&root, "", "config.Policy"))),
        };
        for (i, item) in items.iter().enumerate() {
            let NodeKind::Map(entries) = &item.kind else {
                return Err(invalid(
                    item.pos,
                    type_error(item, "enforcements", "config.Enforcement"),
                ));
            };
            let text_of = |key: &str| -> Result<(String, Pos), PolicyError> {
                match lookup(entries, key) {
                    None => Ok((String::new(), item.pos)),
                    Some(n) => match &n.kind {
                        NodeKind::Str(s) => Ok((s.clone(), n.pos)),
                        NodeKind::Null => Ok((String::new(), n.pos)),
                        _ => Err(invalid(
                            n.pos,
                            type_error(n, &format!("enforcements.{key}"), "string"),
                        )),
                    },
                }
            };
            let (path, path_pos) = text_of("path")?;
            let (rule, rule_pos) = text_of("rule")?;
            if path.is_empty() {
                return Err(invalid(
                    path_pos,
                    format!("enforcements[{i}].path: is required"),
                ));
            }
            let parsed = Rule::parse(&rule)
                .map_err(|e| invalid(rule_pos, format!("enforcements[{i}].rule {rule:?}: {e}")))?;
            enforcements.push(Enforcement { path, rule, parsed });
        }
        Ok(Policy {
            source: source.to_string(),
            enforcements,
        })
    }

    fn empty(source: &str) -> Policy {
        Policy {
            source: source.to_string(),
            enforcements: Vec::new(),
        }
    }

    /// Checks `config` as Blubber does before compiling `variant`: the first failing
    /// enforcement is the error.
    pub fn check(&self, config: &Config, variant: &str) -> Result<(), PolicyError> {
        let tree = policy_tree(config, variant).map_err(PolicyError::Config)?;
        for e in &self.enforcements {
            let Some(value) = tree.resolve(&e.path) else {
                continue;
            };
            let value = match value {
                GoValue::Flag(t, _) => GoValue::Bool(t),
                other => other,
            };
            if !e.parsed.check(&value) {
                return Err(PolicyError::Violation {
                    policy: self.source.clone(),
                    value: value.go_format(),
                    path: e.path.clone(),
                    rule: e.rule.clone(),
                });
            }
        }
        Ok(())
    }
}

fn lookup<'a>(entries: &'a [(yaml::Key, Node)], key: &str) -> Option<&'a Node> {
    entries.iter().find(|(k, _)| k.name == key).map(|(_, n)| n)
}

/// Go's `json: cannot unmarshal <type> into Go struct field <path> of type <T>`.
fn type_error(node: &Node, field: &str, go_type: &str) -> String {
    if field.is_empty() {
        format!(
            "json: cannot unmarshal {} into Go value of type {go_type}",
            node.kind.json_type()
        )
    } else {
        format!(
            "json: cannot unmarshal {} into Go struct field Policy.{field} of type {go_type}",
            node.kind.json_type()
        )
    }
}

/// The config as `ExpandIncludesAndCopies(config, variant)` leaves it: the target and
/// the variants it copies from (found through the *raw* configs of the others)
/// expanded, every other variant raw.
fn policy_tree(config: &Config, variant: &str) -> Result<GoValue, ConfigErrors> {
    let target = config.expand(variant)?;
    let mut graph = DepGraph::default();
    let names: HashSet<&str> = config.variant_names().into_iter().collect();
    for v in &config.variants {
        graph.add_node(&v.name);
        let refs = if v.name == variant {
            stage_references(&target)
        } else {
            stage_references(&raw(v))
        };
        for dep in refs.iter().filter(|d| names.contains(d.as_str())) {
            graph.add_dep(&v.name, dep);
        }
    }
    let deps: HashSet<String> = graph
        .deps(variant)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut variants = BTreeMap::new();
    for v in &config.variants {
        let value = if v.name == variant {
            tree::variant(&[], &target.copies, &target.common)
        } else if deps.contains(&v.name) {
            let e = config.expand(&v.name)?;
            tree::variant(&[], &e.copies, &e.common)
        } else {
            tree::variant(&v.includes, &v.copies, &v.common)
        };
        variants.insert(v.name.clone(), value);
    }
    Ok(tree::config(&config.common, variants, &config.version))
}

/// A raw variant in the shape `stage_references` reads.
fn raw(v: &super::Variant) -> VariantConfig {
    VariantConfig {
        name: v.name.clone(),
        common: v.common.clone(),
        copies: v.copies.clone(),
        expanded_copies: Vec::new(),
        includes: v.includes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "version: v4\nbase: docker-registry.wikimedia.org/wikimedia-stretch:latest\nvariants:\n  dev:\n    base: foo\n  pred:\n    includes: [dev]\n  production:\n    includes: [dev]\n  copier:\n    copies: [pred]\n";

    fn policy(text: &str) -> Policy {
        Policy::parse(text, "policy.yaml").unwrap()
    }

    #[test]
    fn includes_are_expanded_for_the_target() {
        let config = crate::config::load_str(CONFIG, "blubber.yaml").unwrap();
        let p = policy("enforcements:\n  - path: variants.production.base\n    rule: omitempty,startswith=docker-registry.wikimedia.org\n");
        let err = p.check(&config, "production").unwrap_err().to_string();
        assert!(err.ends_with("violation: value: \"foo\", for \"variants.production.base\" violates policy rule \"omitempty,startswith=docker-registry.wikimedia.org\""), "{err}");
        // Compiling another variant leaves `production` raw: its base is empty.
        assert!(p.check(&config, "copier").is_ok());
    }

    #[test]
    fn copies_dependencies_are_expanded() {
        let config = crate::config::load_str(CONFIG, "blubber.yaml").unwrap();
        let p = policy("enforcements:\n  - path: variants.pred.base\n    rule: omitempty,startswith=docker-registry.wikimedia.org\n");
        assert!(p.check(&config, "copier").is_err());
        assert!(p.check(&config, "production").is_ok());
    }

    #[test]
    fn flags_compare_as_booleans_and_print_like_go() {
        let config = crate::config::load_str(
            "version: v4\nbase: a\nvariants:\n  production:\n    runs: {insecurely: true, uid: 0}\n",
            "b.yaml",
        )
        .unwrap();
        let err = policy(
            "enforcements:\n  - {path: variants.production.runs.insecurely, rule: isfalse}\n",
        )
        .check(&config, "production")
        .unwrap_err()
        .to_string();
        assert!(err.contains("value: \"%!s(bool=true)\""), "{err}");
        // Inherited from the defaults through the top level: runs.as = runuser.
        let err =
            policy("enforcements:\n  - {path: variants.production.runs.as, rule: ne=runuser}\n")
                .check(&config, "production")
                .unwrap_err()
                .to_string();
        assert!(err.contains("value: \"runuser\""), "{err}");
    }

    #[test]
    fn unknown_paths_are_skipped() {
        let config = crate::config::load_str(CONFIG, "blubber.yaml").unwrap();
        let p = policy("enforcements:\n  - {path: variants.nope.base, rule: required}\n  - {path: base.more, rule: required}\n  - {path: variants.production.copies.from, rule: required}\n");
        assert!(p.check(&config, "production").is_ok());
    }

    #[test]
    fn bad_policies_are_refused_with_positions() {
        let err = Policy::parse(
            "enforcements:\n  - path: base\n    rule: frob=1\n",
            "p.yaml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "p.yaml:3:11: enforcements[0].rule \"frob=1\": unknown validation \"frob\""
        );
        let err = Policy::parse("enforcements: 3\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot unmarshal number"), "{err}");
    }
}
