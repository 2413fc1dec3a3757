//! Strict decoding of the located YAML tree into the model, like Blubber's
//! YAML -> JSON -> `encoding/json` (`DisallowUnknownFields`) path: unknown keys and
//! wrong types are errors; `null` leaves a value unset. Every value's position is
//! recorded by its full path for later validation messages.

use std::collections::{BTreeMap, HashMap};

use super::error::{ConfigError, Pos, Problem};
use super::model::*;
use super::yaml::{Key, Node, NodeKind};

/// Positions of values by full path (`variants.foo.copies[0].from`); keys of mappings
/// are recorded as `<path>#key`.
pub(crate) type Positions = HashMap<String, Pos>;

const COMMON_KEYS: &[&str] = &[
    "base",
    "arguments",
    "apt",
    "builder",
    "builders",
    "node",
    "php",
    "python",
    "lives",
    "runs",
    "entrypoint",
];

/// Hints for keys that Blubber removed (they fail as unknown fields, like upstream).
fn removed_key_hint(name: &str, path: &str) -> Option<String> {
    let hint = match name {
        "sharedvolume" => "`sharedvolume` was removed from Blubber in 2018; copy files into the image with `copies` instead",
        "artifacts" => "`artifacts` was replaced by `copies` in Blubber v4: a list of `{from, source, destination}`",
        "use-system-flag" if path.ends_with("python") => "`python.use-system-flag` was removed in Blubber v0.23.0; use `use-system-site-packages` (Python builders always use a venv now)",
        "includes" | "copies" if !path.starts_with("variants.") => "`includes` and `copies` are only allowed inside a variant",
        _ => return None,
    };
    Some(hint.to_string())
}

/// Walks the tree, collecting errors and positions.
pub(crate) struct Decoder<'a> {
    file: &'a str,
    /// Errors found so far.
    pub errors: Vec<ConfigError>,
    /// Positions recorded so far.
    pub positions: Positions,
    variant: Option<String>,
}

impl<'a> Decoder<'a> {
    pub fn new(file: &'a str) -> Self {
        Decoder {
            file,
            errors: Vec::new(),
            positions: HashMap::new(),
            variant: None,
        }
    }

