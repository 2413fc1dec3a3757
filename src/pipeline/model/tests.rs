use super::*;

fn stage(yaml: &str) -> Stage {
    Stage::from_value(
        serde_yaml::from_str::<Value>(yaml)
            .unwrap()
            .as_mapping()
            .unwrap(),
    )
}
fn y(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

#[test]
fn name_only_shorthand() {
    let st = stage("{name: foo}");
    assert_eq!(st.build, Some(y("{variant: '${.stage}', context: '.'}")));
    assert_eq!(
        st.run,
        Some(y(
            "{image: '${.imageID}', arguments: [], env: {}, credentials: [], tail: 0}"
        ))
    );
    assert_eq!(stage("{name: foo, notify: {email: {to: a}}}").build, None);
    assert_eq!(stage("{name: foo, blubberfile: x.yaml}").run, None);
    assert_eq!(stage("{name: foo, build: y}").run, None);
}

#[test]
fn build_and_run_defaults() {
    assert_eq!(
        stage("{name: f, build: {context: '.'}}").build,
        Some(y("{context: '.', variant: '${.stage}'}"))
    );
    assert_eq!(
        stage("{name: f, build: {variant: bar, imagePullPolicy: never}}").build,
        Some(y("{variant: bar, imagePullPolicy: never, context: '.'}"))
    );
    // Unset or empty: left to `--pull` (PipelineLib's default is `always`).
    assert_eq!(
        stage("{name: f, build: {variant: bar, imagePullPolicy: ''}}")
            .build
            .unwrap()
            .get("imagePullPolicy"),
        None
    );
    let st = stage("{name: f, build: bar, run: true}");
    assert_eq!(st.build, Some(y("{variant: bar, context: '.'}")));
    assert_eq!(
        st.run,
        Some(y(
            "{image: '${.imageID}', arguments: [], env: {}, credentials: [], tail: 0}"
        ))
    );
    for off in ["false", "''", "{}", "[]", "null"] {
        assert_eq!(
            stage(&format!("{{name: f, build: bar, run: {off}}}")).run,
            None,
            "{off}"
        );
    }
}

#[test]
fn copy_publish_promote_deploy_defaults() {
    let items = normalise_copy(&y("[foo/source, {source: a, from: x, archive: true}]")).unwrap();
    assert_eq!(
        Value::Mapping(items[0].clone()),
        y("{source: foo/source, from: '${.container}', destination: foo/source, archive: false}")
    );
    assert_eq!(
        Value::Mapping(items[1].clone()),
        y("{source: a, from: x, archive: true, destination: a}")
    );
    assert_eq!(
        stage("{name: f, publish: {image: true}}").publish_image,
        Some(y("{id: '${.imageID}', name: '${setup.project}', tag: '${setup.timestamp}-${.stage}', tags: ['${setup.tag}']}"))
    );
    let p = stage("{name: f, publish: {image: {tag: '', tags: [a]}}}")
        .publish_image
        .unwrap();
    assert_eq!(p["tag"], y("'${setup.timestamp}-${.stage}'"));
    assert_eq!(p["tags"], y("[a]"));
    assert_eq!(
        stage("{name: f, promote: true}").promote,
        Some(y(
            "[{chart: '${setup.projectShortName}', environments: [], version: '${.imageTag}'}]"
        ))
    );
    assert_eq!(
        stage("{name: f, deploy: {chart: {}}}").deploy,
        Some(y("{chart: {name: '${setup.projectShortName}', version: ''}, image: '${.imageName}', tag: '${.imageTag}', cluster: ci, test: true, overrides: {}, timeout: null}"))
    );
    let d = stage(
        "{name: f, deploy: {chart: {name: c}, image: i, tag: t, test: false, overrides: {a: b}}}",
    )
    .deploy
    .unwrap();
    assert_eq!(d["image"], y("i"));
    assert_eq!(d["test"], y("false"));
    assert_eq!(d["overrides"], y("{a: b}"));
}

fn load_text(text: &str) -> Result<ConfigFile> {
    load_str(Path::new("config.yaml"), text, &[], &LoadOptions::default())
}

#[test]
fn pipeline_defaults_and_frames() {
    let cfg = load_text(
        "pipelines:\n  p:\n    stages: [{name: a}, {name: b}, {name: c}]\n    execution: []\n",
    )
    .unwrap();
    let p = &cfg.pipelines[0];
    assert_eq!(p.blubberfile, y("p/blubber.yaml"));
    assert_eq!(p.directory, ".");
    assert_eq!(
        p.fetch,
        Fetch {
            shallow: true,
            depth: 20,
            submodules: true,
            tags: false
        }
    );
    assert_eq!(
        crate::pipeline::graph::render_frames(&p.frames().unwrap()),
        "[setup] [a] [b] [c] [teardown]"
    );
}

#[test]
fn frame_table_of_the_spec() {
    let cases = [
        ("[[test],[lint]]", "[setup] [test, lint] [teardown]"),
        (
            "[[unit, candidate],[lint, candidate]]",
            "[setup] [unit, lint] [candidate] [teardown]",
        ),
        ("[[a,b],[c]]", "[setup] [a, c] [b] [teardown]"),
        ("[[a,b],[c,d]]", "[setup] [a, c] [b, d] [teardown]"),
        ("[[a,b,c],[x,c]]", "[setup] [a, x] [b] [c] [teardown]"),
    ];
    for (exec, want) in cases {
        let cfg = load_text(&format!(
            "pipelines: {{p: {{stages: [], execution: {exec}}}}}"
        ))
        .unwrap();
        assert_eq!(
            crate::pipeline::graph::render_frames(&cfg.pipelines[0].frames().unwrap()),
            want,
            "{exec}"
        );
    }
    let cfg = load_text("pipelines: {p: {stages: []}}").unwrap();
    assert_eq!(
        crate::pipeline::graph::render_frames(&cfg.pipelines[0].frames().unwrap()),
        "[setup, teardown]"
    );
}

#[test]
fn duplicate_names_make_a_cycle_and_last_wins() {
    let cfg = load_text(
        "pipelines: {p: {stages: [{name: a, build: x}, {name: b}, {name: a, build: z}]}}",
    );
    // uniqueItems compares whole objects, so these differing duplicates pass the schema.
    let cfg = cfg.unwrap();
    let p = &cfg.pipelines[0];
    assert_eq!(p.stage("a").build.unwrap()["variant"], y("z"));
    let err = p.frames().unwrap_err().to_string();
    assert!(
        err.contains("cycle detected in graph (digraph { a -> b; b -> a;"),
        "{err}"
    );
}

#[test]
fn code_rules_reported_together() {
    let err = load_text("pipelines: {p: {stages: [{name: setup}, {name: teardown}]}}")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            " - config.yaml:1:1: setup is a reserved stage name\n - config.yaml:1:1: teardown is a reserved stage name"
        ),
        "{err}"
    );
    let opts = LoadOptions {
        strict: false,
        allowed_actions: Some(vec!["build".into(), "run".into()]),
    };
    let err = load_str(
        Path::new("c.yaml"),
        "pipelines: {p: {stages: [{name: foo, publish: {image: true}}]}}",
        &[],
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            " - c.yaml:1:1: stage `foo` contains an action (`publish`) that is not allowed by this pipeline"
        ),
        "{err}"
    );
}

