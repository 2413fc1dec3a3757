//! A located YAML node tree with YAML 1.1 scalar resolution, as Blubber reads it
//! (`ghodss/yaml` on top of `gopkg.in/yaml.v2`): `yes`/`no`/`on`/`off`/`y`/`n` are
//! booleans, unquoted numbers are numbers (`0755` is octal), `~`/`null`/empty is null.
//! Anchors, aliases and `<<` merge keys work. Only the first document is read.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::Pos;

/// One YAML value with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the value is.
    pub kind: NodeKind,
    /// Where the value starts in the file.
    pub pos: Pos,
}

/// The resolved type and content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or an empty value.
    Null,
    /// A YAML 1.1 boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number; the original text is kept for messages.
    Float(f64, String),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order. Keys are resolved scalars rendered as strings, as a
    /// YAML -> JSON conversion does.
    Map(Vec<(Key, Node)>),
}

/// A mapping key (always a string after the YAML -> JSON conversion) and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key as text.
    pub name: String,
    /// Where the key starts.
    pub pos: Pos,
}

impl NodeKind {
    /// The JSON type name of this value, as Go's `encoding/json` names it in errors.
    pub fn json_type(&self) -> &'static str {
        match self {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "bool",
            NodeKind::Int(_) | NodeKind::Float(..) => "number",
            NodeKind::Str(_) => "string",
            NodeKind::Seq(_) => "array",
            NodeKind::Map(_) => "object",
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// The parser's description.
    pub message: String,
}

/// Parses the first document of `text` into a located tree. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| YamlError {
        pos: pos_of(e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or(Node {
        kind: NodeKind::Null,
        pos: Pos { line: 1, col: 1 },
    }))
}

fn pos_of(m: &Marker) -> Pos {
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

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<YamlError>,
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
                let is_merge_key = style == TScalarStyle::Plain
                    && value == "<<"
                    && matches!(
                        self.stack.last(),
                        Some(Open::Map {
                            pending_key: None,
                            ..
                        })
                    );
                let tag_suffix = tag.as_ref().map(|t| {
                    if t.handle == "!!" || t.handle == "tag:yaml.org,2002:" {
                        t.suffix.clone()
                    } else {
                        format!("{}{}", t.handle, t.suffix)
                    }
                });
                let kind = match (style, tag_suffix.as_deref()) {
                    (_, Some("str")) => NodeKind::Str(value),
                    (TScalarStyle::Plain, None) => resolve_plain(&value),
                    (TScalarStyle::Plain, Some(t)) => match resolve_plain(&value) {
                        NodeKind::Int(i) if t == "int" => NodeKind::Int(i),
                        NodeKind::Bool(b) if t == "bool" => NodeKind::Bool(b),
                        NodeKind::Null if t == "null" => NodeKind::Null,
                        NodeKind::Float(f, s) if t == "float" => NodeKind::Float(f, s),
                        NodeKind::Int(i) if t == "float" => NodeKind::Float(i as f64, value),
                        _ => {
                            self.fail(pos, format!("cannot decode {value:?} as !!{t}"));
                            return;
                        }
                    },
                    _ => NodeKind::Str(value),
                };
                let node = Node { kind, pos };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node, is_merge_key);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let mut node = node.clone();
                    node.pos = pos;
                    self.push_value(node, false);
                }
                None => self.fail(pos, "unknown anchor"),
            },
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
            Event::SequenceEnd | Event::MappingEnd => {
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
                            self.fail(p, msg);
                            return;
                        }
                        // A block mapping's start event is marked after its first key;
                        // the mapping really starts at that key.
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
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node, false);
            }
            Event::DocumentEnd => self.done = true,
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
        }
    }
}

/// Resolves a plain (unquoted) scalar the way `gopkg.in/yaml.v2` does.
pub fn resolve_plain(text: &str) -> NodeKind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return NodeKind::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return NodeKind::Bool(false)
        }
        ".nan" | ".NaN" | ".NAN" => return NodeKind::Float(f64::NAN, text.to_string()),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return NodeKind::Float(f64::INFINITY, text.to_string())
        }
        "-.inf" | "-.Inf" | "-.INF" => return NodeKind::Float(f64::NEG_INFINITY, text.to_string()),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return NodeKind::Str(text.to_string());
    }
    let plain = text.replace('_', "");
    if let Some(i) = parse_go_int(&plain) {
        return NodeKind::Int(i);
    }
    if is_yaml11_float(&plain) {
        if let Ok(f) = plain.parse::<f64>() {
            return NodeKind::Float(f, text.to_string());
        }
    }
    NodeKind::Str(text.to_string())
}

/// `strconv.ParseInt(s, 0, 64)`: optional sign, then `0x`/`0o`/`0b` prefixes or a
/// leading `0` for octal.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(&body, radix).ok()?;
    let value = if neg { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// yaml.v2's float pattern: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml11_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if int_digits == 0 && i == frac_start {
            return false;
        }
    } else if int_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> NodeKind {
        parse(text).unwrap().kind
    }

    #[test]
    fn yaml11_scalars_resolve_like_yaml_v2() {
        assert_eq!(resolve_plain("yes"), NodeKind::Bool(true));
        assert_eq!(resolve_plain("Off"), NodeKind::Bool(false));
        assert_eq!(resolve_plain("n"), NodeKind::Bool(false));
        assert_eq!(resolve_plain("0755"), NodeKind::Int(493));
        assert_eq!(resolve_plain("0x1F"), NodeKind::Int(31));
        assert_eq!(resolve_plain("1_000"), NodeKind::Int(1000));
        assert_eq!(resolve_plain("-12"), NodeKind::Int(-12));
        assert!(matches!(resolve_plain("3.9"), NodeKind::Float(f, _) if f == 3.9));
        assert_eq!(resolve_plain("4.11.1"), NodeKind::Str("4.11.1".into()));
        assert_eq!(resolve_plain("~"), NodeKind::Null);
        assert_eq!(resolve_plain("09"), NodeKind::Float(9.0, "09".into()));
        assert_eq!(resolve_plain("python3"), NodeKind::Str("python3".into()));
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let NodeKind::Map(entries) = kinds("a: 'yes'\nb: \"0\"\nc: !!str 12\n") else {
            panic!("not a map")
        };
        for (_, v) in entries {
            assert!(matches!(v.kind, NodeKind::Str(_)), "{v:?}");
        }
    }

    #[test]
    fn positions_are_one_based() {
        let NodeKind::Map(entries) = kinds("version: v4\nvariants:\n  foo: {}\n") else {
            panic!("not a map")
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[0].1.pos, Pos { line: 1, col: 10 });
        let NodeKind::Map(inner) = &entries[1].1.kind else {
            panic!("not a map")
        };
        assert_eq!(inner[0].0.pos, Pos { line: 3, col: 3 });
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "base: &b {x: 1, z: 2}\nother:\n  <<: *b\n  z: 3\nlist: [*b]\n";
        let NodeKind::Map(entries) = kinds(text) else {
            panic!("not a map")
        };
        let NodeKind::Map(other) = &entries[1].1.kind else {
            panic!("not a map")
        };
        let names: Vec<_> = other
            .iter()
            .map(|(k, v)| (k.name.clone(), v.kind.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("z".into(), NodeKind::Int(3)),
                ("x".into(), NodeKind::Int(1))
            ]
        );
        assert!(matches!(&entries[2].1.kind, NodeKind::Seq(items) if items.len() == 1));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_are_reported_with_positions() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert!(err.message.contains("already defined"));
        let err = parse("a: [1, 2\n").unwrap_err();
        assert!(err.pos.line >= 1);
    }
}
