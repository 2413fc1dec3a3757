//! Variables and interpolation (§3): namespaces per stage, ancestor-only visibility,
//! immutable bindings, `${...}` substitution, `$each` comprehensions and `$merge`.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::error::{PipelineError, Result};
use super::lexer::{lex, Token};

mod values;

use values::kind;
pub use values::{expand_env, is_falsy, stringify};

/// The bindings of one stage: key -> value.
pub type Namespace = BTreeMap<String, Value>;

/// Every namespace of a pipeline run, keyed by stage name.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    namespaces: BTreeMap<String, Namespace>,
}

impl Bindings {
    /// Binds `key` in `namespace`; binding a key twice is an error (the first value stays).
    pub fn bind(&mut self, namespace: &str, key: &str, value: Value) -> Result<()> {
        bind_into(
            self.namespaces.entry(namespace.to_string()).or_default(),
            namespace,
            key,
            value,
        )
    }

    /// The namespace of `stage` (empty when nothing is bound).
    pub fn namespace(&self, stage: &str) -> Namespace {
        self.namespaces.get(stage).cloned().unwrap_or_default()
    }

    /// Replaces the namespace of `stage` wholesale (used when a stage finishes).
    pub fn set_namespace(&mut self, stage: &str, ns: Namespace) {
        self.namespaces.insert(stage.to_string(), ns);
    }

    /// `key` collected across all namespaces: stage -> value (teardown uses this).
    pub fn get_all(&self, key: &str) -> BTreeMap<String, Value> {
        self.namespaces
            .iter()
            .filter_map(|(ns, m)| m.get(key).map(|v| (ns.clone(), v.clone())))
            .collect()
    }

    /// Every bound name as `ns.key`.
    pub fn all_keys(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .flat_map(|(ns, m)| m.keys().map(move |k| format!("{ns}.{k}")))
            .collect()
    }
}

/// Binds `key` in a namespace map, refusing to rebind.
pub fn bind_into(ns: &mut Namespace, namespace: &str, key: &str, value: Value) -> Result<()> {
    if ns.contains_key(key) {
        return Err(PipelineError::NameAlreadyBound {
            namespace: namespace.to_string(),
            name: key.to_string(),
        });
    }
    ns.insert(key.to_string(), value);
    Ok(())
}

/// What one stage (or one comprehension item) can see while interpolating.
#[derive(Debug, Clone)]
pub struct Scope {
    node: String,
    own: Namespace,
    visible: BTreeMap<String, Namespace>,
    graph: String,
    is_loop: bool,
}

impl Scope {
    /// A stage's scope: its own namespace plus its ancestors' (setup included).
    /// `graph` is the graph's text, quoted in visibility errors.
    pub fn new(
        node: &str,
        own: Namespace,
        ancestors: BTreeMap<String, Namespace>,
        graph: String,
    ) -> Scope {
        Scope {
            node: node.to_string(),
            own,
            visible: ancestors,
            graph,
            is_loop: false,
        }
    }

    /// The scope's own namespace.
    pub fn own(&self) -> &Namespace {
        &self.own
    }

    /// Binds a key in the scope's own namespace (immutable).
    pub fn bind(&mut self, key: &str, value: Value) -> Result<()> {
        let node = self.node.clone();
        bind_into(&mut self.own, &node, key, value)
    }

    fn child(&self, own: Namespace) -> Scope {
        let mut visible = self.visible.clone();
        if !self.is_loop {
            visible.insert(self.node.clone(), self.own.clone());
        }
        Scope {
            node: self.node.clone(),
            own,
            visible,
            graph: self.graph.clone(),
            is_loop: true,
        }
    }

    fn available(&self) -> Vec<String> {
        let mut out: Vec<String> = self.own.keys().map(|k| format!(".{k}")).collect();
        for (ns, m) in &self.visible {
            out.extend(m.keys().map(|k| format!("{ns}.{k}")));
        }
        out
    }