/// The schema refuses an `execution` that is not a list of lists before the code's rule
/// sees it, so the rule is driven here directly.
#[test]
fn an_execution_that_is_not_a_list_of_lists_is_reported_at_execution() {
    let text = "pipelines:\n  p:\n    stages:\n      - name: foo\n    execution: [foo, bar]\n";
    let doc = y(text);
    let raw = doc["pipelines"]["p"].as_mapping().unwrap();
    let p = Pipeline::from_value("p", raw);
    let errors = p.check(Path::new("c.yaml"), text, raw, None);
    assert_eq!(
        errors,
        ["c.yaml:5:5: `execution` graph must be a list of lists (graph branches)"]
    );
}

#[test]
fn unknown_pipeline_and_warnings() {
    let err = load_str(
        Path::new(".pipeline/config.yaml"),
        "pipelines: {p: {stages: []}}",
        &["q".into()],
        &LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "Pipeline 'q' is not defined in project's '.pipeline/config.yaml'"
    );
    let cfg =
        load_text("pipelines: {p: {stages: [{name: a}, {name: b}], execution: [[a, ghost]]}}")
            .unwrap();
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.contains("stage `b` is not in `execution`")));
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.contains("`ghost` in `execution` has no stage definition")));
}

#[test]
fn yaml_errors_have_positions_and_schema_errors_lines() {
    let err = load_text("pipelines:\n  p:\n   stages: [\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line"), "{err}");
    let err =
        load_text("pipelines:\n  p:\n    stages:\n      - name: a\n        run: yes-please\n")
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("config.yaml:5:9: pipelines.p.stages[0].run"),
        "{err}"
    );
}

