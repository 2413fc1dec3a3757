//! Decoding of builder-related keys: artifacts (copies and requirements), `builder`,
//! `builders`, `node`, `php` and `python`.

use super::*;

impl Decoder<'_> {
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
                            "from" => a.from = self.nullable_string(v, &child).unwrap_or_default(),
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
                    if requirements && a.from.is_empty() {
                        // Blubber's compiler copies a from-less requirement from the
                        // build context; v1.3.0+ validation rejects it under
                        // `builders[].custom`. We accept it (docs/compatibility.md).
                        a.from = LOCAL.to_string();
                    }
                    out.push(a);
                }
                NodeKind::Null => self.null_refused(item, &p, "string or object"),
                _ => self.wrong_type(item, &p, "string or object"),
            }
        }
        out
    }

    /// `requirements` of a builder: artifacts whose string form is a local source.
    fn requirements(&mut self, node: &Node, path: &str) -> Option<Vec<Artifact>> {
        Some(self.artifacts(node, path, true))
    }

    fn command(&mut self, node: &Node, path: &str) -> Option<Command> {
        match &node.kind {
            NodeKind::Str(s) => {
                self.record(path, node);
                Some(Command::Shell(s.clone()))
            }
            NodeKind::Null => {
                self.null_refused(node, path, "array or string");
                None
            }
            _ => self.string_list(node, path).map(Command::Exec),
        }
    }

    pub(super) fn custom_builder(&mut self, node: &Node, path: &str) -> Option<CustomBuilder> {
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

    /// A list whose items are either a string (shorthand for `shorthand_key`) or a mapping
    /// with `keys`; `set` stores one string field of an item.
    fn string_or_map_list<T: Default>(
        &mut self,
        node: &Node,
        path: &str,
        shorthand_key: &str,
        keys: &[&str],
        mut set: impl FnMut(&mut Self, &mut T, &str, String, &Node, &str),
    ) -> Option<Vec<T>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if matches!(item.kind, NodeKind::Null) {
                self.null_refused(item, &p, "string or object");
                continue;
            }
            if let NodeKind::Str(s) = &item.kind {
                self.record(&p, item);
                let child = join(&p, shorthand_key);
                self.record(&child, item);
                let mut t = T::default();
                set(self, &mut t, shorthand_key, s.clone(), item, &child);
                out.push(t);
                continue;
            }
            let Some(entries) = self.map(item, &p, keys) else {
                continue;
            };
            let mut t = T::default();
            for (k, v) in entries {
                let child = join(&p, &k.name);
                let value = self.string(v, &child).unwrap_or_default();
                set(self, &mut t, &k.name, value, v, &child);
            }
            out.push(t);
        }
        Some(out)
    }

    fn mounts(&mut self, node: &Node, path: &str) -> Option<Vec<Mount>> {
        self.string_or_map_list(
            node,
            path,
            "from",
            &["from", "destination", "source"],
            |_, m: &mut Mount, key, value, _, _| match key {
                "from" => m.from = value,
                "destination" => m.destination = value,
                "source" => m.source = value,
                _ => {}
            },
        )
    }

    fn caches(&mut self, node: &Node, path: &str) -> Option<Vec<Cache>> {
        self.string_or_map_list(
            node,
            path,
            "destination",
            &["destination", "id", "access"],
            |d, c: &mut Cache, key, value, v, child| match key {
                "destination" => c.destination = value,
                "id" => c.id = value,
                "access" => {
                    c.access = match value.as_str() {
                        "" | "shared" => CacheAccess::Shared,
                        "locked" => CacheAccess::Locked,
                        "private" => CacheAccess::Private,
                        other => {
                            d.err(
                                v.pos,
                                child,
                                Problem::Schema {
                                    pointer: pointer_of(child),
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
            },
        )
    }

    pub(super) fn builders(&mut self, node: &Node, path: &str) -> Vec<BuilderEntry> {
        let Some(items) = self.seq(node, path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(entries) = self.map(item, &p, &["custom", "node", "php", "python"]) else {
                continue;
            };
            if entries.len() != 1 {
                self.err(
                    item.pos,
                    &p,
                    Problem::Schema {
                        pointer: pointer_of(&p),
                        detail: format!(
                            "a builders entry must have exactly one key (custom, node, php or python), not {}",
                            entries.len()
                        ),
                    },
                );
                continue;
            }
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

    pub(super) fn node(&mut self, node: &Node, path: &str) -> NodeConfig {
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

    pub(super) fn php(&mut self, node: &Node, path: &str) -> PhpConfig {
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

    pub(super) fn python(&mut self, node: &Node, path: &str) -> PythonConfig {
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