    /// Looks `name` up (`.key`, `ns.key` or a dot-less `key`). `Ok(None)` means a
    /// dot-less name that is not bound: the caller keeps the text verbatim.
    pub fn lookup(&self, name: &str) -> Result<Option<Value>> {
        let Some((ns, key)) = name.split_once('.') else {
            return Ok(self.own.get(name).cloned());
        };
        let space = if ns.is_empty() {
            &self.own
        } else {
            self.visible
                .get(ns)
                .ok_or_else(|| PipelineError::AncestorNotFound {
                    namespace: ns.to_string(),
                    node: self.node.clone(),
                    graph: self.graph.clone(),
                })?
        };
        match space.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None => Err(PipelineError::NameNotFound {
                name: if ns.is_empty() {
                    format!("{}.{key}", self.node)
                } else {
                    name.to_string()
                },
                available: self.available(),
            }),
        }
    }

    fn resolve(&self, name: &str, default: Option<&str>, source: &str) -> Result<String> {
        let found = match self.lookup(name) {
            Ok(v) => v,
            Err(PipelineError::NameNotFound { .. }) if default.is_some() => Some(Value::Null),
            Err(e) => return Err(e),
        };
        Ok(match found {
            None => source.to_string(),
            Some(v) if is_falsy(&v) => default.unwrap_or("").to_string(),
            Some(v) => stringify(&v),
        })
    }

    /// Interpolates a string: every `${...}` replaced, the result always a string.
    pub fn interpolate_str(&self, input: &str) -> Result<String> {
        let mut out = String::new();
        for token in lex(input)? {
            match token {
                Token::Literal(s) => out.push_str(&s),
                Token::Variable {
                    name,
                    default,
                    source,
                } => out.push_str(&self.resolve(&name, default.as_deref(), &source)?),
            }
        }
        Ok(out)
    }

    /// Interpolates any value: strings, lists item by item, maps (keys too),
    /// `$each` comprehensions and `$merge` expressions; other scalars pass through.
    pub fn interpolate(&self, value: &Value) -> Result<Value> {
        match value {
            Value::String(s) => Ok(Value::String(self.interpolate_str(s)?)),
            Value::Sequence(items) => Ok(Value::Sequence(
                items
                    .iter()
                    .map(|v| self.interpolate(v))
                    .collect::<Result<_>>()?,
            )),
            Value::Mapping(m) if m.contains_key("$each") => self.comprehension(m),
            Value::Mapping(m) if m.contains_key("$merge") => self.merge(m),
            Value::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, v) in m {
                    out.insert(self.interpolate(k)?, self.interpolate(v)?);
                }
                Ok(Value::Mapping(out))
            }
            Value::Tagged(t) => self.interpolate(&t.value),
            other => Ok(other.clone()),
        }
    }

    fn comprehension(&self, m: &Mapping) -> Result<Value> {
        let vars: Vec<String> = match m.get("$each") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Sequence(xs)) => xs
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    PipelineError::Expression("$each must be a string or a list of strings".into())
                })?,
            _ => {
                return Err(PipelineError::Expression(
                    "$each must be a string or a list of strings".into(),
                ))
            }
        };
        if vars.is_empty() {
            return Err(PipelineError::Expression("$each names no variable".into()));
        }
        let delimiter = match m.get("$delimiter") {
            Some(v) => stringify(&self.interpolate(v)?),
            None => "\n".to_string(),
        };
        let items: Vec<Value> = match m.get("$in").map(|v| self.interpolate(v)).transpose()? {
            None | Some(Value::Null) => vec![],
            Some(Value::Sequence(xs)) => xs,
            Some(other) => stringify(&other)
                .split(|c| delimiter.contains(c))
                .filter(|t| !t.is_empty())
                .map(|t| Value::String(t.to_string()))
                .collect(),
        };
        let default_yield = Value::String(format!("${{.{}}}", vars[0]));
        let template = m.get("$yield").unwrap_or(&default_yield);
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let mut own = Namespace::new();
            if vars.len() == 1 {
                own.insert(vars[0].clone(), item);
            } else {
                let text = stringify(&item);
                let values: Vec<&str> = text.split(' ').collect();
                if values.len() < vars.len() {
                    return Err(PipelineError::InsufficientInput {
                        vars: vars.clone(),
                        item: text,
                    });
                }
                for (var, v) in vars.iter().zip(values) {
                    own.insert(var.clone(), Value::String(v.to_string()));
                }
            }
            out.push(self.child(own).interpolate(template)?);
        }
        Ok(Value::Sequence(out))
    }

    fn merge(&self, m: &Mapping) -> Result<Value> {
        let left = self.interpolate(m.get("$merge").unwrap_or(&Value::Null))?;
        let right = self.interpolate(
            m.get("$with")
                .ok_or_else(|| PipelineError::Expression("$merge without $with".into()))?,
        )?;
        match (left, right) {
            (Value::Sequence(mut a), Value::Sequence(b)) => {
                a.extend(b);
                Ok(Value::Sequence(a))
            }
            (Value::Mapping(mut a), Value::Mapping(b)) => {
                for (k, v) in b {
                    a.insert(k, v);
                }
                Ok(Value::Mapping(a))
            }
            (Value::String(a), Value::String(b)) => Ok(Value::String(a + &b)),
            (a, b) => Err(PipelineError::Expression(format!(
                "cannot $merge {} with {}",
                kind(&a),
                kind(&b)
            ))),
        }
    }
}

/// The scope of `node` in `graph`: its own namespace and those of its ancestors.
pub fn scope_for(bindings: &Bindings, graph: &super::graph::Graph, node: &str) -> Scope {
    let ancestors = graph
        .ancestors(node)
        .into_iter()
        .filter(|a| a != node)
        .map(|a| {
            let ns = bindings.namespace(&a);
            (a, ns)
        })
        .collect();
    Scope::new(node, bindings.namespace(node), ancestors, graph.to_string())
}

#[cfg(test)]
mod tests;
