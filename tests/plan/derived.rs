//! The derived edge cases (outcomes read from the Blubber v1.8.0 source).

use serde_json::Value;

use super::*;

// ---- derived --------------------------------------------------------------------------

#[test]
fn scratch_ignores_common_config() {
    let p = example("derived/01-scratch-ignores-common-config", "tiny");
    let t = target(&p);
    let kinds: Vec<&str> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["base", "copy", "entry-point"]);
    assert_eq!(owner(copies(t)[0]), None);
    assert_eq!(copies(t)[0]["workdir"], "/");
    assert_eq!(t["image"]["user"], Value::Null);
}

#[test]
fn null_base_does_not_clear_inherited_base() {
    let p = example("derived/02-null-base-does-not-clear-top-level", "prod");
    assert_eq!(target(&p)["base"], "debian:bookworm");
}

#[test]
fn commands_are_expanded_at_compile_time_but_scripts_are_not() {
    let p = example("derived/04-command-compile-time-expansion", "build");
    let t = target(&p);
    // `$t` is not a variable the plan knows; it could still come from the base image,
    // so `flense plan` keeps it for the executor, which expands it to "" like Blubber
    // once the base image Env is known (see the library test with a base env).
    run_step(t, "for t in a b; do echo hello $t; done");
    run_step(t, "echo \"/home/somebody\" \"hello\"");
    let script = steps(t, "run-script")[0]["script"].as_str().unwrap();
    assert_eq!(
        script,
        "#!/bin/sh\nfor t in a b; do echo $GREETING $t; done\n"
    );
}

#[test]
fn requirement_directories_and_trailing_slashes() {
    let p = example("derived/05-requirements-dir-trailing-slash", "build");
    let got: Vec<(Vec<String>, String)> = copies(target(&p))
        .iter()
        .map(|c| {
            (
                strings(&c["sources"]),
                c["destination"].as_str().unwrap().to_string(),
            )
        })
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
fn percent_in_commands_is_literal() {
    let p = example("derived/07-percent-in-string-command", "build");
    let t = target(&p);
    run_step(t, "date \"+%Y\"");
    run_step(t, "date +%Y");
}

#[test]
fn empty_entrypoint_keeps_the_base_image_entrypoint() {
    let a = plan("empty-entrypoint.blubber.yaml", "first", &[]);
    assert_eq!(
        target(&a)["image"]["entrypoint"],
        serde_json::json!(["/usr/bin/top-level"])
    );
    let b = plan("empty-entrypoint.blubber.yaml", "second", &[]);
    assert_eq!(target(&b)["image"]["entrypoint"], Value::Null);
    assert!(steps(target(&b), "entry-point").is_empty());
}

#[test]
fn copies_shorthand_uses_the_copying_variants_lives_in() {
    let p = example("derived/12-copies-shorthand-variant", "production");
    let got: Vec<(Vec<String>, String)> = copies(target(&p))
        .iter()
        .map(|c| {
            (
                strings(&c["sources"]),
                c["destination"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (vec!["/app".to_string()], "/app".to_string()),
            (vec!["/opt/lib".to_string()], "/opt/lib".to_string()),
        ]
    );
    assert_eq!(stage(&p, "build")["image"]["working_dir"], "/src");
}
