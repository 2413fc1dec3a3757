//! Policy rules: the go-playground/validator v9 tag language Blubber's `--policy` uses
//! (`omitempty,startswith=x`, `a|b`, `oneof=a b`, ...) plus Blubber's own validators,
//! for the value kinds a config path can reach. A tag that v9 does not know makes
//! Blubber panic; here it is refused when the policy is read.

use std::sync::LazyLock;

use regex::Regex;

use super::tree::GoValue;
use crate::config::rules as blubber;

/// A parsed rule: comma-separated tags, each a `|`-separated alternative.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    omitempty: bool,
    tags: Vec<Vec<Tag>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Tag {
    name: String,
    param: String,
}

/// Tags that take no parameter.
const PLAIN: &[&str] = &[
    "required",
    "isdefault",
    "alpha",
    "alphanum",
    "alphaunicode",
    "alphanumunicode",
    "numeric",
    "number",
    "hexadecimal",
    "lowercase",
    "uppercase",
    "ascii",
    "printascii",
    "hostname",
    "hostname_rfc1123",
    "url",
    "uri",
    "isfalse",
    "istrue",
    "abspath",
    "imageref",
    "httpurl",
    "debianpackage",
    "debianrelease",
    "debiancomponent",
    "envvars",
    "pypkgver",
    "nodeenv",
    "username",
    "currentversion",
];

/// Tags that take a parameter (`name=param`).
const WITH_PARAM: &[&str] = &[
    "eq",
    "ne",
    "len",
    "min",
    "max",
    "gt",
    "gte",
    "lt",
    "lte",
    "oneof",
    "startswith",
    "endswith",
    "contains",
    "containsany",
    "containsrune",
    "excludes",
    "excludesall",
    "excludesrune",
];

impl Rule {
    /// Parses a rule; an unknown tag or a missing parameter is an error.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let mut rule = Rule {
            omitempty: false,
            tags: Vec::new(),
        };
        for (i, part) in text.split(',').enumerate() {
            if part == "omitempty" {
                if i != 0 {
                    return Err("\"omitempty\" must be the first tag".into());
                }
                rule.omitempty = true;
                continue;
            }
            let mut alternatives = Vec::new();
            for alt in part.split('|') {
                let (name, param) = match alt.split_once('=') {
                    Some((n, p)) => (n, Some(p)),
                    None => (alt, None),
                };
                let name = name.replace("0x2C", ",").replace("0x7C", "|");
                match param {
                    None if PLAIN.contains(&name.as_str()) => {}
                    Some(_) if WITH_PARAM.contains(&name.as_str()) => {}
                    None if WITH_PARAM.contains(&name.as_str()) => {
                        return Err(format!(
                            "validation {name:?} needs a parameter ({name}=...)"
                        ))
                    }
                    _ if name.is_empty() => return Err("empty validation tag".into()),
                    _ => return Err(format!("unknown validation {name:?}")),
                }
                alternatives.push(Tag {
                    name,
                    param: param
                        .unwrap_or_default()
                        .replace("0x2C", ",")
                        .replace("0x7C", "|"),
                });
            }
            rule.tags.push(alternatives);
        }
        Ok(rule)
    }

    /// Whether `value` passes the rule.
    pub fn check(&self, value: &GoValue) -> bool {
        if self.omitempty && !has_value(value) {
            return true;
        }
        self.tags
            .iter()
            .all(|alts| alts.iter().any(|t| check_tag(&t.name, &t.param, value)))
    }
}

/// validator's `hasValue`: non-zero, and non-nil for slices and maps.
fn has_value(v: &GoValue) -> bool {
    match v {
        GoValue::Str(s) => !s.is_empty(),
        GoValue::Bool(b) => *b,
        GoValue::Uint(n) => *n != 0,
        GoValue::Flag(t, s) => *t || *s,
        GoValue::List(l) => l.is_some(),
        GoValue::Map(m) => m.is_some(),
        GoValue::Struct(fields) => fields.iter().any(|f| has_value(&f.value)),
    }
}

