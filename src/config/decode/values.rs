//! The decoder's typed readers: mappings with allowed keys, strings, flags, numbers,
//! lists and string maps, each reporting wrong types with the value's position.

use super::*;

impl Decoder<'_> {
    pub(super) fn err(&mut self, pos: Pos, path: &str, problem: Problem) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            pos: Some(pos),
            variant: self.variant.clone(),
            path: path.to_string(),
            problem,
        });
    }

    pub(super) fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        let scalar = matches!(
            node.kind,
            NodeKind::Bool(_) | NodeKind::Int(_) | NodeKind::Float(..)
        );
        let hint = (scalar && expected == "string").then_some(QUOTE_HINT);
        self.err(
            node.pos,
            path,
            Problem::WrongType {
                field: path.to_string(),
                found: node.kind.json_type().to_string(),
                expected: expected.to_string(),
                hint,
            },
        );
    }

    /// Refuses a null where Blubber's schema does not allow one (its schema step runs
    /// before decoding; only `base`, an artifact's `from` and the values of
    /// `runs.environment` and `arguments` may be null). Records the value's position.
    pub(super) fn null_refused(&mut self, node: &Node, path: &str, expected: &str) {
        // An empty value (`runs:` and nothing after it) is placed at the next token by
        // the parser, often on a later line: point at its key instead.
        let pos = match self.positions.get(&format!("{path}#key")) {
            Some(key) if key.line != node.pos.line => *key,
            _ => node.pos,
        };
        self.record(path, node);
        self.err(
            pos,
            path,
            Problem::Schema {
                pointer: pointer_of(path),
                detail: format!("expected {expected}, but got null"),
            },
        );
    }

    pub(super) fn record(&mut self, path: &str, node: &Node) {
        self.positions.insert(path.to_string(), node.pos);
    }

    /// The entries of a mapping, reporting unknown keys. `None` (and an error) for null
    /// or another type.
    pub(super) fn map<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Option<Vec<(&'n Key, &'n Node)>> {
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => {
                self.null_refused(node, path, "object");
                None
            }
            NodeKind::Map(entries) => {
                let mut out = Vec::new();
                for (k, v) in entries {
                    let child = join(path, &k.name);
                    self.positions.insert(format!("{child}#key"), k.pos);
                    if allowed.contains(&k.name.as_str()) {
                        out.push((k, v));
                    } else {
                        let hint = removed_key_hint(&k.name, path);
                        self.err(
                            k.pos,
                            &child,
                            Problem::UnknownField {
                                name: k.name.clone(),
                                hint,
                            },
                        );
                    }
                }
                Some(out)
            }
            _ => {
                self.wrong_type(node, path, "object");
                None
            }
        }
    }

    pub(super) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        if matches!(node.kind, NodeKind::Null) {
            self.null_refused(node, path, "string");
            return None;
        }
        self.nullable_string(node, path)
    }

    /// A string that may be null (`None`, like a missing key): `base` and `from`.
    pub(super) fn nullable_string(&mut self, node: &Node, path: &str) -> Option<String> {
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(node, path, "string");
                None
            }
        }
    }

    pub(super) fn flag(&mut self, node: &Node, path: &str) -> Flag {
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => {
                self.null_refused(node, path, "boolean");
                None
            }
            NodeKind::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(node, path, "bool");
                None
            }
        }
    }

    pub(super) fn uint32(&mut self, node: &Node, path: &str) -> Option<u32> {
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => {
                self.null_refused(node, path, "integer");
                None
            }
            NodeKind::Int(i) if u32::try_from(*i).is_ok() => Some(*i as u32),
            NodeKind::Int(i) => {
                self.err(
                    node.pos,
                    path,
                    Problem::WrongType {
                        field: path.to_string(),
                        found: format!("number {i}"),
                        expected: "uint32".into(),
                        hint: None,
                    },
                );
                None
            }
            NodeKind::Float(_, text) => {
                self.err(
                    node.pos,
                    path,
                    Problem::WrongType {
                        field: path.to_string(),
                        found: format!("number {text}"),
                        expected: "uint32".into(),
                        hint: None,
                    },
                );
                None
            }
            _ => {
                self.wrong_type(node, path, "uint32");
                None
            }
        }
    }

    pub(super) fn seq<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => {
                self.null_refused(node, path, "array");
                None
            }
            NodeKind::Seq(items) => Some(items),
            _ => {
                self.wrong_type(node, path, "array");
                None
            }
        }
    }

    pub(super) fn string_list(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.string(item, &format!("{path}[{i}]")) {
                out.push(s);
            }
        }
        Some(out)
    }

    pub(super) fn string_map(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => self.null_refused(node, path, "object"),
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    let child = join(path, &k.name);
                    self.positions.insert(format!("{child}#key"), k.pos);
                    // Like Go's encoding/json, a null value still defines the key,
                    // with an empty value (`GRADLE_USER_HOME: ~` sets it to "").
                    if matches!(v.kind, NodeKind::Null) {
                        self.record(&child, v);
                        out.insert(k.name.clone(), String::new());
                    } else if let Some(s) = self.string(v, &child) {
                        out.insert(k.name.clone(), s);
                    }
                }
            }
            _ => self.wrong_type(node, path, "map[string]string"),
        }
        out
    }
}
