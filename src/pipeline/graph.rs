//! The execution graph: arcs -> edges, and PipelineLib's frame layering.

use std::collections::{BTreeSet, HashSet};

/// A directed graph built from arcs, keeping insertion order for deterministic output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    nodes: Vec<String>,
    edges: Vec<(String, String)>,
    isolates: Vec<String>,
}

impl Graph {
    /// Builds a graph from arcs: each adjacent pair of an arc is an edge, a
    /// one-element arc adds an isolate.
    pub fn from_arcs<S: AsRef<str>>(arcs: &[Vec<S>]) -> Graph {
        let mut g = Graph::default();
        for arc in arcs {
            g.add_arc(
                &arc.iter()
                    .map(|s| s.as_ref().to_string())
                    .collect::<Vec<_>>(),
            );
        }
        g
    }

    fn add_node(&mut self, n: &str) {
        if !self.nodes.iter().any(|x| x == n) {
            self.nodes.push(n.to_string());
        }
    }

    fn add_edge(&mut self, from: &str, to: &str) {
        self.add_node(from);
        self.add_node(to);
        self.isolates.retain(|i| i != from && i != to);
        if !self.edges.iter().any(|(a, b)| a == from && b == to) {
            self.edges.push((from.to_string(), to.to_string()));
        }
    }

    /// Adds one arc.
    pub fn add_arc(&mut self, arc: &[String]) {
        match arc {
            [] => {}
            [single] => {
                let connected = self.edges.iter().any(|(a, b)| a == single || b == single);
                self.add_node(single);
                if !connected && !self.isolates.contains(single) {
                    self.isolates.push(single.clone());
                }
            }
            _ => {
                for pair in arc.windows(2) {
                    self.add_edge(&pair[0], &pair[1]);
                }
            }
        }
    }

    /// Every node, in first-seen order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Direct predecessors of `n`.
    pub fn in_to(&self, n: &str) -> Vec<String> {
        self.edges
            .iter()
            .filter(|(_, b)| b == n)
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Direct successors of `n`.
    pub fn out_of(&self, n: &str) -> Vec<String> {
        self.edges
            .iter()
            .filter(|(a, _)| a == n)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Nodes with no incoming edge (isolates included).
    pub fn roots(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| self.in_to(n).is_empty())
            .cloned()
            .collect()
    }

    /// Nodes with no outgoing edge (isolates included).
    pub fn leaves(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| self.out_of(n).is_empty())
            .cloned()
            .collect()
    }

    /// Transitive predecessors of `n` (never `n` itself unless on a cycle).
    pub fn ancestors(&self, n: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = self.in_to(n);
        while let Some(p) = todo.pop() {
            if seen.insert(p.clone()) {
                todo.extend(self.in_to(&p));
            }
        }
        seen
    }

    /// Union: all edges and isolates of both.
    pub fn union(&self, other: &Graph) -> Graph {
        let mut g = self.clone();
        for n in &other.nodes {
            g.add_node(n);
        }
        for (a, b) in &other.edges {
            g.add_edge(a, b);
        }
        for i in &other.isolates {
            if !g.edges.iter().any(|(a, b)| a == i || b == i) && !g.isolates.contains(i) {
                g.isolates.push(i.clone());
            }
        }
        g
    }

    /// Concatenation: the union plus an edge from every leaf of `self` to every root
    /// of `other`.
    pub fn concat(&self, other: &Graph) -> Graph {
        let leaves = self.leaves();
        let roots = other.roots();
        let mut g = self.union(other);
        for l in &leaves {
            for r in &roots {
                g.add_edge(l, r);
            }
        }
        g
    }

    /// PipelineLib's stack: frame 0 holds the roots; each later frame holds the
    /// successors of the previous frame whose predecessors are all scheduled.
    /// `Err(digraph)` when a cycle stops the layering early.
    pub fn frames(&self) -> Result<Vec<Vec<String>>, String> {
        let mut frames: Vec<Vec<String>> = Vec::new();
        let mut scheduled: HashSet<String> = HashSet::new();
        let mut frame = self.roots();
        while !frame.is_empty() {
            scheduled.extend(frame.iter().cloned());
            let mut next: Vec<String> = Vec::new();
            for n in &frame {
                for s in self.out_of(n) {
                    if !scheduled.contains(&s)
                        && !next.contains(&s)
                        && self.in_to(&s).iter().all(|p| scheduled.contains(p))
                    {
                        next.push(s);
                    }
                }
            }
            frames.push(std::mem::replace(&mut frame, next));
        }
        if scheduled.len() < self.nodes.len() {
            return Err(self.to_string());
        }
        Ok(frames)
    }
}