/// `reflect.Value.String()`: the text of a string, `<T Value>` for other kinds.
fn text(v: &GoValue) -> String {
    match v {
        GoValue::Str(s) => s.clone(),
        GoValue::Bool(_) => "<bool Value>".into(),
        GoValue::Uint(_) => "<uint Value>".into(),
        GoValue::Flag(..) => "<config.Flag Value>".into(),
        GoValue::List(_) => "<[]string Value>".into(),
        GoValue::Map(_) => "<map[string]string Value>".into(),
        GoValue::Struct(_) => "<struct Value>".into(),
    }
}

/// The size validator's comparisons use: runes of a string, length of a list or map,
/// the number itself.
fn size(v: &GoValue) -> Option<f64> {
    match v {
        GoValue::Str(s) => Some(s.chars().count() as f64),
        GoValue::Uint(n) => Some(*n as f64),
        GoValue::List(l) => Some(l.as_ref().map_or(0, Vec::len) as f64),
        GoValue::Map(m) => Some(m.as_ref().map_or(0, |m| m.len()) as f64),
        _ => None,
    }
}

fn matches(re: &LazyLock<Regex>, v: &GoValue) -> bool {
    re.is_match(&text(v))
}

macro_rules! re {
    ($name:ident, $pattern:expr) => {
        static $name: LazyLock<Regex> =
            LazyLock::new(|| Regex::new($pattern).expect("valid pattern"));
    };
}

re!(ALPHA, r"^[a-zA-Z]+$");
re!(ALPHANUM, r"^[a-zA-Z0-9]+$");
re!(ALPHA_UNICODE, r"^[\p{L}]+$");
re!(ALPHANUM_UNICODE, r"^[\p{L}\p{N}]+$");
re!(NUMERIC, r"^[-+]?[0-9]+(?:\.[0-9]+)?$");
re!(NUMBER, r"^[0-9]+$");
re!(HEX, r"^(0[xX])?[0-9a-fA-F]+$");
re!(ASCII, r"^[\x00-\x7F]*$");
re!(PRINT_ASCII, r"^[\x20-\x7E]*$");
re!(HOSTNAME, r"^[a-zA-Z][a-zA-Z0-9\-\.]+[a-zA-Z0-9]$");
re!(
    HOSTNAME_1123,
    r"^([a-zA-Z0-9]{1}[a-zA-Z0-9_-]{0,62}){1}(\.[a-zA-Z0-9_]{1}[a-zA-Z0-9_-]{0,62})*?$"
);

/// `oneof` values: space-separated, single quotes group words.
fn oneof_values(param: &str) -> Vec<String> {
    static WORDS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"'[^']*'|\S+").expect("valid pattern"));
    WORDS
        .find_iter(param)
        .map(|m| m.as_str().trim_matches('\'').to_string())
        .collect()
}

fn compare(v: &GoValue, param: &str, op: fn(f64, f64) -> bool) -> bool {
    match (size(v), param.parse::<f64>()) {
        (Some(a), Ok(b)) => op(a, b),
        _ => false,
    }
}

fn equals(v: &GoValue, param: &str) -> bool {
    match v {
        GoValue::Str(s) => s == param,
        GoValue::Bool(b) => param.parse::<bool>().is_ok_and(|p| p == *b),
        GoValue::Uint(n) => param.parse::<u64>().is_ok_and(|p| p == *n),
        GoValue::List(_) | GoValue::Map(_) => compare(v, param, |a, b| a == b),
        GoValue::Flag(..) | GoValue::Struct(_) => false,
    }
}

