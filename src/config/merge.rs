//! Merging (`a ⊕= b`) exactly per Blubber v1.8.0 (spec §4.2): later wins for scalars
//! that are set, tri-state flags override only when given, `apt` appends,
//! `requirements`/`mounts`/`caches` are replaced when present (even `[]`), and
//! `copies` and `builders` have their own rules. Merges never alias their inputs
//! (Blubber quirk Q18 is not replicated).

use super::model::*;

fn set_string(a: &mut String, b: &str) {
    if !b.is_empty() {
        *a = b.to_string();
    }
}

fn set_flag(a: &mut Flag, b: Flag) {
    if b.is_some() {
        *a = b;
    }
}

fn set_present<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
    if b.is_some() {
        a.clone_from(b);
    }
}

impl UserConfig {
    /// Each of name, uid and gid is replaced when non-empty / non-zero (so uid 0 cannot
    /// be set by a variant: quirk Q4).
    pub fn merge(&mut self, b: &UserConfig) {
        set_string(&mut self.name, &b.name);
        if b.uid != 0 {
            self.uid = b.uid;
        }
        if b.gid != 0 {
            self.gid = b.gid;
        }
    }
}

impl LivesConfig {
    /// Field-wise merge.
    pub fn merge(&mut self, b: &LivesConfig) {
        set_string(&mut self.dir, &b.dir);
        self.user.merge(&b.user);
    }
}

impl RunsConfig {
    /// Field-wise merge; `environment` is a per-key union.
    pub fn merge(&mut self, b: &RunsConfig) {
        set_string(&mut self.dir, &b.dir);
        self.user.merge(&b.user);
        for (k, v) in &b.environment {
            self.environment.insert(k.clone(), v.clone());
        }
        set_flag(&mut self.insecurely, b.insecurely);
    }
}

impl AptConfig {
    /// Packages append per release key (duplicates kept); sources and proxies append.
    pub fn merge(&mut self, b: &AptConfig) {
        for (release, packages) in &b.packages {
            self.packages
                .entry(release.clone())
                .or_default()
                .extend(packages.iter().cloned());
        }
        self.sources.extend(b.sources.iter().cloned());
        self.proxies.extend(b.proxies.iter().cloned());
    }
}

impl CustomBuilder {
    /// `command` replaced when present, `script` when non-empty, requirements, mounts
    /// and caches when present. Both `command` and `script` can end up set; validation
    /// after expansion reports it.
    pub fn merge(&mut self, b: &CustomBuilder) {
        set_present(&mut self.command, &b.command);
        if b.script.as_deref().is_some_and(|s| !s.is_empty()) {
            self.script.clone_from(&b.script);
        }
        set_present(&mut self.requirements, &b.requirements);
        set_present(&mut self.mounts, &b.mounts);
        set_present(&mut self.caches, &b.caches);
    }
}

impl NodeConfig {
    /// Field-wise merge.
    pub fn merge(&mut self, b: &NodeConfig) {
        set_present(&mut self.requirements, &b.requirements);
        set_string(&mut self.env, &b.env);
        set_flag(&mut self.use_npm_ci, b.use_npm_ci);
        set_flag(&mut self.allow_dedupe_failure, b.allow_dedupe_failure);
    }
}

impl PhpConfig {
    /// Field-wise merge.
    pub fn merge(&mut self, b: &PhpConfig) {
        set_present(&mut self.requirements, &b.requirements);
        set_flag(&mut self.production, b.production);
    }
}

impl PoetryConfig {
    /// Field-wise merge.
    pub fn merge(&mut self, b: &PoetryConfig) {
        set_string(&mut self.version, &b.version);
        set_flag(&mut self.devel, b.devel);
        set_string(&mut self.only, &b.only);
        set_string(&mut self.without, &b.without);
    }
}

impl PythonConfig {
    /// Field-wise merge.
    pub fn merge(&mut self, b: &PythonConfig) {
        set_string(&mut self.version, &b.version);
        set_present(&mut self.requirements, &b.requirements);
        set_flag(
            &mut self.use_system_site_packages,
            b.use_system_site_packages,
        );
        set_flag(&mut self.no_deps, b.no_deps);
        self.poetry.merge(&b.poetry);
        set_string(&mut self.venv, &b.venv);
        set_string(&mut self.pip_version, &b.pip_version);
        set_string(&mut self.setuptools_version, &b.setuptools_version);
        set_string(&mut self.tox_version, &b.tox_version);
        set_string(&mut self.wheel_version, &b.wheel_version);
    }
}

/// Merges a predefined builder entry of `a` into the same-typed entry of `b` (b wins).
fn merge_entry(a: &BuilderEntry, b: &BuilderEntry) -> BuilderEntry {
    match (a, b) {
        (BuilderEntry::Node(x), BuilderEntry::Node(y)) => {
            let mut m = x.clone();
            m.merge(y);
            BuilderEntry::Node(m)
        }
        (BuilderEntry::Php(x), BuilderEntry::Php(y)) => {
            let mut m = x.clone();
            m.merge(y);
            BuilderEntry::Php(m)
        }
        (BuilderEntry::Python(x), BuilderEntry::Python(y)) => {
            let mut m = x.clone();
            m.merge(y);
            BuilderEntry::Python(m)
        }
        _ => b.clone(),
    }
}