    fn err(&mut self, pos: Pos, path: &str, problem: Problem) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            pos: Some(pos),
            variant: self.variant.clone(),
            path: path.to_string(),
            problem,
        });
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        self.err(
            node.pos,
            path,
            Problem::WrongType {
                field: path.to_string(),
                found: node.kind.json_type().to_string(),
                expected: expected.to_string(),
            },
        );
    }

    fn record(&mut self, path: &str, node: &Node) {
        self.positions.insert(path.to_string(), node.pos);
    }

    /// The entries of a mapping, reporting unknown keys. `None` for null or wrong type.
    fn map<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Option<Vec<(&'n Key, &'n Node)>> {
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => None,
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

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
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

    fn flag(&mut self, node: &Node, path: &str) -> Flag {
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(node, path, "bool");
                None
            }
        }
    }

    fn uint32(&mut self, node: &Node, path: &str) -> Option<u32> {
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Int(i) if u32::try_from(*i).is_ok() => Some(*i as u32),
            NodeKind::Int(i) => {
                self.err(
                    node.pos,
                    path,
                    Problem::WrongType {
                        field: path.to_string(),
                        found: format!("number {i}"),
                        expected: "uint32".into(),
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

    fn seq<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Seq(items) => Some(items),
            _ => {
                self.wrong_type(node, path, "array");
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.string(item, &format!("{path}[{i}]")) {
                out.push(s);
            }
        }
        Some(out)
    }

    fn string_map(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => {}
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    let child = join(path, &k.name);
                    self.positions.insert(format!("{child}#key"), k.pos);
                    if let Some(s) = self.string(v, &child) {
                        out.insert(k.name.clone(), s);
                    }
                }
            }
            _ => self.wrong_type(node, path, "map[string]string"),
        }
        out
    }

    /// Decodes the root mapping (after the version check) into a [`Config`].
    pub fn config(&mut self, root: &Node, version: String) -> (CommonConfig, Vec<Variant>) {
        let mut allowed = vec!["version", "variants"];
        allowed.extend_from_slice(COMMON_KEYS);
        let entries = self.map(root, "", &allowed).unwrap_or_default();
        let mut common = defaults();
        self.common_into(&entries, "", &mut common);
        let _ = version;
        let mut variants = Vec::new();
        if let Some((_, node)) = entries.iter().find(|(k, _)| k.name == "variants") {
            self.record("variants", node);
            match &node.kind {
                NodeKind::Null => {}
                NodeKind::Map(list) => {
                    for (k, v) in list {
                        let path = join("variants", &k.name);
                        self.positions.insert(format!("{path}#key"), k.pos);
                        self.variant = Some(k.name.clone());
                        if let Some(variant) = self.variant_config(&k.name, v, &path) {
                            variants.push(variant);
                        }
                        self.variant = None;
                    }
                }
                _ => self.wrong_type(node, "variants", "map[string]config.VariantConfig"),
            }
        }
        (common, variants)
    }

    fn variant_config(&mut self, name: &str, node: &Node, path: &str) -> Option<Variant> {
        if matches!(node.kind, NodeKind::Null) {
            self.err(
                node.pos,
                path,
                Problem::Schema {
                    pointer: format!("/variants/{name}"),
                    detail: "expected object, but got null (write `{}` for an empty variant)"
                        .into(),
                },
            );
            return None;
        }
        let mut allowed = vec!["includes", "copies"];
        allowed.extend_from_slice(COMMON_KEYS);
        let entries = self.map(node, path, &allowed)?;
        let mut variant = Variant {
            name: name.to_string(),
            includes: Vec::new(),
            copies: Vec::new(),
            common: CommonConfig::default(),
        };
        self.common_into(&entries, path, &mut variant.common);
        for (k, v) in &entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "includes" => variant.includes = self.string_list(v, &child).unwrap_or_default(),
                "copies" => variant.copies = self.artifacts(v, &child, false),
                _ => {}
            }
        }
        Some(variant)
    }

    /// Overlays the common keys present in `entries` onto `c` (a plain decode: only the
    /// keys given are overwritten, field by field for `lives` and `runs`).
    fn common_into(&mut self, entries: &[(&Key, &Node)], path: &str, c: &mut CommonConfig) {
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "base" => c.base = self.string(v, &child),
                "arguments" => c.arguments = self.string_map(v, &child),
                "apt" => c.apt = self.apt(v, &child),
                "builder" => c.builder = self.custom_builder(v, &child),
                "builders" => c.builders = self.builders(v, &child),
                "node" => c.node = self.node(v, &child),
                "php" => c.php = self.php(v, &child),
                "python" => c.python = self.python(v, &child),
                "lives" => self.lives_into(v, &child, &mut c.lives),
                "runs" => self.runs_into(v, &child, &mut c.runs),
                "entrypoint" => c.entrypoint = self.string_list(v, &child),
                _ => {}
            }
        }
    }

    fn user_field(&mut self, key: &str, v: &Node, path: &str, user: &mut UserConfig) {
        match key {
            "as" => {
                if let Some(s) = self.string(v, path) {
                    user.name = s;
                }
            }
            "uid" => {
                if let Some(n) = self.uint32(v, path) {
                    user.uid = n;
                }
            }
            "gid" => {
                if let Some(n) = self.uint32(v, path) {
                    user.gid = n;
                }
            }
            _ => {}
        }
    }

    fn lives_into(&mut self, node: &Node, path: &str, lives: &mut LivesConfig) {
        let Some(entries) = self.map(node, path, &["in", "as", "uid", "gid"]) else {
            return;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            if k.name == "in" {
                if let Some(s) = self.string(v, &child) {
                    lives.dir = s;
                }
            } else {
                self.user_field(&k.name, v, &child, &mut lives.user);
            }
        }
    }

    fn runs_into(&mut self, node: &Node, path: &str, runs: &mut RunsConfig) {
        let allowed = ["in", "as", "uid", "gid", "environment", "insecurely"];
        let Some(entries) = self.map(node, path, &allowed) else {
            return;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "in" => {
                    if let Some(s) = self.string(v, &child) {
                        runs.dir = s;
                    }
                }
                "environment" => runs.environment = self.string_map(v, &child),
                "insecurely" => runs.insecurely = self.flag(v, &child),
                other => self.user_field(other, v, &child, &mut runs.user),
            }
        }
    }

    fn apt(&mut self, node: &Node, path: &str) -> AptConfig {
        let mut apt = AptConfig::default();
        let Some(entries) = self.map(node, path, &["packages", "sources", "proxies"]) else {
            return apt;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "packages" => apt.packages = self.packages(v, &child),
                "sources" => {
                    if let Some(items) = self.seq(v, &child) {
                        for (i, item) in items.iter().enumerate() {
                            let p = format!("{child}[{i}]");
                            if let Some(s) = self.apt_source(item, &p) {
                                apt.sources.push(s);
                            }
                        }
                    }
                }
                "proxies" => {
                    if let Some(items) = self.seq(v, &child) {
                        for (i, item) in items.iter().enumerate() {
                            let p = format!("{child}[{i}]");
                            if let Some(proxy) = self.apt_proxy(item, &p) {
                                apt.proxies.push(proxy);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        apt
    }

    fn packages(&mut self, node: &Node, path: &str) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        self.record(path, node);
        match &node.kind {
            NodeKind::Null => {}
            NodeKind::Seq(items) => {
                let mut list = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.string(item, &format!("{path}[default][{i}]")) {
                        list.push(s);
                    }
                }
                out.insert("default".to_string(), list);
            }
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    let release_path = format!("{path}[{}]", k.name);
                    self.positions.insert(format!("{release_path}#key"), k.pos);
                    self.record(&release_path, v);
                    let list = match &v.kind {
                        NodeKind::Seq(items) => {
                            let mut list = Vec::new();
                            for (i, item) in items.iter().enumerate() {
                                if let Some(s) = self.string(item, &format!("{release_path}[{i}]"))
                                {
                                    list.push(s);
                                }
                            }
                            list
                        }
                        NodeKind::Null => Vec::new(),
                        _ => {
                            self.wrong_type(v, &release_path, "[]string");
                            continue;
                        }
                    };
                    out.insert(k.name.clone(), list);
                }
            }
            _ => self.wrong_type(node, path, "config.AptPackages"),
        }
        out
    }

    fn apt_source(&mut self, node: &Node, path: &str) -> Option<AptSource> {
        let allowed = ["url", "distribution", "components", "signed-by"];
        let entries = self.map(node, path, &allowed)?;
        let mut s = AptSource::default();
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "url" => s.url = self.string(v, &child).unwrap_or_default(),
                "distribution" => s.distribution = self.string(v, &child).unwrap_or_default(),
                "components" => s.components = self.string_list(v, &child).unwrap_or_default(),
                "signed-by" => s.signed_by = self.string(v, &child).unwrap_or_default(),
                _ => {}
            }
        }
        Some(s)
    }

    fn apt_proxy(&mut self, node: &Node, path: &str) -> Option<AptProxy> {
        if let NodeKind::Str(s) = &node.kind {
            self.record(path, node);
            self.record(&join(path, "url"), node);
            return Some(AptProxy {
                url: s.clone(),
                source: None,
            });
        }
        let entries = self.map(node, path, &["url", "source"])?;
        let mut proxy = AptProxy::default();
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "url" => proxy.url = self.string(v, &child).unwrap_or_default(),
                "source" => proxy.source = self.string(v, &child),
                _ => {}
            }
        }
        Some(proxy)
    }

    /// A list of artifacts. In `copies` (`requirements == false`) a string is `from`; in
    /// requirements a string is a local `source`.
    pub(crate) fn artifacts(
        &mut self,
        node: &Node,
        path: &str,
        requirements: bool,
    ) -> Vec<Artifact> {
        let Some(items) = self.seq(node, path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            self.record(&p, item);
            match &item.kind {
                NodeKind::Str(s) if requirements => {
                    self.record(&join(&p, "source"), item);
                    out.push(Artifact {
                        from: LOCAL.to_string(),
                        source: s.clone(),
                        ..Artifact::default()
                    })
                }
                NodeKind::Str(s) => {
                    self.record(&join(&p, "from"), item);
                    out.push(Artifact {
                        from: s.clone(),
                        ..Artifact::default()
                    })
                }
                NodeKind::Map(_) => {
                    let allowed = ["from", "source", "destination", "exclude"];
                    let Some(entries) = self.map(item, &p, &allowed) else {
                        continue;
                    };
                    let mut a = Artifact::default();
                    for (k, v) in entries {
                        let child = join(&p, &k.name);
                        match k.name.as_str() {
                            "from" => a.from = self.string(v, &child).unwrap_or_default(),
                            "source" => a.source = self.string(v, &child).unwrap_or_default(),
                            "destination" => {
                                a.destination = self.string(v, &child).unwrap_or_default()
                            }
                            "exclude" => {
                                a.exclude = self.string_list(v, &child).unwrap_or_default()
                            }
                            _ => {}
                        }
                    }
                    out.push(a);
                }
                _ => self.wrong_type(item, &p, "string or object"),
            }
        }
        out
    }

    fn requirements(&mut self, node: &Node, path: &str) -> Option<Vec<Artifact>> {
        if matches!(node.kind, NodeKind::Null) {
            self.record(path, node);
            return None;
        }
        Some(self.artifacts(node, path, true))
    }

    fn command(&mut self, node: &Node, path: &str) -> Option<Command> {
        match &node.kind {
            NodeKind::Str(s) => {
                self.record(path, node);
                Some(Command::Shell(s.clone()))
            }
            _ => self.string_list(node, path).map(Command::Exec),
        }
    }

    fn custom_builder(&mut self, node: &Node, path: &str) -> Option<CustomBuilder> {
        let allowed = ["command", "script", "requirements", "mounts", "caches"];
        let entries = self.map(node, path, &allowed)?;
        let mut b = CustomBuilder::default();
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "command" => b.command = self.command(v, &child),
                "script" => b.script = self.string(v, &child),
                "requirements" => b.requirements = self.requirements(v, &child),
                "mounts" => b.mounts = self.mounts(v, &child),
                "caches" => b.caches = self.caches(v, &child),
                _ => {}
            }
        }
        Some(b)
    }

    fn mounts(&mut self, node: &Node, path: &str) -> Option<Vec<Mount>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if let NodeKind::Str(s) = &item.kind {
                self.record(&p, item);
                self.record(&join(&p, "from"), item);
                out.push(Mount {
                    from: s.clone(),
                    ..Mount::default()
                });
                continue;
            }
            let Some(entries) = self.map(item, &p, &["from", "destination", "source"]) else {
                continue;
            };
            let mut m = Mount::default();
            for (k, v) in entries {
                let child = join(&p, &k.name);
                let value = self.string(v, &child).unwrap_or_default();
                match k.name.as_str() {
                    "from" => m.from = value,
                    "destination" => m.destination = value,
                    "source" => m.source = value,
                    _ => {}
                }
            }
            out.push(m);
        }
        Some(out)
    }

    fn caches(&mut self, node: &Node, path: &str) -> Option<Vec<Cache>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if let NodeKind::Str(s) = &item.kind {
                self.record(&p, item);
                self.record(&join(&p, "destination"), item);
                out.push(Cache {
                    destination: s.clone(),
                    ..Cache::default()
                });
                continue;
            }
            let Some(entries) = self.map(item, &p, &["destination", "id", "access"]) else {
                continue;
            };
            let mut c = Cache::default();
            for (k, v) in entries {
                let child = join(&p, &k.name);
                let value = self.string(v, &child).unwrap_or_default();
                match k.name.as_str() {
                    "destination" => c.destination = value,
                    "id" => c.id = value,
                    "access" => {
                        c.access = match value.as_str() {
                            "" | "shared" => CacheAccess::Shared,
                            "locked" => CacheAccess::Locked,
                            "private" => CacheAccess::Private,
                            other => {
                                self.err(
                                    v.pos,
                                    &child,
                                    Problem::Schema {
                                        pointer: pointer_of(&child),
                                        detail: format!(
                                            "value must be one of 'shared', 'locked', 'private', not {other:?}"
                                        ),
                                    },
                                );
                                CacheAccess::Shared
                            }
                        }
                    }
                    _ => {}
                }
            }
            out.push(c);
        }
        Some(out)
    }

    fn builders(&mut self, node: &Node, path: &str) -> Vec<BuilderEntry> {
        let Some(items) = self.seq(node, path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(entries) = self.map(item, &p, &["custom", "node", "php", "python"]) else {
                continue;
            };
            for (k, v) in entries {
                let child = join(&p, &k.name);
                let entry = match k.name.as_str() {
                    "custom" => {
                        BuilderEntry::Custom(self.custom_builder(v, &child).unwrap_or_default())
                    }
                    "node" => BuilderEntry::Node(self.node(v, &child)),
                    "php" => BuilderEntry::Php(self.php(v, &child)),
                    "python" => BuilderEntry::Python(self.python(v, &child)),
                    _ => continue,
                };
                out.push(entry);
            }
        }
        out
    }

    fn node(&mut self, node: &Node, path: &str) -> NodeConfig {
        let allowed = ["requirements", "env", "use-npm-ci", "allow-dedupe-failure"];
        let mut n = NodeConfig::default();
        let Some(entries) = self.map(node, path, &allowed) else {
            return n;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "requirements" => n.requirements = self.requirements(v, &child),
                "env" => n.env = self.string(v, &child).unwrap_or_default(),
                "use-npm-ci" => n.use_npm_ci = self.flag(v, &child),
                "allow-dedupe-failure" => n.allow_dedupe_failure = self.flag(v, &child),
                _ => {}
            }
        }
        n
    }

    fn php(&mut self, node: &Node, path: &str) -> PhpConfig {
        let mut p = PhpConfig::default();
        let Some(entries) = self.map(node, path, &["requirements", "production"]) else {
            return p;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "requirements" => p.requirements = self.requirements(v, &child),
                "production" => p.production = self.flag(v, &child),
                _ => {}
            }
        }
        p
    }

    fn python(&mut self, node: &Node, path: &str) -> PythonConfig {
        let allowed = [
            "version",
            "requirements",
            "use-system-site-packages",
            "no-deps",
            "poetry",
            "venv",
            "pip-version",
            "setuptools-version",
            "tox-version",
            "wheel-version",
        ];
        let mut py = PythonConfig::default();
        let Some(entries) = self.map(node, path, &allowed) else {
            return py;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "requirements" => py.requirements = self.requirements(v, &child),
                "use-system-site-packages" => py.use_system_site_packages = self.flag(v, &child),
                "no-deps" => py.no_deps = self.flag(v, &child),
                "poetry" => py.poetry = self.poetry(v, &child),
                key => {
                    let value = self.string(v, &child).unwrap_or_default();
                    match key {
                        "version" => py.version = value,
                        "venv" => py.venv = value,
                        "pip-version" => py.pip_version = value,
                        "setuptools-version" => py.setuptools_version = value,
                        "tox-version" => py.tox_version = value,
                        "wheel-version" => py.wheel_version = value,
                        _ => {}
                    }
                }
            }
        }
        py
    }

    fn poetry(&mut self, node: &Node, path: &str) -> PoetryConfig {
        let mut p = PoetryConfig::default();
        let Some(entries) = self.map(node, path, &["version", "devel", "only", "without"]) else {
            return p;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "devel" => p.devel = self.flag(v, &child),
                key => {
                    let value = self.string(v, &child).unwrap_or_default();
                    match key {
                        "version" => p.version = value,
                        "only" => p.only = value,
                        "without" => p.without = value,
                        _ => {}
                    }
                }
            }
        }
        p
    }
}