fn check_tag(name: &str, param: &str, v: &GoValue) -> bool {
    let t = text(v);
    match name {
        "required" => has_value(v),
        "isdefault" => !has_value(v),
        "eq" => equals(v, param),
        "ne" => !equals(v, param),
        "len" => compare(v, param, |a, b| a == b),
        "min" | "gte" => compare(v, param, |a, b| a >= b),
        "max" | "lte" => compare(v, param, |a, b| a <= b),
        "gt" => compare(v, param, |a, b| a > b),
        "lt" => compare(v, param, |a, b| a < b),
        "oneof" => match v {
            GoValue::Str(_) | GoValue::Uint(_) => oneof_values(param).contains(&match v {
                GoValue::Uint(n) => n.to_string(),
                _ => t,
            }),
            _ => false,
        },
        "startswith" => t.starts_with(param),
        "endswith" => t.ends_with(param),
        "contains" => t.contains(param),
        "containsany" => t.chars().any(|c| param.contains(c)),
        "containsrune" => param.chars().next().is_some_and(|r| t.contains(r)),
        "excludes" => !t.contains(param),
        "excludesall" => !t.chars().any(|c| param.contains(c)),
        "excludesrune" => param.chars().next().is_none_or(|r| !t.contains(r)),
        "alpha" => matches(&ALPHA, v),
        "alphanum" | "nodeenv" => matches(&ALPHANUM, v),
        "alphaunicode" => matches(&ALPHA_UNICODE, v),
        "alphanumunicode" => matches(&ALPHANUM_UNICODE, v),
        "numeric" => matches(&NUMERIC, v),
        "number" => matches(&NUMBER, v),
        "hexadecimal" => matches(&HEX, v),
        "lowercase" => !t.is_empty() && t == t.to_lowercase(),
        "uppercase" => !t.is_empty() && t == t.to_uppercase(),
        "ascii" => matches(&ASCII, v),
        "printascii" => matches(&PRINT_ASCII, v),
        "hostname" => matches(&HOSTNAME, v),
        "hostname_rfc1123" => matches(&HOSTNAME_1123, v),
        "url" => url::Url::parse(&t).is_ok_and(|u| !u.scheme().is_empty()),
        "uri" => url::Url::parse(&t).is_ok(),
        "isfalse" => matches!(v, GoValue::Bool(false)),
        "istrue" => matches!(v, GoValue::Bool(true)),
        "abspath" => crate::config::paths::is_abs_non_root(&t),
        "imageref" => blubber::is_image_ref(&t),
        "httpurl" => blubber::is_http_url(&t),
        "debianpackage" => blubber::is_debian_package(&t),
        "debianrelease" => blubber::is_debian_release(&t),
        "debiancomponent" => blubber::is_debian_component(&t),
        "pypkgver" => blubber::is_py_pkg_version(&t),
        "envvars" => match v {
            GoValue::Map(m) => m.iter().flatten().all(|(k, _)| blubber::is_env_name(k)),
            _ => false,
        },
        "username" => matches(&HOSTNAME, v) && t != "root",
        "currentversion" => t == crate::config::VERSION,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rule: &str, v: GoValue) -> bool {
        Rule::parse(rule).unwrap().check(&v)
    }

    fn s(x: &str) -> GoValue {
        GoValue::Str(x.into())
    }

    #[test]
    fn string_rules() {
        assert!(!ok("ne=root", s("root")));
        assert!(ok("ne=root", s("somebody")));
        assert!(ok(
            "oneof=debian:jessie debian:stretch",
            s("debian:stretch")
        ));
        assert!(!ok("oneof=debian:jessie debian:stretch", s("foo:tag")));
        assert!(ok(
            "omitempty,startswith=docker-registry.wikimedia.org",
            s("")
        ));
        assert!(!ok(
            "omitempty,startswith=docker-registry.wikimedia.org",
            s("foo")
        ));
        assert!(ok("startswith=a|startswith=b", s("bcd")));
        assert!(!ok("required", s("")));
        assert!(ok("min=2,max=4", s("abc")));
        assert!(ok("oneof='a b' c", s("a b")));
    }

    #[test]
    fn bool_and_number_rules() {
        assert!(ok("isfalse", GoValue::Bool(false)));
        assert!(!ok("isfalse", GoValue::Bool(true)));
        assert!(!ok("istrue", s("true")));
        assert!(ok("gte=900", GoValue::Uint(900)));
        assert!(!ok("lt=900", GoValue::Uint(900)));
        assert!(ok("eq=true", GoValue::Bool(true)));
    }

    #[test]
    fn lists_compare_by_length() {
        let l = GoValue::List(Some(vec![s("npm"), s("test")]));
        assert!(ok("len=2", l.clone()));
        assert!(!ok("max=1", l));
        assert!(!ok("required", GoValue::List(None)));
    }

    #[test]
    fn unknown_tags_are_refused() {
        assert_eq!(
            Rule::parse("omitempty,frobnicate").unwrap_err(),
            "unknown validation \"frobnicate\""
        );
        assert!(Rule::parse("startswith").is_err());
        assert!(Rule::parse("ne=root,omitempty").is_err());
    }
}
