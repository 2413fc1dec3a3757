//! Turns `yaml_rust2` parser events into a located [`Node`] tree: anchors and aliases,
//! `<<` merge keys, YAML 1.1 scalar resolution and limits against alias bombs.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{resolve_plain, Key, Node, NodeKind, YamlError};
use crate::config::error::Pos;

pub(super) fn pos_of(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// A collection being built: a sequence, or a mapping waiting for keys and values.
enum Open {
    Seq {
        anchor: usize,
        pos: Pos,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        pos: Pos,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Node>,
        /// Values of `<<` merge keys, applied when the mapping ends.
        merges: Vec<Node>,
    },
}

/// Receives parser events and assembles the located tree, enforcing the size limits.
#[derive(Default)]
pub(super) struct TreeBuilder {
    stack: Vec<Open>,
    /// Anchored nodes and their sizes (in nodes), for aliases.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes in the tree so far, aliases counted by their full size.
    nodes: usize,
    pub(super) root: Option<Node>,
    pub(super) error: Option<YamlError>,
    done: bool,
}

impl TreeBuilder {
    fn fail(&mut self, pos: Pos, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                pos,
                message: message.into(),
            });
        }
    }

    /// Attaches a finished node to its parent (or makes it the document root).
    fn push_value(&mut self, node: Node, is_merge_key: bool) {
        let mut failure = None;
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map {
                entries,
                pending_key,
                merges,
                ..
            }) => match pending_key.take() {
                None => {
                    if is_merge_key {
                        // Marks the key as `<<` by storing it with an empty-name sentinel.
                        *pending_key = Some(Node {
                            kind: NodeKind::Str(MERGE_SENTINEL.to_string()),
                            pos: node.pos,
                        });
                    } else {
                        *pending_key = Some(node);
                    }
                }
                Some(key) => {
                    if matches!(&key.kind, NodeKind::Str(s) if s == MERGE_SENTINEL) {
                        merges.push(node);
                    } else {
                        match key_name(&key) {
                            Ok(name) => {
                                if entries.iter().any(|(k, _)| k.name == name) {
                                    failure = Some((
                                        key.pos,
                                        format!("mapping key \"{name}\" already defined"),
                                    ));
                                } else {
                                    entries.push((Key { name, pos: key.pos }, node));
                                }
                            }
                            Err(msg) => failure = Some((key.pos, msg)),
                        }
                    }
                }
            },
        }
        if let Some((pos, msg)) = failure {
            self.fail(pos, msg);
        }
    }
}

/// Largest tree (in nodes, aliases expanded) a config may produce.
const MAX_NODES: usize = 1_000_000;

/// Deepest nesting of collections a config may use.
const MAX_DEPTH: usize = 256;

fn size_of_tree(node: &Node) -> usize {
    1 + match &node.kind {
        NodeKind::Seq(items) => items.iter().map(size_of_tree).sum(),
        NodeKind::Map(entries) => entries.iter().map(|(_, v)| 1 + size_of_tree(v)).sum(),
        _ => 0,
    }
}

const MERGE_SENTINEL: &str = "\u{0}<<merge>>";

fn key_name(key: &Node) -> Result<String, String> {
    Ok(match &key.kind {
        NodeKind::Null => "null".to_string(),
        NodeKind::Bool(b) => b.to_string(),
        NodeKind::Int(i) => i.to_string(),
        NodeKind::Float(_, text) => text.clone(),
        NodeKind::Str(s) => s.clone(),
        NodeKind::Seq(_) | NodeKind::Map(_) => {
            return Err("a mapping key must be a scalar".to_string())
        }
    })
}

/// Applies `<<` merge values: keys already present in the mapping win, then earlier
/// merge sources win over later ones (YAML 1.1 merge-key semantics).
fn apply_merges(entries: &mut Vec<(Key, Node)>, merges: Vec<Node>) -> Result<(), (Pos, String)> {
    let mut sources = Vec::new();
    for m in merges {
        match m.kind {
            NodeKind::Map(e) => sources.push(e),
            NodeKind::Seq(items) => {
                for item in items {
                    match item.kind {
                        NodeKind::Map(e) => sources.push(e),
                        _ => {
                            return Err((
                                item.pos,
                                "map merge requires map or sequence of maps as the value".into(),
                            ))
                        }
                    }
                }
            }
            _ => {
                return Err((
                    m.pos,
                    "map merge requires map or sequence of maps as the value".into(),
                ))
            }
        }
    }
    for source in sources {
        for (k, v) in source {
            if !entries.iter().any(|(e, _)| e.name == k.name) {
                entries.push((k, v));
            }
        }
    }
    Ok(())
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() || self.done {
            return;
        }
        let pos = pos_of(&mark);
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                self.scalar(value, style, anchor, tag.as_ref(), pos)
            }
            Event::Alias(id) => self.alias(id, pos),
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.fail(pos, "document nests too deeply");
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq {
                anchor,
                pos,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Open::Map {
                anchor,
                pos,
                entries: Vec::new(),
                pending_key: None,
                merges: Vec::new(),
            }),
            Event::SequenceEnd | Event::MappingEnd => self.close_collection(),
            Event::DocumentEnd => self.done = true,
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
        }
    }
}

