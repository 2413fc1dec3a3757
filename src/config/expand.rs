//! Variant expansion (spec §1 step 7, §4): includes merged in dependency order,
//! copies expanded with the variant's `lives.in`, merged conflicts validated; and the
//! copies dependency graph for multi-stage builds.

use std::collections::HashSet;

use super::error::{ConfigError, ConfigErrors, Problem};
use super::graph::{DepGraph, GraphError};
use super::merge::merge_copies;
use super::model::*;
use super::validate::Validator;

impl Config {
    /// The variant names, in file order.
    pub fn variant_names(&self) -> Vec<&str> {
        self.variants.iter().map(|v| v.name.as_str()).collect()
    }

    /// The raw (unmerged) variant called `name`.
    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }

    fn error(&self, variant: &str, path: String, problem: Problem) -> ConfigErrors {
        let pos = self
            .positions
            .get(&path)
            .or_else(|| self.positions.get(&format!("{path}#key")))
            .copied();
        ConfigErrors::one(ConfigError {
            file: self.file_name.clone(),
            pos,
            variant: Some(variant.to_string()),
            path,
            problem,
        })
    }

    /// The includes closure of `name`, leaves first (merge order).
    pub fn includes_order(&self, name: &str) -> Result<Vec<String>, ConfigErrors> {
        let mut graph = DepGraph::default();
        for v in &self.variants {
            graph.add_node(&v.name);
        }
        for v in &self.variants {
            for inc in &v.includes {
                if self.variant(inc).is_some() {
                    graph.add_dep(&v.name, inc);
                }
            }
        }
        graph.deps(name).map_err(|e| match e {
            GraphError::Cycle(at) => self.error(
                name,
                format!("variants.{name}.includes"),
                Problem::IncludesCycle {
                    variant: name.to_string(),
                    at,
                },
            ),
            GraphError::UnknownKey(_) => ConfigErrors::one(ConfigError {
                file: self.file_name.clone(),
                pos: None,
                variant: Some(name.to_string()),
                path: String::new(),
                problem: Problem::UnknownVariant {
                    variant: name.to_string(),
                },
            }),
        })
    }

    /// Expands `name`: top level ⊕ each include (leaves first) ⊕ the variant; copies
    /// expanded; then validated again (merged conflicts such as `builders` + `node`).
    pub fn expand(&self, name: &str) -> Result<VariantConfig, ConfigErrors> {
        let order = self.includes_order(name)?;
        let target = self.variant(name).expect("includes_order checked the name");
        let mut common = self.common.clone();
        let mut copies: Vec<Artifact> = Vec::new();
        for inc in order
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(name))
        {
            let v = if inc == name {
                target
            } else {
                self.variant(inc).expect("graph nodes are variants")
            };
            common.merge(&v.common);
            copies = merge_copies(&copies, &v.copies);
        }
        let expanded_copies = expand_copies(&copies, &common.lives.dir);
        let variant = VariantConfig {
            name: name.to_string(),
            common,
            copies,
            expanded_copies,
            includes: order,
        };
        let names: HashSet<&str> = self.variant_names().into_iter().collect();
        let mut validator = Validator::new(&self.file_name, &self.positions, names);
        validator.expanded(&variant);
        if validator.errors.is_empty() {
            Ok(variant)
        } else {
            Err(ConfigErrors {
                errors: validator.errors,
            })
        }
    }

    /// The variants `name` depends on through copies, builder requirements and mounts
    /// (transitively), leaves first, without `name` itself: the stages to build first.
    /// Every variant in the walk is expanded, so dependencies that arrive through
    /// `includes` count at every level.
    pub fn copies_dependencies(&self, name: &str) -> Result<Vec<String>, ConfigErrors> {
        let mut graph = DepGraph::default();
        let mut pending = vec![name.to_string()];
        let mut done = HashSet::new();
        while let Some(current) = pending.pop() {
            if !done.insert(current.clone()) {
                continue;
            }
            let expanded = self.expand(&current)?;
            graph.add_node(&current);
            for dep in stage_references(&expanded) {
                if self.variant(&dep).is_some() {
                    graph.add_dep(&current, &dep);
                    pending.push(dep);
                }
            }
        }
        graph.deps(name).map_err(|e| {
            let at = match e {
                GraphError::Cycle(at) | GraphError::UnknownKey(at) => at,
            };
            self.error(
                name,
                format!("variants.{name}.copies"),
                Problem::CopiesCycle {
                    variant: name.to_string(),
                    at,
                },
            )
        })
    }

    /// Expands every variant and checks every copies graph; all errors are returned.
    pub fn check_all(&self) -> Result<(), ConfigErrors> {
        let mut errors: Vec<ConfigError> = Vec::new();
        for name in self.variant_names() {
            let result = self
                .expand(name)
                .and_then(|_| self.copies_dependencies(name).map(|_| ()));
            if let Err(e) = result {
                for err in e.errors {
                    if !errors.contains(&err) {
                        errors.push(err);
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors { errors })
        }
    }
}

/// The `from` values of an expanded variant other than `local`, in order, each once:
/// copies, builder requirements and mounts. Those that name a defined variant are its
/// build stages; the others are images.
pub fn stage_references(v: &VariantConfig) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |from: &str| {
        if from != LOCAL && !from.is_empty() && !out.iter().any(|o| o == from) {
            out.push(from.to_string());
        }
    };
    for a in &v.copies {
        add(&a.from);
    }
    let c = &v.common;
    let mut requirement_lists: Vec<&Vec<Artifact>> = Vec::new();
    let mut mount_lists: Vec<&Vec<Mount>> = Vec::new();
    if let Some(b) = &c.builder {
        requirement_lists.extend(b.requirements.as_ref());
        mount_lists.extend(b.mounts.as_ref());
    }
    requirement_lists.extend(c.node.requirements.as_ref());
    requirement_lists.extend(c.php.requirements.as_ref());
    requirement_lists.extend(c.python.requirements.as_ref());
    for e in &c.builders {
        match e {
            BuilderEntry::Custom(b) => {
                requirement_lists.extend(b.requirements.as_ref());
                mount_lists.extend(b.mounts.as_ref());
            }
            BuilderEntry::Node(n) => requirement_lists.extend(n.requirements.as_ref()),
            BuilderEntry::Php(p) => requirement_lists.extend(p.requirements.as_ref()),
            BuilderEntry::Python(p) => requirement_lists.extend(p.requirements.as_ref()),
        }
    }
    for list in requirement_lists {
        for a in list {
            add(&a.from);
        }
    }
    for list in mount_lists {
        for m in list {
            add(&m.from);
        }
    }
    out
}

/// Expands copies with the copying variant's `lives.in` (spec §2.8).
pub fn expand_copies(copies: &[Artifact], lives_in: &str) -> Vec<Artifact> {
    let mut out = Vec::new();
    for a in copies {
        let has_source = !a.source.is_empty();
        let has_dest = !a.destination.is_empty();
        if a.from == LOCAL && !has_source && !has_dest {
            out.push(Artifact {
                source: ".".into(),
                destination: ".".into(),
                ..a.clone()
            });
        } else if !has_source && !has_dest {
            for dir in [lives_in, "/opt/lib"] {
                out.push(Artifact {
                    source: dir.into(),
                    destination: dir.into(),
                    ..a.clone()
                });
            }
        } else if !has_dest {
            out.push(Artifact {
                destination: a.source.clone(),
                ..a.clone()
            });
        } else {
            out.push(a.clone());
        }
    }
    out
}
