//! Expansion of blubber.yaml variants through the library API: defaults, includes
//! order, merge rules and the copies dependency graph, as asserted by Blubber's unit
//! tests (`fixtures/blubber-examples/EXPECTATIONS.md`, sections unit/ and derived/).

use std::collections::BTreeMap;
use std::path::Path;

use flense::config::{
    self, Artifact, BuilderEntry, Cache, CacheAccess, Command, Config, Mount, Problem, LOCAL,
};

fn load(rel: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/blubber-examples")
        .join(rel);
    config::load(&path).unwrap_or_else(|e| panic!("{rel}:\n{e}"))
}

fn local(source: &str) -> Artifact {
    Artifact {
        from: LOCAL.into(),
        source: source.into(),
        ..Artifact::default()
    }
}

fn from(variant: &str, source: &str, destination: &str) -> Artifact {
    Artifact {
        from: variant.into(),
        source: source.into(),
        destination: destination.into(),
        exclude: Vec::new(),
    }
}

#[test]
fn includes_order_is_leaves_first() {
    let cfg = load("unit/04-includes-order.blubber.yaml");
    assert_eq!(
        cfg.includes_order("varA").unwrap(),
        ["varF", "varD", "varE", "varB", "varC"]
    );
    assert_eq!(
        cfg.expand("varA").unwrap().includes,
        ["varF", "varD", "varE", "varB", "varC"]
    );
}

#[test]
fn include_cycle_fails_on_expansion_only() {
    let cfg = load("unit/05-includes-cycle.blubber.yaml");
    let err = cfg.expand("varA").unwrap_err();
    assert_eq!(
        err.messages(),
        ["processing includes for variant 'varA': Detected dependency graph cycle at 'varA'"]
    );
    assert_eq!(err.errors[0].variant.as_deref(), Some("varA"));
    assert!(err.errors[0].pos.is_some());
}

#[test]
fn expanding_an_unknown_variant_fails() {
    let cfg = load("unit/04-includes-order.blubber.yaml");
    let err = cfg.expand("nope").unwrap_err();
    assert_eq!(
        err.errors[0].problem,
        Problem::UnknownVariant {
            variant: "nope".into()
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: variant \"nope\": processing includes for variant 'nope': There is no key 'nope' in the dependency graph",
            cfg.file_name
        )
    );
}

#[test]
fn multi_level_includes() {
    let cfg = load("unit/06-multi-level-includes.blubber.yaml");
    let dev = cfg.expand("development").unwrap();
    assert_eq!(dev.common.base.as_deref(), Some("foo-devel"));
    assert_eq!(dev.common.runs.user.name, "foo");
    assert_eq!(dev.common.runs.user.uid, 123);
    let test = cfg.expand("test").unwrap();
    assert_eq!(test.common.base.as_deref(), Some("foo-devel"));
    assert_eq!(test.common.runs.user.name, "foo");
    assert_eq!(test.common.runs.user.uid, 123);
    assert_eq!(test.common.runs.insecurely, Some(true));
}

#[test]
fn last_include_wins_for_scalars() {
    let cfg = load("unit/07-multi-includes-last-wins.blubber.yaml");
    assert_eq!(
        cfg.expand("lizardman").unwrap().common.base.as_deref(),
        Some("immoral")
    );
}

#[test]
fn copies_dependencies_are_expanded_their_own_way() {
    let cfg = load("unit/08-copies-via-includes.blubber.yaml");
    let test = cfg.expand("test").unwrap();
    assert_eq!(test.common.base.as_deref(), Some("foo-test"));
    assert_eq!(test.common.runs.user.name, "runuser");
    assert_eq!(cfg.copies_dependencies("test").unwrap(), ["development"]);
    let dev = cfg.expand("development").unwrap();
    assert_eq!(dev.common.base.as_deref(), Some("foo-devel"));
    assert_eq!(dev.common.runs.user.name, "foo");
}

#[test]
fn inherited_copies_come_first() {
    let cfg = load("unit/09-transitive-merged-copies.blubber.yaml");
    assert_eq!(
        cfg.expand("bar").unwrap().copies,
        [from("build", "/foo", ""), from("build", "/bar", "")]
    );
    assert_eq!(cfg.copies_dependencies("bar").unwrap(), ["build"]);
}