impl TreeBuilder {
    /// A scalar: its type resolved, remembered under its anchor, attached to its parent.
    fn scalar(
        &mut self,
        value: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        pos: Pos,
    ) {
        let is_merge_key = style == TScalarStyle::Plain
            && value == "<<"
            && matches!(
                self.stack.last(),
                Some(Open::Map {
                    pending_key: None,
                    ..
                })
            );
        let kind = match resolve_scalar(value, style, tag) {
            Ok(kind) => kind,
            Err(message) => return self.fail(pos, message),
        };
        let node = Node { kind, pos };
        self.nodes += 1;
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), 1));
        }
        self.push_value(node, is_merge_key);
    }

    /// An alias: a copy of the anchored node, at the alias's position.
    fn alias(&mut self, id: usize, pos: Pos) {
        let Some((node, size)) = self.anchors.get(&id) else {
            return self.fail(pos, "unknown anchor");
        };
        // Aliases are copied into the tree, so a "billion laughs" document would grow
        // without bound: cap the tree size.
        self.nodes += size;
        if self.nodes > MAX_NODES {
            return self.fail(pos, "document contains excessive aliasing");
        }
        let mut node = node.clone();
        node.pos = pos;
        self.push_value(node, false);
    }

    /// The end of a sequence or mapping: merge keys applied, the node remembered under
    /// its anchor and attached to its parent.
    fn close_collection(&mut self) {
        let Some(open) = self.stack.pop() else {
            return;
        };
        let (anchor, node) = match open {
            Open::Seq { anchor, pos, items } => (
                anchor,
                Node {
                    kind: NodeKind::Seq(items),
                    pos,
                },
            ),
            Open::Map {
                anchor,
                pos,
                mut entries,
                merges,
                ..
            } => {
                if let Err((p, msg)) = apply_merges(&mut entries, merges) {
                    return self.fail(p, msg);
                }
                // A block mapping's start event is marked after its first key; the
                // mapping really starts at that key.
                let pos = match entries.first() {
                    Some((k, _)) if k.pos < pos => k.pos,
                    _ => pos,
                };
                (
                    anchor,
                    Node {
                        kind: NodeKind::Map(entries),
                        pos,
                    },
                )
            }
        };
        self.nodes += 1;
        if anchor > 0 {
            self.anchors
                .insert(anchor, (node.clone(), size_of_tree(&node)));
        }
        self.push_value(node, false);
    }
}

/// The value of a scalar: plain scalars resolve as YAML 1.1 does; an explicit core-schema
/// tag (`!!str`, `!!int`, ...) must match what the plain scalar resolves to.
fn resolve_scalar(
    value: String,
    style: TScalarStyle,
    tag: Option<&Tag>,
) -> Result<NodeKind, String> {
    let tag_suffix = tag.map(|t| {
        if t.handle == "!!" || t.handle == "tag:yaml.org,2002:" {
            t.suffix.clone()
        } else {
            format!("{}{}", t.handle, t.suffix)
        }
    });
    Ok(match (style, tag_suffix.as_deref()) {
        (_, Some("str")) => NodeKind::Str(value),
        (TScalarStyle::Plain, None) => resolve_plain(&value),
        (TScalarStyle::Plain, Some(t)) => match resolve_plain(&value) {
            NodeKind::Int(i) if t == "int" => NodeKind::Int(i),
            NodeKind::Bool(b) if t == "bool" => NodeKind::Bool(b),
            NodeKind::Null if t == "null" => NodeKind::Null,
            NodeKind::Float(f, s) if t == "float" => NodeKind::Float(f, s),
            NodeKind::Int(i) if t == "float" => NodeKind::Float(i as f64, value),
            _ => return Err(format!("cannot decode {value:?} as !!{t}")),
        },
        _ => NodeKind::Str(value),
    })
}
