use super::*;
use crate::pipeline::graph::Graph;

fn y(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

fn graph() -> Graph {
    Graph::from_arcs(&[vec!["a", "b", "c", "d", "e", "f"], vec!["x", "d", "y", "f"]])
}

fn bindings() -> Bindings {
    let mut b = Bindings::default();
    b.bind("a", "foo", y("afoo")).unwrap();
    b.bind("a", "bar", y("abar")).unwrap();
    b.bind("b", "foo", y("bfoo")).unwrap();
    b.bind("x", "bar", y("xbar")).unwrap();
    b
}

#[test]
fn ancestor_only_visibility() {
    let (b, g) = (bindings(), graph());
    let c = scope_for(&b, &g, "c");
    assert_eq!(
        c.interpolate_str("${a.foo} ${a.bar} ${b.foo}").unwrap(),
        "afoo abar bfoo"
    );
    let err = c.interpolate_str("${x.bar}").unwrap_err().to_string();
    assert!(
        err.starts_with(
            "cannot access 'x.*' values since 'c' does not follow it in the graph 'digraph {"
        ),
        "{err}"
    );
    let err = c.interpolate_str("${.baz}").unwrap_err().to_string();
    assert!(
        err.starts_with("no value bound for 'c.baz'; all available variables are: ["),
        "{err}"
    );
    let e = scope_for(&b, &g, "e");
    assert_eq!(e.interpolate_str("${x.bar}").unwrap(), "xbar");
}

#[test]
fn self_scope_and_self_name() {
    let (b, g) = (bindings(), graph());
    let s = scope_for(&b, &g, "b");
    assert_eq!(
        s.interpolate_str("w-t-${a.foo} ${.foo}").unwrap(),
        "w-t-afoo bfoo"
    );
    assert!(matches!(
        s.interpolate_str("${b.foo}"),
        Err(PipelineError::AncestorNotFound { .. })
    ));
    assert!(matches!(
        s.interpolate_str("w-t-${.bar}"),
        Err(PipelineError::NameNotFound { .. })
    ));
    let x = scope_for(&b, &g, "x");
    assert!(matches!(
        x.interpolate_str("w-t-${b.bar}"),
        Err(PipelineError::AncestorNotFound { .. })
    ));
}

#[test]
fn immutability() {
    let mut b = bindings();
    let err = b.bind("a", "foo", y("other")).unwrap_err();
    assert!(matches!(err, PipelineError::NameAlreadyBound { .. }));
    assert_eq!(b.namespace("a")["foo"], y("afoo"));
    assert_eq!(b.all_keys()[0], "a.bar");
}

#[test]
fn dashes_passthrough_and_dotless() {
    let mut b = Bindings::default();
    b.bind("a-stage", "foo-value", y("v")).unwrap();
    b.bind("n", "stage", y("n")).unwrap();
    let g = Graph::from_arcs(&[vec!["a-stage", "n"]]);
    let s = scope_for(&b, &g, "n");
    assert_eq!(s.interpolate_str("${a-stage.foo-value}").unwrap(), "v");
    assert_eq!(s.interpolate(&y("true")).unwrap(), y("true"));
    assert_eq!(s.interpolate(&y("3")).unwrap(), y("3"));
    assert_eq!(
        s.interpolate_str("this is ${FOO} ${bar}.").unwrap(),
        "this is ${FOO} ${bar}."
    );
    assert_eq!(s.interpolate_str("${stage}").unwrap(), "n");
}

#[test]
fn defaults_and_falsy() {
    let mut b = Bindings::default();
    b.bind("a", "foo", y("''")).unwrap();
    b.bind("a", "zero", y("0")).unwrap();
    let g = Graph::from_arcs(&[vec!["a"]]);
    let s = scope_for(&b, &g, "a");
    assert_eq!(
        s.interpolate_str("${.foo|default value}").unwrap(),
        "default value"
    );
    assert_eq!(s.interpolate_str("${.nonexistent|}").unwrap(), "");
    assert_eq!(s.interpolate_str("${.zero}").unwrap(), "");
    assert_eq!(s.interpolate_str("${.zero|z}").unwrap(), "z");
}

#[test]
fn nested_comprehension() {
    let mut b = Bindings::default();
    b.bind("b", "bar", y("bbar")).unwrap();
    let g = Graph::from_arcs(&[vec!["b"]]);
    let s = scope_for(&b, &g, "b");
    let expr = y(
        r#"{$each: bar, $in: "foo1\nfoo2\nfoo3\n", $yield: {fat: '${.bar}', bat: '${b.bar}', cat: {$each: char, $in: '${.bar}', $delimiter: 'o'}}}"#,
    );
    let got = s.interpolate(&expr).unwrap();
    let want = y("[{fat: foo1, bat: bbar, cat: [f, '1']}, {fat: foo2, bat: bbar, cat: [f, '2']}, {fat: foo3, bat: bbar, cat: [f, '3']}]");
    assert_eq!(got, want);
}

#[test]
fn destructuring_and_delimiter_set() {
    let s = scope_for(&Bindings::default(), &Graph::from_arcs(&[vec!["a"]]), "a");
    let got = s.interpolate(&y("{$each: [a, b], $in: 'foo1 foo2,foo3 foo4', $delimiter: ',', $yield: {a: '${.a}', b: '${.b}'}}")).unwrap();
    assert_eq!(got, y("[{a: foo1, b: foo2}, {a: foo3, b: foo4}]"));
    let got = s
        .interpolate(&y("{$each: x, $in: 'a, b,,c', $delimiter: ', '}"))
        .unwrap();
    assert_eq!(got, y("[a, b, c]"));
    let err = s
        .interpolate(&y("{$each: [a, b], $in: 'one'}"))
        .unwrap_err();
    assert!(matches!(err, PipelineError::InsufficientInput { .. }));
    assert_eq!(s.interpolate(&y("{$each: x}")).unwrap(), y("[]"));
    assert_eq!(
        s.interpolate(&y("{$each: x, $in: [1, 2]}")).unwrap(),
        y("['1', '2']")
    );
}

#[test]
fn merge_and_map_keys() {
    let mut b = Bindings::default();
    b.bind("a", "foo", y("bar")).unwrap();
    let s = scope_for(&b, &Graph::from_arcs(&[vec!["a"]]), "a");
    assert_eq!(
        s.interpolate(&y("{$merge: [a, b, c], $with: [c, 'd-${.foo}']}"))
            .unwrap(),
        y("[a, b, c, c, d-bar]")
    );
    assert_eq!(
        s.interpolate(&y("{$merge: {k: 1, j: 2}, $with: {j: 3}}"))
            .unwrap(),
        y("{k: 1, j: 3}")
    );
    assert_eq!(
        s.interpolate(&y("{$merge: 'foo', $with: 'bar'}")).unwrap(),
        y("foobar")
    );
    assert_eq!(
        s.interpolate(&y("{'key-${.foo}': 'value-${.foo}'}"))
            .unwrap(),
        y("{key-bar: value-bar}")
    );
    assert!(s.interpolate(&y("{$merge: 'a', $with: [b]}")).is_err());
}

#[test]
fn get_all_across_namespaces() {
    let mut b = Bindings::default();
    for ns in ["a", "c", "y"] {
        b.bind(ns, "foo", y(&format!("{ns}foo"))).unwrap();
    }
    let all = b.get_all("foo");
    assert_eq!(all.len(), 3);
    assert_eq!(all["y"], y("yfoo"));
}

#[test]
fn params_key_has_a_dot() {
    let mut b = Bindings::default();
    b.bind("setup", "params.FOO", y("v")).unwrap();
    let g = Graph::from_arcs(&[vec!["setup", "s"]]);
    assert_eq!(
        scope_for(&b, &g, "s")
            .interpolate_str("${setup.params.FOO}")
            .unwrap(),
        "v"
    );
}

#[test]
fn env_expansion_is_controlled() {
    let vars: BTreeMap<String, String> = [("ZUUL_BRANCH".to_string(), "main".to_string())].into();
    let (out, missing) = expand_env("${ZUUL_BRANCH}-$ZUUL_BRANCH-$NOPE `x` \\ $1 $", &vars);
    assert_eq!(out, "main-main- `x` \\ $1 $");
    assert_eq!(missing, vec!["NOPE"]);
}