#[test]
fn copies_through_includes_create_stages() {
    let cfg = load("unit/10-copies-through-includes-stage.blubber.yaml");
    // Stages for `three`: `one` (reached through includes: [two]), then `three`; not `two`.
    assert_eq!(cfg.copies_dependencies("three").unwrap(), ["one"]);
    let cfg = load("unit/11-multi-level-copies.blubber.yaml");
    assert_eq!(cfg.copies_dependencies("three").unwrap(), ["one", "two"]);
    assert_eq!(
        cfg.copies_dependencies("one").unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn copies_cycle_is_an_error() {
    let cfg = config::load_str(
        "version: v4\nbase: foo\nvariants:\n  aaa: { copies: [bbb] }\n  bbb: { copies: [aaa] }\n",
        "cycle.yaml",
    )
    .unwrap();
    let err = cfg.copies_dependencies("aaa").unwrap_err();
    assert_eq!(
        err.messages(),
        ["processing copies for variant 'aaa': Detected dependency graph cycle at 'aaa'"]
    );
    assert!(cfg.check_all().is_err());
}

#[test]
fn apt_merges_by_appending() {
    let cfg = load("unit/12-apt-merge.blubber.yaml");
    let top = &cfg.common.apt;
    assert_eq!(
        top.packages,
        BTreeMap::from([(
            "default".to_string(),
            vec!["libfoo".to_string(), "libbar".to_string()]
        )])
    );
    assert_eq!(top.proxies.len(), 2);
    assert_eq!(
        top.proxies[0].source.as_deref(),
        Some("http://security.debian.org")
    );
    assert_eq!(top.proxies[1].url, "https://proxy.example:8081");
    assert_eq!(top.proxies[1].source, None);
    assert_eq!(top.sources.len(), 2);
    assert!(top.sources[1]
        .signed_by
        .ends_with("-----END PGP PUBLIC KEY BLOCK-----\n"));
    let build = cfg.expand("build").unwrap().common.apt;
    assert_eq!(
        build.packages,
        BTreeMap::from([
            (
                "default".to_string(),
                vec!["libfoo".into(), "libbar".into(), "libfoo-dev".into()]
            ),
            ("baz-backports".to_string(), vec!["libbaz-dev".into()]),
        ])
    );
    assert_eq!(build.proxies, top.proxies);
    assert_eq!(build.sources, top.sources);
}

#[test]
fn builders_merge_in_upstream_order() {
    let cfg = load("unit/13-builders-merge.blubber.yaml");
    let builders = cfg.expand("build").unwrap().common.builders;
    let kinds: Vec<&str> = builders.iter().map(BuilderEntry::kind).collect();
    assert_eq!(kinds, ["php", "python", "node", "custom"]);
    let BuilderEntry::Php(php) = &builders[0] else {
        unreachable!()
    };
    assert_eq!(php.requirements, Some(vec![local("composer.json")]));
    let BuilderEntry::Python(py) = &builders[1] else {
        unreachable!()
    };
    assert_eq!(py.version, "python2.7");
    assert_eq!(py.requirements, Some(vec![local("requirements.txt")]));
    let BuilderEntry::Node(node) = &builders[2] else {
        unreachable!()
    };
    assert_eq!(node.use_npm_ci, Some(true));
    assert_eq!(node.allow_dedupe_failure, Some(true));
    assert_eq!(
        node.requirements,
        Some(vec![local("package.json"), local("package-lock.json")])
    );
    let BuilderEntry::Custom(custom) = &builders[3] else {
        unreachable!()
    };
    assert_eq!(
        custom.command,
        Some(Command::Exec(vec!["make".into(), "deps".into()]))
    );
    // The top level is not changed by expanding a variant (no aliasing, quirk Q18).
    assert_eq!(cfg.common.builders.len(), 3);
    assert_eq!(cfg.expand("build").unwrap().common.builders, builders);
}

#[test]
fn builder_command_forms_mounts_and_caches() {
    let cfg = load("unit/17-builder-mounts-caches.blubber.yaml");
    let test = cfg.expand("test").unwrap().common.builder.unwrap();
    assert_eq!(
        test.command,
        Some(Command::Exec(vec![
            "make".into(),
            "-f".into(),
            "Makefile".into(),
            "test".into()
        ]))
    );
    assert_eq!(test.requirements, Some(vec![local("Makefile")]));
    let build = cfg.expand("build").unwrap().common.builder.unwrap();
    assert_eq!(build.command, Some(Command::Shell("make install".into())));
    assert_eq!(build.requirements, Some(vec![]));
    assert_eq!(
        build.mounts,
        Some(vec![
            Mount {
                from: "local".into(),
                ..Mount::default()
            },
            Mount {
                from: "test".into(),
                destination: "/src/foo".into(),
                source: "/tmp".into()
            },
        ])
    );
    assert_eq!(
        build.caches,
        Some(vec![
            Cache {
                destination: "/var/cache/foo".into(),
                ..Cache::default()
            },
            Cache {
                destination: "/var/cache/bar".into(),
                id: "bar-cache".into(),
                access: CacheAccess::Locked
            },
        ])
    );
    // A mount from a variant makes it a build stage.
    assert_eq!(cfg.copies_dependencies("build").unwrap(), ["test"]);
}

#[test]
fn python_requirements_are_replaced_not_appended() {
    let cfg = load("unit/18-python-merge.blubber.yaml");
    let py = cfg.expand("test").unwrap().common.python;
    assert_eq!(py.version, "python3");
    assert_eq!(
        py.requirements,
        Some(vec![
            local("other-requirements.txt"),
            local("requirements-test.txt")
        ])
    );
    assert_eq!(py.use_system_site_packages, Some(true));
    assert_eq!(py.pip_version, ">=26.0.1,==26.*");
    assert_eq!(py.setuptools_version, "<=81.0.0");
    assert_eq!(py.tox_version, "4.11.2");
    assert_eq!(py.wheel_version, "~=0.46");
    assert_eq!(py.venv_path(), "/opt/lib/venv");
    assert!(py.is_enabled());
}

#[test]
fn empty_requirements_clear_inherited_ones() {
    let cfg = load("unit/19-node-merge.blubber.yaml");
    assert_eq!(
        cfg.common.node.requirements,
        Some(vec![local("package.json")])
    );
    assert_eq!(cfg.common.node.env, "foo");
    assert_eq!(cfg.common.node.use_npm_ci, Some(true));
    let node = cfg.expand("build").unwrap().common.node;
    assert_eq!(node.requirements, Some(vec![]));
    assert_eq!(node.env, "bar");
    assert_eq!(node.use_npm_ci, Some(true));
}

#[test]
fn explicit_false_overrides_inherited_true() {
    let cfg = load("unit/20-flag-merge.blubber.yaml");
    assert_eq!(
        cfg.expand("development").unwrap().common.runs.insecurely,
        Some(false)
    );
}

#[test]
fn arguments_merge_per_key() {
    let cfg = load("unit/21-arguments-merge.blubber.yaml");
    assert_eq!(
        cfg.expand("foo").unwrap().common.arguments,
        BTreeMap::from([
            ("FOO".to_string(), "foo".to_string()),
            ("BAR".into(), "baz".into())
        ])
    );
}

#[test]
fn defaults_apply_at_the_top_level() {
    let cfg = load("unit/31-defaults-only.blubber.yaml");
    let lives = &cfg.common.lives;
    assert_eq!(
        (
            lives.dir.as_str(),
            lives.user.name.as_str(),
            lives.user.uid,
            lives.user.gid
        ),
        ("/srv/app", "somebody", 65533, 65533)
    );
    let runs = &cfg.common.runs;
    assert_eq!(
        (runs.user.name.as_str(), runs.user.uid, runs.user.gid),
        ("runuser", 900, 900)
    );
    assert_eq!(runs.dir, "");
    assert_eq!(runs.insecurely, None);
    assert!(cfg.variant_names().is_empty());
    // A partial top-level `lives` keeps the other defaults.
    let cfg = config::load_str("version: v4\nlives: { uid: 1234 }\n", "x.yaml").unwrap();
    assert_eq!(cfg.common.lives.user.name, "somebody");
    assert_eq!(cfg.common.lives.user.gid, 65533);
    assert_eq!(cfg.common.lives.user.uid, 1234);
    assert_eq!(cfg.common.lives.dir, "/srv/app");
}

#[test]
fn runs_and_lives_with_all_fields() {
    let cfg = load("unit/32-runs-all-fields.blubber.yaml");
    let runs = cfg.expand("development").unwrap().common.runs;
    assert_eq!(runs.user.name, "someuser");
    assert_eq!(runs.insecurely, Some(true));
    assert_eq!((runs.user.uid, runs.user.gid), (666, 777));
    assert_eq!(
        runs.environment,
        BTreeMap::from([("FOO".to_string(), "bar".to_string())])
    );
    assert_eq!(runs.dir, "/some/directory");
    let cfg = load("unit/33-lives-all-fields.blubber.yaml");
    let lives = cfg.expand("development").unwrap().common.lives;
    assert_eq!(lives.dir, "/some/directory");
    assert_eq!(lives.user.name, "foouser");
    assert_eq!((lives.user.uid, lives.user.gid), (123, 223));
}

#[test]
fn uid_zero_cannot_be_set_by_a_variant_but_can_at_the_top() {
    let cfg = config::load_str(
        "version: v4\nbase: foo\nruns: { uid: 0 }\nvariants:\n  aaa: { lives: { uid: 0 } }\n",
        "x.yaml",
    )
    .unwrap();
    let v = cfg.expand("aaa").unwrap();
    assert_eq!(v.common.runs.user.uid, 0);
    assert_eq!(v.common.lives.user.uid, 65533);
}

#[test]
fn null_base_does_not_clear_and_scratch_is_detected() {
    let cfg = load("derived/02-null-base-does-not-clear-top-level.blubber.yaml");
    let prod = cfg.expand("prod").unwrap();
    assert_eq!(prod.common.base.as_deref(), Some("debian:bookworm"));
    assert!(!prod.is_scratch());
    let cfg = load("derived/01-scratch-ignores-common-config.blubber.yaml");
    assert!(cfg.expand("tiny").unwrap().is_scratch());
}

#[test]
fn empty_entrypoint_overrides_the_inherited_one() {
    // derived/11 uses one-letter variant names, which Blubber itself rejects; the same
    // config with valid names:
    let cfg = config::load_str(
        "version: v4\nbase: debian:bookworm\nentrypoint: [/usr/bin/top-level]\nvariants:\n  aaa: {}\n  bbb:\n    entrypoint: []\n",
        "x.yaml",
    )
    .unwrap();
    assert_eq!(
        cfg.expand("aaa").unwrap().common.entrypoint,
        Some(vec!["/usr/bin/top-level".to_string()])
    );
    assert_eq!(cfg.expand("bbb").unwrap().common.entrypoint, Some(vec![]));
}

#[test]
fn copies_expand_with_the_copying_variants_lives_in() {
    let cfg = load("derived/12-copies-shorthand-variant.blubber.yaml");
    let prod = cfg.expand("production").unwrap();
    assert_eq!(
        prod.expanded_copies,
        [
            from("build", "/app", "/app"),
            from("build", "/opt/lib", "/opt/lib")
        ]
    );
    assert_eq!(cfg.copies_dependencies("production").unwrap(), ["build"]);
    let cfg = load("acceptance/01-basic-usage/03-copies-exclude-glob.blubber.yaml");
    let name = cfg.variant_names()[0].to_string();
    let v = cfg.expand(&name).unwrap();
    assert_eq!(v.expanded_copies.len(), 1);
    let copy = &v.expanded_copies[0];
    assert_eq!(
        (
            copy.from.as_str(),
            copy.source.as_str(),
            copy.destination.as_str()
        ),
        ("local", ".", ".")
    );
    assert_eq!(copy.exclude, ["*.md"]);
}

#[test]
fn requirement_directories_without_a_slash_land_in_the_workdir() {
    let cfg = load("derived/05-requirements-dir-trailing-slash.blubber.yaml");
    let reqs = cfg
        .expand("build")
        .unwrap()
        .common
        .builder
        .unwrap()
        .requirements
        .unwrap();
    let groups = config::group_requirements(&reqs);
    let got: Vec<(Vec<String>, String)> = groups
        .into_iter()
        .map(|g| (g.sources, g.destination))
        .collect();
    assert_eq!(
        got,
        [
            (vec!["src".to_string()], "./".to_string()),
            (vec!["lib/".to_string()], "lib/".to_string()),
            (
                vec!["docs/requirements.txt".to_string()],
                "docs/".to_string()
            ),
        ]
    );
}

#[test]
fn string_commands_are_kept_verbatim() {
    let cfg = load("derived/07-percent-in-string-command.blubber.yaml");
    let builders = cfg.expand("build").unwrap().common.builders;
    let BuilderEntry::Custom(b) = &builders[1] else {
        unreachable!()
    };
    assert_eq!(b.command, Some(Command::Shell("date +%Y".into())));
}

#[test]
fn pipeline_file_from_upstream_expands_every_variant() {
    let cfg = load("repo/pipeline.blubber.yaml");
    cfg.check_all().unwrap();
    // Builder requirements from other variants make stages, leaves first.
    assert_eq!(
        cfg.copies_dependencies("docs-for-publishing").unwrap(),
        ["configuration-docs", "example-docs", "build-docs"]
    );
    assert_eq!(
        cfg.copies_dependencies("buildkit").unwrap(),
        ["buildkit-build"]
    );
    let test = cfg.expand("test").unwrap();
    assert_eq!(test.includes, ["golang", "build", "tools", "project"]);
    // Custom builders accumulate in include order: build's two, tools', project's.
    let commands: Vec<Option<Command>> = test
        .common
        .builders
        .iter()
        .map(|b| match b {
            BuilderEntry::Custom(c) => c.command.clone(),
            other => panic!("unexpected {}", other.kind()),
        })
        .collect();
    assert_eq!(
        commands,
        [
            Some(Command::Shell("mkdir -p ${GOPATH}/bin".into())),
            Some(Command::Shell("go mod download".into())),
            Some(Command::Shell("make install-tools".into())),
            None,
        ]
    );
    assert_eq!(test.common.runs.environment["CGO_ENABLED"], "0");
    assert_eq!(test.common.runs.insecurely, Some(true));
    for name in cfg.variant_names() {
        let v = cfg.expand(name).unwrap();
        for dep in cfg.copies_dependencies(name).unwrap() {
            assert!(cfg.variant(&dep).is_some(), "{name} -> {dep}");
        }
        assert!(!v.common.lives.dir.is_empty());
    }
}

#[test]
fn null_environment_values_define_empty_variables() {
    let cfg = config::load_str(
        "version: v4\nruns:\n  environment:\n    GRADLE_USER_HOME: ~\n    FOO: bar\n",
        "x.yaml",
    )
    .unwrap();
    assert_eq!(
        cfg.common.runs.environment,
        BTreeMap::from([
            ("FOO".to_string(), "bar".to_string()),
            ("GRADLE_USER_HOME".into(), String::new())
        ])
    );
}

#[test]
fn acceptance_configs_expand_to_the_expected_users_and_dirs() {
    let hey = load("acceptance/01-basic-usage/04-includes.blubber.yaml")
        .expand("hey")
        .unwrap();
    assert_eq!(hey.common.base.as_deref(), Some("debian:bullseye"));
    assert_eq!(hey.expanded_copies, [from("local", ".", ".")]);

    let hello = load("acceptance/02-defining-the-environment/02-custom-lives.blubber.yaml")
        .expand("hello")
        .unwrap();
    let lives = &hello.common.lives;
    assert_eq!(
        (
            lives.dir.as_str(),
            lives.user.name.as_str(),
            lives.user.uid,
            lives.user.gid
        ),
        ("/usr/local/app", "appowner", 1234, 1235)
    );
    assert_eq!(hello.common.runs.user.uid, 900);

    let hello = load("acceptance/02-defining-the-environment/03-custom-runs-user.blubber.yaml")
        .expand("hello")
        .unwrap();
    let runs = &hello.common.runs.user;
    assert_eq!(
        (runs.name.as_str(), runs.uid, runs.gid),
        ("apprunner", 4321, 4320)
    );

    let hello = load("acceptance/02-defining-the-environment/04-runs-insecurely.blubber.yaml")
        .expand("hello")
        .unwrap();
    assert_eq!(hello.common.runs.insecurely, Some(true));
    assert_eq!(
        (
            hello.common.runs.user.name.as_str(),
            hello.common.runs.user.uid
        ),
        ("runuser", 4321)
    );
    assert_eq!(
        (hello.common.lives.user.uid, hello.common.lives.user.gid),
        (1234, 65533)
    );
    assert_eq!(hello.common.lives.user.name, "somebody");

    let hello = load("acceptance/02-defining-the-environment/05-runs-environment.blubber.yaml")
        .expand("hello")
        .unwrap();
    assert_eq!(
        hello.common.runs.environment,
        BTreeMap::from([
            ("FOO".to_string(), "bar".to_string()),
            ("BAZ".into(), "qux".into())
        ])
    );

    let hello = load("acceptance/02-defining-the-environment/06-runs-in.blubber.yaml")
        .expand("hello")
        .unwrap();
    assert_eq!(hello.common.runs.dir, "/some/other/directory");
    assert_eq!(hello.common.lives.dir, "/srv/app");

    let cfg = load(
        "acceptance/05-copying-from-other-variants/01-copies-from-variant-to-scratch.blubber.yaml",
    );
    let production = cfg.expand("production").unwrap();
    assert!(production.is_scratch());
    assert_eq!(
        production.expanded_copies,
        [from("build", "/src/hello-world-go", "/hello-world")]
    );
    assert_eq!(cfg.copies_dependencies("production").unwrap(), ["build"]);
}