impl std::fmt::Display for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .edges
            .iter()
            .map(|(a, b)| format!("{a} -> {b}"))
            .collect();
        parts.extend(self.isolates.iter().cloned());
        write!(f, "digraph {{ {} }}", parts.join("; "))
    }
}

/// Renders frames as `[a, b] [c]`.
pub fn render_frames(frames: &[Vec<String>]) -> String {
    frames
        .iter()
        .map(|f| format!("[{}]", f.join(", ")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The frames without the implicit `setup` and `teardown` stages; frames left empty
/// are dropped.
pub fn user_frames(frames: &[Vec<String>]) -> Vec<Vec<String>> {
    frames
        .iter()
        .map(|f| {
            f.iter()
                .filter(|n| *n != "setup" && *n != "teardown")
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|f| !f.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(arcs: &[&[&str]]) -> Graph {
        Graph::from_arcs(&arcs.iter().map(|a| a.to_vec()).collect::<Vec<_>>())
    }
    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ancestors() {
        let gr = g(&[&["a", "b", "c", "d", "e", "f"], &["x", "d", "y", "f"]]);
        assert_eq!(gr.ancestors("c"), set(&["a", "b"]));
        assert_eq!(gr.ancestors("d"), set(&["a", "b", "c", "x"]));
        assert_eq!(gr.ancestors("f"), set(&["a", "b", "c", "d", "e", "x", "y"]));
    }

    #[test]
    fn leaves_roots_degrees() {
        assert_eq!(
            g(&[&["a", "b", "c", "d"], &["f", "b", "g"]]).leaves(),
            vec!["d", "g"]
        );
        let gr = g(&[&["a", "b", "c"], &["d", "b", "e"], &["f", "b"]]);
        assert_eq!(gr.in_to("b"), vec!["a", "d", "f"]);
        assert_eq!(gr.out_of("b"), vec!["c", "e"]);
        assert!(gr.in_to("a").is_empty());
        assert_eq!(
            g(&[&["a", "b", "c", "d", "e"], &["f", "b", "g", "e"]]).roots(),
            vec!["a", "f"]
        );
        assert_eq!(g(&[&["a"], &["z"]]).roots(), vec!["a", "z"]);
        let nodes = g(&[&["a", "b", "c"], &["x", "b", "y"], &["z"]]);
        assert_eq!(nodes.nodes().len(), 6);
    }

    #[test]
    fn union_and_concat() {
        let left = g(&[&["x", "y", "z"]]);
        let right = g(&[&["a", "b", "c"], &["d", "b", "e"]]);
        let u = left.union(&right);
        let expected = g(&[&["x", "y", "z"], &["a", "b", "c"], &["d", "b", "e"]]);
        assert_eq!(set_edges(&u), set_edges(&expected));
        let c = left.concat(&right);
        let expected = g(&[
            &["x", "y", "z", "a", "b", "c"],
            &["x", "y", "z", "d", "b", "e"],
        ]);
        assert_eq!(set_edges(&c), set_edges(&expected));
    }

    fn set_edges(gr: &Graph) -> BTreeSet<(String, String)> {
        gr.edges.iter().cloned().collect()
    }

    #[test]
    fn stack_layering() {
        let gr = g(&[&["a", "b", "c", "d", "e", "f"], &["x", "d", "y", "f"]]);
        assert_eq!(
            render_frames(&gr.frames().unwrap()),
            "[a, x] [b] [c] [d] [e, y] [f]"
        );
    }

    #[test]
    fn cycle_and_display() {
        let err = g(&[&["a", "b", "c"], &["x", "b", "y", "a"]])
            .frames()
            .unwrap_err();
        assert!(err.starts_with("digraph { a -> b;"), "{err}");
        assert_eq!(
            g(&[&["a", "b", "c"], &["x"]]).to_string(),
            "digraph { a -> b; b -> c; x }"
        );
    }
}
