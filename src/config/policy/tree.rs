//! The config as Blubber's Go structs lay it out, for policy paths: field names are the
//! JSON tags, inline (embedded) structs are searched transparently, maps are indexed by
//! key and anything else (lists, scalars) ends a path. Values print like Go's `%s`.

use std::collections::BTreeMap;

use crate::config::{
    AptConfig, Artifact, BuilderEntry, Cache, CacheAccess, Command, CommonConfig, CustomBuilder,
    Flag, LivesConfig, Mount, NodeConfig, PhpConfig, PythonConfig, RunsConfig, UserConfig,
};

/// One value of the Go-shaped config tree.
#[derive(Debug, Clone, PartialEq)]
pub enum GoValue {
    /// A Go `string`.
    Str(String),
    /// A Go `bool` (a resolved `Flag`).
    Bool(bool),
    /// A Go `uint` (uids and gids).
    Uint(u64),
    /// Blubber's `Flag{True, Set}`: resolving a path to it gives its `True` value.
    Flag(bool, bool),
    /// A slice; `None` is a nil slice.
    List(Option<Vec<GoValue>>),
    /// A `map[string]T`; `None` is a nil map.
    Map(Option<BTreeMap<String, GoValue>>),
    /// A struct: its fields in declaration order.
    Struct(Vec<Field>),
}

/// A struct field: named by its JSON tag, or inline (embedded) with an empty name.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The JSON tag name; empty for an embedded struct.
    pub name: &'static str,
    /// The value.
    pub value: GoValue,
}

fn field(name: &'static str, value: GoValue) -> Field {
    Field { name, value }
}

fn inline(value: GoValue) -> Field {
    Field { name: "", value }
}

impl GoValue {
    /// What `ResolveJSONPath` finds at the dot-path `path`, or `None` ("invalid path",
    /// which Blubber skips).
    pub fn resolve(&self, path: &str) -> Option<GoValue> {
        let (name, rest) = match path.split_once('.') {
            Some((n, r)) => (n, Some(r)),
            None => (path, None),
        };
        let found = match self {
            GoValue::Struct(fields) => {
                let mut found = None;
                for f in fields {
                    if f.name.is_empty() {
                        if let Some(v) = f.value.resolve(path) {
                            return Some(v);
                        }
                    }
                    if f.name == name {
                        found = Some(f.value.clone());
                        break;
                    }
                }
                found
            }
            GoValue::Map(Some(map)) => map.get(name).cloned(),
            _ => None,
        }?;
        match rest {
            Some(rest) => found.resolve(rest),
            None => Some(found),
        }
    }

    /// The value as Go's `fmt` prints it with `%s`.
    pub fn go_format(&self) -> String {
        match self {
            GoValue::Str(s) => s.clone(),
            GoValue::Bool(b) => format!("%!s(bool={b})"),
            GoValue::Uint(n) => format!("%!s(uint={n})"),
            GoValue::Flag(t, s) => format!("{{%!s(bool={t}) %!s(bool={s})}}"),
            GoValue::List(items) => {
                let items: Vec<String> = items.iter().flatten().map(GoValue::go_format).collect();
                format!("[{}]", items.join(" "))
            }
            GoValue::Map(map) => {
                let items: Vec<String> = map
                    .iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}:{}", v.go_format()))
                    .collect();
                format!("map[{}]", items.join(" "))
            }
            GoValue::Struct(fields) => {
                let items: Vec<String> = fields.iter().map(|f| f.value.go_format()).collect();
                format!("{{{}}}", items.join(" "))
            }
        }
    }
}

fn s(v: &str) -> GoValue {
    GoValue::Str(v.to_string())
}

fn flag(f: Flag) -> GoValue {
    GoValue::Flag(f == Some(true), f.is_some())
}

fn strings(v: &[String]) -> GoValue {
    GoValue::List((!v.is_empty()).then(|| v.iter().map(|x| s(x)).collect()))
}

fn string_map(m: &BTreeMap<String, String>) -> GoValue {
    GoValue::Map((!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), s(v))).collect()))
}

fn list<T>(items: &[T], each: impl Fn(&T) -> GoValue) -> GoValue {
    GoValue::List((!items.is_empty()).then(|| items.iter().map(each).collect()))
}

fn artifact(a: &Artifact) -> GoValue {
    GoValue::Struct(vec![
        field("from", s(&a.from)),
        field("source", s(&a.source)),
        field("destination", s(&a.destination)),
        field("exclude", strings(&a.exclude)),
    ])
}

fn artifacts(a: Option<&Vec<Artifact>>) -> GoValue {
    list(a.map(Vec::as_slice).unwrap_or_default(), artifact)
}

fn user(u: &UserConfig) -> GoValue {
    GoValue::Struct(vec![
        field("as", s(&u.name)),
        field("uid", GoValue::Uint(u.uid.into())),
        field("gid", GoValue::Uint(u.gid.into())),
    ])
}

fn lives(l: &LivesConfig) -> GoValue {
    GoValue::Struct(vec![field("in", s(&l.dir)), inline(user(&l.user))])
}

fn runs(r: &RunsConfig) -> GoValue {
    GoValue::Struct(vec![
        inline(user(&r.user)),
        field("environment", string_map(&r.environment)),
        field("in", s(&r.dir)),
        field("insecurely", flag(r.insecurely)),
    ])
}

