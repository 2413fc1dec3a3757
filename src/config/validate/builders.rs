//! Validation of builders: `builders` (repetitions, exclusion with the standalone
//! keys), custom builders (command vs script, mounts, caches), node, php and python.

use super::*;

impl Validator<'_> {
    pub(super) fn builders(&mut self, c: &CommonConfig, path: &str) {
        if c.builders.is_empty() {
            return;
        }
        // Blubber's tag order: uniquetypesexcept, then notallowedwith; the first wins.
        let mut seen = HashSet::new();
        for e in &c.builders {
            if !matches!(e, BuilderEntry::Custom(_)) && !seen.insert(e.kind()) {
                self.err(
                    path,
                    Problem::UniqueTypesExcept {
                        field: "builders".into(),
                    },
                );
                return;
            }
        }
        let declared = !c.node.is_empty()
            || !c.php.is_empty()
            || !c.python.is_empty()
            || c.builder
                .as_ref()
                .is_some_and(|b| *b != CustomBuilder::default());
        if declared {
            self.err(
                path,
                Problem::NotAllowedWith {
                    field: "builders".into(),
                    param: "node php python builder".into(),
                },
            );
            return;
        }
        for (i, e) in c.builders.iter().enumerate() {
            let epath = format!("{path}[{i}].{}", e.kind());
            match e {
                BuilderEntry::Custom(b) => self.custom_builder(b, &epath),
                BuilderEntry::Node(n) => self.node(n, &epath),
                BuilderEntry::Php(p) => self.php(p, &epath),
                BuilderEntry::Python(p) => self.python(p, &epath),
            }
        }
    }

    pub(super) fn custom_builder(&mut self, b: &CustomBuilder, path: &str) {
        let has_command = b.command.as_ref().is_some_and(|c| !c.is_empty());
        let has_script = b.script.as_deref().is_some_and(|s| !s.is_empty());
        if has_command && has_script {
            self.err(
                &format!("{path}.command"),
                Problem::NotAllowedWith {
                    field: "command".into(),
                    param: "script".into(),
                },
            );
            self.err(
                &format!("{path}.script"),
                Problem::NotAllowedWith {
                    field: "script".into(),
                    param: "command".into(),
                },
            );
        }
        if let Some(reqs) = &b.requirements {
            self.requirements(reqs, &format!("{path}.requirements"));
        }
        if let Some(mounts) = &b.mounts {
            let mpath = format!("{path}.mounts");
            if has_duplicates(mounts) {
                self.err(
                    &mpath,
                    Problem::Duplicates {
                        field: "mounts".into(),
                    },
                );
            }
        }
        if let Some(caches) = &b.caches {
            let cpath = format!("{path}.caches");
            if has_duplicates(caches) {
                self.err(
                    &cpath,
                    Problem::Duplicates {
                        field: "caches".into(),
                    },
                );
            } else {
                for (i, c) in caches.iter().enumerate() {
                    if c.destination.is_empty() {
                        self.err(
                            &format!("{cpath}[{i}].destination"),
                            Problem::Required {
                                field: "destination".into(),
                            },
                        );
                    }
                }
            }
        }
    }

    pub(super) fn node(&mut self, n: &NodeConfig, path: &str) {
        if !n.env.is_empty() && !rules::is_node_env(&n.env) {
            self.err(
                &format!("{path}.env"),
                Problem::NodeEnv {
                    field: "env".into(),
                    value: n.env.clone(),
                },
            );
        }
        if let Some(reqs) = &n.requirements {
            self.requirements(reqs, &format!("{path}.requirements"));
        }
    }

    pub(super) fn php(&mut self, p: &PhpConfig, path: &str) {
        if let Some(reqs) = &p.requirements {
            self.requirements(reqs, &format!("{path}.requirements"));
        }
    }

    pub(super) fn python(&mut self, p: &PythonConfig, path: &str) {
        if !p.poetry.version.is_empty() && !rules::is_py_pkg_version(&p.poetry.version) {
            self.err(
                &format!("{path}.poetry.version"),
                Problem::PyPkgVer {
                    field: "version".into(),
                    value: p.poetry.version.clone(),
                },
            );
        }
        if let Some(reqs) = &p.requirements {
            self.requirements(reqs, &format!("{path}.requirements"));
        }
    }
}
