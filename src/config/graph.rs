//! The ordered dependency graph Blubber uses for both `includes` and copies (spec
//! §4.3): dependencies keep insertion order without duplicates; a walk emits each
//! dependency's own dependencies before it (leaves first), first position wins.

/// Why a walk failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The walk came back to a node that is still being walked.
    #[error("Detected dependency graph cycle at '{0}'")]
    Cycle(String),
    /// The start node is not in the graph.
    #[error("There is no key '{0}' in the dependency graph")]
    UnknownKey(String),
}

/// An insertion-ordered graph of named nodes.
#[derive(Debug, Clone, Default)]
pub struct DepGraph {
    nodes: Vec<(String, Vec<String>)>,
}

impl DepGraph {
    /// Adds a node (no-op when it exists).
    pub fn add_node(&mut self, key: &str) {
        if self.index(key).is_none() {
            self.nodes.push((key.to_string(), Vec::new()));
        }
    }

    /// Adds the edge `key -> dep` (both nodes are created as needed).
    pub fn add_dep(&mut self, key: &str, dep: &str) {
        self.add_node(key);
        self.add_node(dep);
        let i = self.index(key).expect("node was just added");
        if !self.nodes[i].1.iter().any(|d| d == dep) {
            self.nodes[i].1.push(dep.to_string());
        }
    }

    /// Whether `key` is a node.
    pub fn contains(&self, key: &str) -> bool {
        self.index(key).is_some()
    }

    fn index(&self, key: &str) -> Option<usize> {
        self.nodes.iter().position(|(k, _)| k == key)
    }

    /// All transitive dependencies of `key`, leaves first, each once.
    pub fn deps(&self, key: &str) -> Result<Vec<String>, GraphError> {
        if !self.contains(key) {
            return Err(GraphError::UnknownKey(key.to_string()));
        }
        let mut out = Vec::new();
        let mut walking = vec![key.to_string()];
        self.walk(key, &mut walking, &mut out)?;
        Ok(out)
    }

    fn walk(
        &self,
        key: &str,
        walking: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<(), GraphError> {
        let Some(i) = self.index(key) else {
            return Ok(());
        };
        for dep in &self.nodes[i].1 {
            if walking.iter().any(|w| w == dep) {
                return Err(GraphError::Cycle(dep.clone()));
            }
            walking.push(dep.clone());
            self.walk(dep, walking, out)?;
            walking.pop();
            if !out.contains(dep) {
                out.push(dep.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> DepGraph {
        let mut g = DepGraph::default();
        for (k, deps) in edges {
            g.add_node(k);
            for d in *deps {
                g.add_dep(k, d);
            }
        }
        g
    }

    #[test]
    fn leaves_first_in_declaration_order() {
        let g = graph(&[
            ("varA", &["varB", "varC"]),
            ("varB", &["varD", "varE"]),
            ("varD", &["varF"]),
        ]);
        assert_eq!(
            g.deps("varA").unwrap(),
            ["varF", "varD", "varE", "varB", "varC"]
        );
        let g = graph(&[
            ("top", &["mid1", "mid2"]),
            ("mid1", &["leaf1", "leaf2"]),
            ("mid2", &["leaf2", "leaf3"]),
        ]);
        assert_eq!(
            g.deps("top").unwrap(),
            ["leaf1", "leaf2", "mid1", "leaf3", "mid2"]
        );
    }

    #[test]
    fn cycles_and_unknown_keys() {
        let g = graph(&[("varA", &["varB"]), ("varB", &["varA"])]);
        assert_eq!(g.deps("varA"), Err(GraphError::Cycle("varA".into())));
        assert_eq!(g.deps("nope"), Err(GraphError::UnknownKey("nope".into())));
    }
}