fn apt(a: &AptConfig) -> GoValue {
    let packages = GoValue::Map((!a.packages.is_empty()).then(|| {
        a.packages
            .iter()
            .map(|(k, v)| (k.clone(), strings(v)))
            .collect()
    }));
    let proxies = list(&a.proxies, |p| {
        GoValue::Struct(vec![
            field("url", s(&p.url)),
            field("source", s(p.source.as_deref().unwrap_or(""))),
        ])
    });
    let sources = list(&a.sources, |src| {
        GoValue::Struct(vec![
            field("url", s(&src.url)),
            field("distribution", s(&src.distribution)),
            field("components", strings(&src.components)),
            field("signed-by", s(&src.signed_by)),
        ])
    });
    GoValue::Struct(vec![
        field("packages", packages),
        field("proxies", proxies),
        field("sources", sources),
    ])
}

fn node(n: &NodeConfig) -> GoValue {
    GoValue::Struct(vec![
        field("requirements", artifacts(n.requirements.as_ref())),
        field("env", s(&n.env)),
        field("use-npm-ci", flag(n.use_npm_ci)),
        field("allow-dedupe-failure", flag(n.allow_dedupe_failure)),
    ])
}

fn php(p: &PhpConfig) -> GoValue {
    GoValue::Struct(vec![
        field("requirements", artifacts(p.requirements.as_ref())),
        field("production", flag(p.production)),
    ])
}

fn python(p: &PythonConfig) -> GoValue {
    let poetry = GoValue::Struct(vec![
        field("version", s(&p.poetry.version)),
        field("devel", flag(p.poetry.devel)),
        field("only", s(&p.poetry.only)),
        field("without", s(&p.poetry.without)),
    ]);
    GoValue::Struct(vec![
        field("version", s(&p.version)),
        field("requirements", artifacts(p.requirements.as_ref())),
        field("use-system-site-packages", flag(p.use_system_site_packages)),
        field("no-deps", flag(p.no_deps)),
        field("pip-version", s(&p.pip_version)),
        field("poetry", poetry),
        field("setuptools-version", s(&p.setuptools_version)),
        field("tox-version", s(&p.tox_version)),
        field("venv", s(&p.venv)),
        field("wheel-version", s(&p.wheel_version)),
    ])
}

fn custom(b: Option<&CustomBuilder>) -> GoValue {
    let empty = CustomBuilder::default();
    let b = b.unwrap_or(&empty);
    let command = match &b.command {
        Some(Command::Exec(v)) => strings(v),
        Some(Command::Shell(sh)) if !sh.is_empty() => GoValue::List(Some(vec![s(sh)])),
        _ => GoValue::List(None),
    };
    let mounts = list(b.mounts.as_deref().unwrap_or_default(), |m: &Mount| {
        GoValue::Struct(vec![
            field("from", s(&m.from)),
            field("destination", s(&m.destination)),
            field("source", s(&m.source)),
        ])
    });
    let caches = list(b.caches.as_deref().unwrap_or_default(), |c: &Cache| {
        GoValue::Struct(vec![
            field("destination", s(&c.destination)),
            field("id", s(&c.id)),
            field("access", s(access_name(c.access))),
        ])
    });
    GoValue::Struct(vec![
        field("command", command),
        field("script", s(b.script.as_deref().unwrap_or(""))),
        field("requirements", artifacts(b.requirements.as_ref())),
        field("mounts", mounts),
        field("caches", caches),
    ])
}

fn access_name(a: CacheAccess) -> &'static str {
    match a {
        CacheAccess::Shared => "shared",
        CacheAccess::Locked => "locked",
        CacheAccess::Private => "private",
    }
}

fn builder_entry(b: &BuilderEntry) -> GoValue {
    match b {
        BuilderEntry::Custom(c) => custom(Some(c)),
        BuilderEntry::Node(n) => node(n),
        BuilderEntry::Php(p) => php(p),
        BuilderEntry::Python(p) => python(p),
    }
}

/// Blubber's `CommonConfig` struct.
pub fn common(c: &CommonConfig) -> GoValue {
    let entrypoint = GoValue::List(
        c.entrypoint
            .as_ref()
            .map(|v| v.iter().map(|x| s(x)).collect()),
    );
    GoValue::Struct(vec![
        field("base", s(c.base.as_deref().unwrap_or(""))),
        field("arguments", string_map(&c.arguments)),
        field("apt", apt(&c.apt)),
        field("builders", list(&c.builders, builder_entry)),
        field("node", node(&c.node)),
        field("php", php(&c.php)),
        field("python", python(&c.python)),
        field("builder", custom(c.builder.as_ref())),
        field("lives", lives(&c.lives)),
        field("runs", runs(&c.runs)),
        field("entrypoint", entrypoint),
    ])
}

/// Blubber's `VariantConfig` struct: includes, copies, then the inline common config.
pub fn variant(includes: &[String], copies: &[Artifact], c: &CommonConfig) -> GoValue {
    GoValue::Struct(vec![
        field("includes", strings(includes)),
        field("copies", list(copies, artifact)),
        inline(common(c)),
    ])
}

/// Blubber's `Config` struct: the inline common config, the variants, the version.
pub fn config(c: &CommonConfig, variants: BTreeMap<String, GoValue>, version: &str) -> GoValue {
    GoValue::Struct(vec![
        inline(common(c)),
        field("variants", GoValue::Map(Some(variants))),
        inline(GoValue::Struct(vec![field("version", s(version))])),
    ])
}