/// Blubber's defaults, decoded before the user's top level (§1 step 4).
pub fn defaults() -> CommonConfig {
    CommonConfig {
        lives: LivesConfig {
            dir: "/srv/app".into(),
            user: UserConfig {
                name: "somebody".into(),
                uid: 65533,
                gid: 65533,
            },
        },
        runs: RunsConfig {
            user: UserConfig {
                name: "runuser".into(),
                uid: 900,
                gid: 900,
            },
            ..RunsConfig::default()
        },
        ..CommonConfig::default()
    }
}

/// Joins a path and a key with a dot (no dot at the root).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The last element of a path, as Blubber's validator names fields (`from`,
/// `packages[default][1]`, `includes[2]`).
pub(crate) fn field_of(path: &str) -> String {
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    path[start..].to_string()
}

/// A JSON pointer for a dotted path (for schema-style messages).
pub(crate) fn pointer_of(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut seg = String::new();
    for c in path.chars() {
        match c {
            '[' => {
                if depth == 0 && !seg.is_empty() {
                    out.push('/');
                    out.push_str(&seg);
                    seg.clear();
                }
                depth += 1;
                if depth > 1 {
                    seg.push(c);
                }
            }
            ']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    out.push('/');
                    out.push_str(&seg);
                    seg.clear();
                } else {
                    seg.push(c);
                }
            }
            '.' if depth == 0 => {
                if !seg.is_empty() {
                    out.push('/');
                    out.push_str(&seg);
                    seg.clear();
                }
            }
            _ => seg.push(c),
        }
    }
    if !seg.is_empty() {
        out.push('/');
        out.push_str(&seg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_match_blubber() {
        assert_eq!(field_of("variants.foo.copies[0].from"), "from");
        assert_eq!(field_of("apt.packages[default][1]"), "packages[default][1]");
        assert_eq!(field_of("variants.foo.includes[2]"), "includes[2]");
        assert_eq!(field_of("apt.packages[a.b][0]"), "packages[a.b][0]");
        assert_eq!(
            pointer_of("variants.x.apt.sources[0].url"),
            "/variants/x/apt/sources/0/url"
        );
    }
}
