//! Groovy-flavoured value helpers of interpolation: truthiness, text of a value, and
//! `$NAME` expansion of `run.env` values.

use std::collections::BTreeMap;

use serde_yaml::Value;

/// The kind of a value, for error messages (`a list`, `a map`, ...).
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Groovy truthiness: `false`, null, `""`, 0, `[]` and `{}` are falsy.
pub fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        Value::Tagged(t) => is_falsy(&t.value),
    }
}

/// Groovy-style text of a value: lists as `[a, b]`, maps as `[k:v]`.
pub fn stringify(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(xs) => format!(
            "[{}]",
            xs.iter().map(stringify).collect::<Vec<_>>().join(", ")
        ),
        Value::Mapping(m) => format!(
            "[{}]",
            m.iter()
                .map(|(k, v)| format!("{}:{}", stringify(k), stringify(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Tagged(t) => stringify(&t.value),
    }
}

/// Expands `$NAME` and `${NAME}` in a `run.env` value from a controlled map (no shell):
/// returns the text and the names that were not in the map (expanded to "").
pub fn expand_env(input: &str, vars: &BTreeMap<String, String>) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut missing = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let is_cont = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        if chars[i] == '$' && i + 1 < chars.len() {
            let (name, next) = if chars[i + 1] == '{' {
                let end = chars[i + 2..]
                    .iter()
                    .position(|c| *c == '}')
                    .map(|p| p + i + 2);
                match end {
                    Some(end)
                        if end > i + 2
                            && is_start(chars[i + 2])
                            && chars[i + 2..end].iter().all(|c| is_cont(*c)) =>
                    {
                        (chars[i + 2..end].iter().collect::<String>(), end + 1)
                    }
                    _ => (String::new(), i),
                }
            } else if is_start(chars[i + 1]) {
                let len = chars[i + 1..].iter().take_while(|c| is_cont(**c)).count();
                (chars[i + 1..i + 1 + len].iter().collect(), i + 1 + len)
            } else {
                (String::new(), i)
            };
            if !name.is_empty() {
                match vars.get(&name) {
                    Some(v) => out.push_str(v),
                    None => missing.push(name),
                }
                i = next;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    (out, missing)
}