#[test]
fn services_are_checked_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("blubber.yaml"),
        "version: v4\nvariants:\n  redis: {}\n  test: {}\n",
    )
    .unwrap();
    let path = dir.path().join("config.yaml");
    let text = "pipelines:
  p:
    blubberfile: blubber.yaml
    stages:
      - name: t
        services:
          - name: db
            build: redis
            ready: [redis-cli, ping]
          - name: db
            build: nosuch
          - name: both
            build: redis
            image: x
          - name: bad_name
            image: x
            timeout: 0
";
    let loaded = |strict: bool| {
        let opts = LoadOptions {
            strict,
            ..LoadOptions::default()
        };
        load_str(&path, text, &[], &opts)
    };
    let PipelineError::Validation { errors, .. } = loaded(false).unwrap_err() else {
        panic!("expected validation errors");
    };
    let at = |needle: &str| {
        errors
            .iter()
            .find(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {errors:#?}"))
            .clone()
    };
    let p = path.display();
    assert!(
        at("used twice").starts_with(&format!("{p}:10:13: ")),
        "{errors:#?}"
    );
    assert!(
        at("variant `nosuch`").starts_with(&format!("{p}:11:13: ")),
        "{errors:#?}"
    );
    assert!(at("variants: redis, test").contains("blubber.yaml"));
    assert!(at("exactly one of").contains("services[2]"), "{errors:#?}");
    assert!(at("not a host name").contains("bad_name"), "{errors:#?}");
    assert!(
        at("seconds > 0").starts_with(&format!("{p}:17:13: ")),
        "{errors:#?}"
    );
    assert!(
        at("has none").starts_with(&format!("{p}:6:9: ")),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), 6, "{errors:#?}");
    // Upstream's schema, kept verbatim under --strict, has no `services`.
    let PipelineError::Schema { errors, .. } = loaded(true).unwrap_err() else {
        panic!("--strict must reject services");
    };
    assert!(
        errors[0].starts_with(&format!("{p}:6:9: "))
            && errors[0].contains("unknown key 'services'"),
        "{errors:#?}"
    );
    let fixed = text
        .replace("build: nosuch", "build: test")
        .replace(
            "name: db\n            build: test",
            "name: cache\n            build: test",
        )
        .replace(
            "            image: x\n          - name: bad_name",
            "          - name: other",
        )
        .replace("timeout: 0", "timeout: 5")
        .replace("      - name: t\n", "      - name: t\n        run: true\n");
    let ok = load_str(&path, &fixed, &[], &LoadOptions::default()).unwrap();
    let services = services_of(ok.pipelines[0].stage("t").services.as_ref().unwrap());
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["db", "cache", "both", "other"]);
    assert_eq!(
        services[0].ready.as_deref(),
        Some(&["redis-cli".to_string(), "ping".to_string()][..])
    );
    assert_eq!(services[3].timeout, Some(std::time::Duration::from_secs(5)));
}

/// `run` nested `levels` lists deep inside a stage, i.e. `levels + 5` collections deep.
fn nested_run(levels: usize) -> String {
    format!(
        "pipelines:\n  x:\n    stages: [{{name: a, run: {}{}}}]\n",
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

#[test]
fn nesting_up_to_serde_yamls_limit_is_judged_as_before() {
    // 128 collections deep: parsed, then refused by the schema (a list is not a `run`).
    let err = load_text(&nested_run(123)).unwrap_err();
    assert!(matches!(err, PipelineError::Schema { .. }), "{err}");
    // 129: serde_yaml's recursion limit, as before the nesting check.
    let err = load_text(&nested_run(124)).unwrap_err().to_string();
    assert!(
        err.contains("invalid YAML: recursion limit exceeded at line 3 column"),
        "{err}"
    );
}

#[test]
fn deep_flow_nesting_is_refused_quickly() {
    // A hostile input (issue #16): libyaml took minutes on this before its recursion limit applied.
    let text = format!("pipelines:\n  x: {}\n", "[{a: ".repeat(100_000));
    let err = load_text(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("config.yaml: invalid YAML: recursion limit exceeded at line 2 column"),
        "{err}"
    );
}
