//! A located YAML node tree with YAML 1.1 scalar resolution, as Blubber reads it
//! (`ghodss/yaml` on top of `gopkg.in/yaml.v2`): `yes`/`no`/`on`/`off`/`y`/`n` are
//! booleans, unquoted numbers are numbers (`0755` is octal), `~`/`null`/empty is null.
//! Anchors, aliases and `<<` merge keys work. Only the first document is read.

use yaml_rust2::parser::Parser;

use super::error::Pos;

mod builder;
mod scalar;

use builder::{pos_of, TreeBuilder};

pub use scalar::resolve_plain;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> NodeKind {
        parse(text).unwrap().kind
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
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            bomb.push_str(&format!(
                "{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let err = parse(&bomb).unwrap_err();
        assert!(err.message.contains("excessive aliasing"), "{err:?}");
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let err = parse(&deep).unwrap_err();
        assert!(
            err.message.contains("too deeply") || err.message.contains("recursion limit"),
            "{err:?}"
        );
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