/// `builders` merge: a node/php/python entry of `a` whose type also appears in `b` is
/// merged into `b`'s entry at `b`'s position; every other entry of `a` stays, in order,
/// in front of `b`'s list.
pub fn merge_builders(a: &[BuilderEntry], b: &[BuilderEntry]) -> Vec<BuilderEntry> {
    let predefined = |e: &BuilderEntry| !matches!(e, BuilderEntry::Custom(_));
    let in_b = |kind: &str| b.iter().any(|e| predefined(e) && e.kind() == kind);
    let mut out: Vec<BuilderEntry> = a
        .iter()
        .filter(|e| !(predefined(e) && in_b(e.kind())))
        .cloned()
        .collect();
    for entry in b {
        let inherited = if predefined(entry) {
            a.iter().find(|e| e.kind() == entry.kind())
        } else {
            None
        };
        out.push(match inherited {
            Some(prev) => merge_entry(prev, entry),
            None => entry.clone(),
        });
    }
    out
}

/// `copies` merge: the entries of `a` that do not equal any entry of `b`, then all of
/// `b` (an entry that is redefined moves to its new position).
pub fn merge_copies(a: &[Artifact], b: &[Artifact]) -> Vec<Artifact> {
    a.iter()
        .filter(|x| !b.contains(x))
        .chain(b.iter())
        .cloned()
        .collect()
}

impl CommonConfig {
    /// `self ⊕= b` (spec §4.2).
    pub fn merge(&mut self, b: &CommonConfig) {
        if b.base.as_deref().is_some_and(|s| !s.is_empty()) {
            self.base.clone_from(&b.base);
        }
        set_present(&mut self.entrypoint, &b.entrypoint);
        for (k, v) in &b.arguments {
            self.arguments.insert(k.clone(), v.clone());
        }
        self.apt.merge(&b.apt);
        match (&mut self.builder, &b.builder) {
            (Some(a), Some(b)) => a.merge(b),
            (a @ None, Some(b)) => *a = Some(b.clone()),
            _ => {}
        }
        self.builders = merge_builders(&self.builders, &b.builders);
        self.node.merge(&b.node);
        self.php.merge(&b.php);
        self.python.merge(&b.python);
        self.lives.merge(&b.lives);
        self.runs.merge(&b.runs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(source: &str) -> Artifact {
        Artifact {
            from: LOCAL.into(),
            source: source.into(),
            ..Artifact::default()
        }
    }

    #[test]
    fn builders_merge_matches_upstream_example() {
        let a = vec![
            BuilderEntry::Node(NodeConfig {
                use_npm_ci: Some(true),
                ..NodeConfig::default()
            }),
            BuilderEntry::Python(PythonConfig {
                version: "python2.7".into(),
                ..PythonConfig::default()
            }),
            BuilderEntry::Php(PhpConfig {
                requirements: Some(vec![local("composer.json")]),
                ..PhpConfig::default()
            }),
        ];
        let b = vec![
            BuilderEntry::Python(PythonConfig {
                requirements: Some(vec![local("requirements.txt")]),
                ..PythonConfig::default()
            }),
            BuilderEntry::Node(NodeConfig {
                requirements: Some(vec![local("package.json")]),
                allow_dedupe_failure: Some(true),
                ..NodeConfig::default()
            }),
            BuilderEntry::Custom(CustomBuilder {
                command: Some(Command::Exec(vec!["make".into(), "deps".into()])),
                ..CustomBuilder::default()
            }),
        ];
        let merged = merge_builders(&a, &b);
        let kinds: Vec<_> = merged.iter().map(BuilderEntry::kind).collect();
        assert_eq!(kinds, ["php", "python", "node", "custom"]);
        let BuilderEntry::Python(py) = &merged[1] else {
            panic!()
        };
        assert_eq!(py.version, "python2.7");
        assert_eq!(py.requirements, Some(vec![local("requirements.txt")]));
        let BuilderEntry::Node(node) = &merged[2] else {
            panic!()
        };
        assert_eq!(node.use_npm_ci, Some(true));
        assert_eq!(node.allow_dedupe_failure, Some(true));
    }

    #[test]
    fn redefined_copies_move_to_their_new_position() {
        let a = vec![local("x"), local("y")];
        let b = vec![local("x"), local("z")];
        assert_eq!(
            merge_copies(&a, &b),
            vec![local("y"), local("x"), local("z")]
        );
    }

    #[test]
    fn explicit_false_overrides_inherited_true_and_zero_uid_does_not() {
        let mut a = CommonConfig::default();
        a.runs.insecurely = Some(true);
        a.runs.user.uid = 900;
        let mut b = CommonConfig::default();
        b.runs.insecurely = Some(false);
        b.runs.user.uid = 0;
        a.merge(&b);
        assert_eq!(a.runs.insecurely, Some(false));
        assert_eq!(a.runs.user.uid, 900);
    }
}
