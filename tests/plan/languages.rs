//! Examples 05–08 and 99: scratch copies, python, node, build arguments, labels.

use serde_json::Value;

use super::*;

// ---- 05 / 06 / 07 / 08 / 99 -----------------------------------------------------------

#[test]
fn copies_from_variant_into_scratch() {
    let p = example(
        "acceptance/05-copying-from-other-variants/01-copies-from-variant-to-scratch",
        "production",
    );
    let t = target(&p);
    assert_eq!(t["image"]["working_dir"], "/");
    assert_eq!(
        pairs(&t["image"]["env"]),
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
    assert_eq!(t["image"]["user"], Value::Null);
}

fn python_runs(name: &str) -> Vec<String> {
    let p = example(&format!("acceptance/06-python-builder/{name}"), "hello");
    effective_runs(target(&p))
}

#[test]
fn python_requirements_sequence() {
    let p = example(
        "acceptance/06-python-builder/01-python-requirements",
        "hello",
    );
    let t = target(&p);
    let pre: Vec<String> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "pre-install")
        .map(|s| match s["kind"].as_str().unwrap() {
            "copy" => format!("COPY {:?}", strings(&s["sources"])),
            "env" => format!("ENV {:?}", pairs(&s["build_values"])),
            _ => s["effective"].as_str().unwrap().to_string(),
        })
        .collect();
    assert_eq!(
        pre,
        [
            "COPY [\"requirements.txt\"]",
            "python3 \"-m\" \"venv\" \"/opt/lib/venv\"",
            // The base image PATH is not known to `flense plan`: kept for the executor.
            "ENV [\"PATH=/opt/lib/venv/bin:$PATH\", \"VIRTUAL_ENV=/opt/lib/venv\"]",
            "python3 \"-m\" \"pip\" \"install\" \"-U\" \"setuptools!=60.9.0\" && python3 \"-m\" \"pip\" \"install\" \"-U\" \"wheel\" \"tox\" \"pip\"",
            "python3 \"-m\" \"pip\" \"install\" \"-r\" \"requirements.txt\"",
        ]
    );
}

#[test]
fn python_system_site_packages() {
    let runs = python_runs("02-python-system-site-packages");
    assert!(
        runs.contains(
            &"python3 \"-m\" \"venv\" \"/opt/lib/venv\" \"--system-site-packages\"".to_string()
        ),
        "{runs:#?}"
    );
}

#[test]
fn python_core_package_versions() {
    let runs = python_runs("03-python-core-package-versions");
    assert!(runs.contains(&"python3 \"-m\" \"pip\" \"install\" \"-U\" \"setuptools~=81.0\" && python3 \"-m\" \"pip\" \"install\" \"-U\" \"wheel~=0.46.3\" \"tox==4.49.1\" \"pip~=26.0\"".to_string()), "{runs:#?}");
}

#[test]
fn python_poetry_variants() {
    let runs = python_runs("04-python-poetry1");
    let tail = &runs[runs.len() - 3..];
    assert_eq!(
        tail,
        [
            "python3 \"-m\" \"pip\" \"install\" \"-U\" \"poetry==1.5.1\"",
            "mkdir -p \"/opt/lib/poetry\"",
            "poetry \"install\" \"--no-root\" \"--no-dev\""
        ]
    );
    assert_eq!(
        python_runs("05-python-poetry2-only").last().unwrap(),
        "poetry \"install\" \"--no-root\" \"--only\" \"main\""
    );
    assert_eq!(
        python_runs("06-python-poetry2-without").last().unwrap(),
        "poetry \"install\" \"--no-root\" \"--without\" \"dev\""
    );
}

#[test]
fn node_requirements_then_npm_install_as_lives_user() {
    let p = example("acceptance/07-node-builder/01-node-requirements", "hello");
    let t = target(&p);
    let c = copies(t);
    assert_eq!(
        strings(&c[0]["sources"]),
        ["package.json", "package-lock.json"]
    );
    assert_eq!(c[0]["destination"], "./");
    let npm = run_step(t, "npm install");
    assert_eq!(npm["context"]["user"], "65533");
    assert_eq!(npm["context"]["workdir"], "/srv/app");
    assert!(pairs(&npm["context"]["env"]).contains(&"HOME=/home/somebody".to_string()));
    assert!(pairs(&t["image"]["env"]).contains(&"NODE_ENV=".to_string()));
}

#[test]
fn build_argument_overrides_default_at_build_time_only() {
    let p = plan(
        "examples/acceptance/08-build-arguments/01-arguments-make-target.blubber.yaml",
        "make",
        &["--build-arg", "MAKE_TARGET=bar"],
    );
    let t = target(&p);
    let run = run_step(t, "make bar");
    assert_eq!(run["context"]["user"], "65533");
    assert_eq!(run["context"]["workdir"], "/srv/app");
    assert!(pairs(&run["context"]["env"]).contains(&"MAKE_TARGET=bar".to_string()));
    assert!(!pairs(&t["image"]["env"])
        .iter()
        .any(|kv| kv.starts_with("MAKE_TARGET=")));
    assert_eq!(pairs(&t["build_args"])[0], "MAKE_TARGET=bar");
    let default = plan(
        "examples/acceptance/08-build-arguments/01-arguments-make-target.blubber.yaml",
        "make",
        &[],
    );
    run_step(target(&default), "make foo");
}

#[test]
fn proxy_build_args_go_to_every_exec_and_uid_args_change_owners() {
    let p = plan(
        "defaults.blubber.yaml",
        "hello",
        &[
            "--build-arg",
            "https_proxy=http://proxy:3128",
            "--build-arg",
            "RUNS_UID=1000",
            "--build-arg",
            "UNDECLARED=x",
        ],
    );
    assert_eq!(pairs(&p["proxy_env"]), ["https_proxy=http://proxy:3128"]);
    let t = target(&p);
    assert_eq!(t["image"]["user"], "1000");
    assert!(!format!("{t}").contains("UNDECLARED"));
}

#[test]
fn label_on_base_less_variant() {
    let p = example("acceptance/99-minutiae/01-label-version", "hello");
    let labels = pairs(&p["labels"]);
    assert_eq!(labels[0], "blubber.variant=hello");
    assert!(labels[1].starts_with("blubber.version="));
    assert_eq!(pairs(&target(&p)["image"]["labels"]), labels);
}
