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
