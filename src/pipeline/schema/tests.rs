use super::*;

fn check(doc: &str, strict: bool) -> Vec<String> {
    let v: Value = serde_yaml::from_str(doc).unwrap();
    Schema::load(strict)
        .validate(&v)
        .iter()
        .map(|v| v.to_string())
        .collect()
}

#[test]
fn valid_minimal() {
    assert!(check("pipelines: {test: {stages: [{name: test}]}}", true).is_empty());
}

#[test]
fn messages_name_the_path() {
    let errs = check("pipelines: {test: {stages: [{name: t, run: 'x'}]}}", true);
    assert_eq!(
        errs,
        vec!["pipelines.test.stages[0].run: must be one of: a boolean, a map (found string 'x')"]
    );
    let errs = check("pipeline: {}", true);
    assert!(
        errs[0].contains("missing required key 'pipelines'"),
        "{errs:?}"
    );
    let errs = check("pipelines: {t: {stages: [{name: t, bogus: 1}]}}", true);
    assert!(
        errs[0].starts_with("pipelines.t.stages[0].bogus: unknown key 'bogus'"),
        "{errs:?}"
    );
    let errs = check("pipelines: {t: {stages: [], execution: [a, b]}}", true);
    assert_eq!(
        errs[0],
        "pipelines.t.execution[0]: must be a list (found string 'a')"
    );
    let errs = check(
        "pipelines: {t: {stages: [{name: t, run: {arguments: [1]}}]}}",
        true,
    );
    assert_eq!(
        errs[0],
        "pipelines.t.stages[0].run.arguments[0]: must be a string (found number 1)"
    );
}

#[test]
fn relaxations() {
    let doc = "pipelines: {t: {stages: [{name: t, promote: true}, {name: u, promote: [{chart: c, version: v}]}]}}";
    assert_eq!(check(doc, true).len(), 2);
    assert!(check(doc, false).is_empty());
}

#[test]
fn services_are_a_flense_extension() {
    let doc = "pipelines: {t: {stages: [{name: t, services: [{name: db, build: redis, ready: [redis-cli, ping], timeout: 5, env: {A: b}, arguments: [x]}]}]}}";
    assert!(check(doc, false).is_empty(), "{:?}", check(doc, false));
    assert!(check(doc, true)[0].contains("unknown key 'services'"));
    let bad =
        "pipelines: {t: {stages: [{name: t, services: [{name: db, bogus: 1, ready: redis-cli}]}]}}";
    let errs = check(bad, false);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("pipelines.t.stages[0].services[0].bogus: unknown key")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("pipelines.t.stages[0].services[0].ready: must be a list")),
        "{errs:?}"
    );
}
