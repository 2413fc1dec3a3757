//! `flense plan --json`: the compiled instructions and their effective values, checked
//! against every rendered-instruction expectation of the Blubber examples
//! (`fixtures/plan/examples`, copied from the spec's EXPECTATIONS.md set).

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::{flense, ok_stdout, output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plan")
}

/// `flense plan VARIANT -f fixtures/plan/FILE --json [ARGS...]`, parsed.
fn plan(file: &str, variant: &str, extra: &[&str]) -> Value {
    let root = tempfile::tempdir().unwrap();
    let text = ok_stdout(
        flense(root.path())
            .arg("plan")
            .arg(variant)
            .arg("-f")
            .arg(fixtures().join(file))
            .arg("--json")
            .args(extra),
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"))
}

fn example(path: &str, variant: &str) -> Value {
    plan(&format!("examples/{path}.blubber.yaml"), variant, &[])
}

fn stage<'a>(plan: &'a Value, variant: &str) -> &'a Value {
    plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["variant"] == variant)
        .unwrap_or_else(|| panic!("no stage {variant} in {plan:#}"))
}

fn target(plan: &Value) -> &Value {
    plan["stages"].as_array().unwrap().last().unwrap()
}

fn steps<'a>(stage: &'a Value, kind: &str) -> Vec<&'a Value> {
    stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

/// Every executed shell line of a stage (Run and RunAll), expanded.
fn effective_runs(stage: &Value) -> Vec<String> {
    stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "run" || s["kind"] == "run-all")
        .map(|s| s["effective"].as_str().unwrap().to_string())
        .collect()
}

fn run_step<'a>(stage: &'a Value, effective: &str) -> &'a Value {
    stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["effective"] == effective)
        .unwrap_or_else(|| {
            panic!(
                "no run {effective:?}; runs are {:#?}",
                effective_runs(stage)
            )
        })
}

/// `NAME=VALUE` pairs of a list of `{name, value}` objects.
fn pairs(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{}={}",
                v["name"].as_str().unwrap(),
                v["value"].as_str().unwrap()
            )
        })
        .collect()
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn copies(stage: &Value) -> Vec<&Value> {
    stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "copy" || s["kind"] == "copy-from")
        .collect()
}

fn owner(copy: &Value) -> Option<(u64, u64)> {
    let chown = &copy["chown"];
    (!chown.is_null()).then(|| {
        (
            chown["uid"].as_u64().unwrap(),
            chown["gid"].as_u64().unwrap(),
        )
    })
}

// ---- 01-basic-usage -------------------------------------------------------------------

#[test]
fn basic_copy_local_and_entrypoint() {
    let p = example(
        "acceptance/01-basic-usage/01-copy-local-and-entrypoint",
        "hello",
    );
    let image = &target(&p)["image"];
    assert_eq!(image["user"], "900");
    assert_eq!(image["entrypoint"], serde_json::json!(["./hello.sh"]));
    assert_eq!(image["working_dir"], "/srv/app");
    assert!(pairs(&image["env"]).contains(&"HOME=/home/runuser".to_string()));
    let labels = pairs(&p["labels"]);
    assert_eq!(labels[0], "blubber.variant=hello");
    assert!(labels[1].starts_with("blubber.version=flense-"));
}

#[test]
fn basic_copies_exclude_glob() {
    let p = example("acceptance/01-basic-usage/03-copies-exclude-glob", "hello");
    let c = copies(target(&p));
    assert_eq!(c.len(), 1);
    assert_eq!(strings(&c[0]["sources"]), ["."]);
    assert_eq!(c[0]["destination"], ".");
    assert_eq!(strings(&c[0]["exclude"]), ["*.md"]);
}

#[test]
fn basic_includes_inherit_base_and_copies() {
    let p = example("acceptance/01-basic-usage/04-includes", "hey");
    let t = target(&p);
    assert_eq!(t["variant"], "hey");
    assert!(t["base"].is_string());
    assert_eq!(copies(t).len(), 1);
    assert_eq!(pairs(&p["labels"])[0], "blubber.variant=hey");
}

// ---- 02-defining-the-environment ------------------------------------------------------

#[test]
fn defaults_create_users_and_own_copies() {
    let p = example(
        "acceptance/02-defining-the-environment/01-defaults",
        "hello",
    );
    let t = target(&p);
    let runs = effective_runs(t);
    assert!(runs.contains(&"(getent group \"65533\" || groupadd -o -g \"65533\" -r \"somebody\") && (getent passwd \"65533\" || useradd -l -o -m -d \"/home/somebody\" -r -g \"65533\" -u \"65533\" \"somebody\") && mkdir -p \"/srv/app\" && chown \"65533\":\"65533\" \"/srv/app\" && mkdir -p \"/opt/lib\" && chown \"65533\":\"65533\" \"/opt/lib\"".to_string()), "{runs:#?}");
    assert!(runs.contains(&"(getent group \"900\" || groupadd -o -g \"900\" -r \"runuser\") && (getent passwd \"900\" || useradd -l -o -m -d \"/home/runuser\" -r -g \"900\" -u \"900\" \"runuser\")".to_string()));
    for run in steps(t, "run-all") {
        assert_eq!(run["context"]["user"], "0", "user set-up runs as root");
    }
    let c = copies(t);
    assert_eq!(owner(c[0]), Some((65533, 65533)));
    assert_eq!(c[0]["workdir"], "/srv/app");
    assert_eq!(t["image"]["user"], "900");
    assert_eq!(t["image"]["entrypoint"], serde_json::json!(["./hello.sh"]));
}

#[test]
fn custom_lives_user_and_directory() {
    let p = example(
        "acceptance/02-defining-the-environment/02-custom-lives",
        "hello",
    );
    let t = target(&p);
    assert_eq!(t["image"]["working_dir"], "/usr/local/app");
    assert_eq!(t["image"]["user"], "900");
    let c = copies(t);
    assert_eq!(owner(c[0]), Some((1234, 1235)));
    assert_eq!(c[0]["workdir"], "/usr/local/app");
    let homes: Vec<String> = steps(t, "env")
        .iter()
        .flat_map(|e| pairs(&e["build_values"]))
        .filter(|kv| kv.starts_with("HOME="))
        .collect();
    assert!(
        homes.contains(&"HOME=/home/appowner".to_string()),
        "{homes:?}"
    );
    assert!(effective_runs(t)[0].contains(
        "useradd -l -o -m -d \"/home/appowner\" -r -g \"1235\" -u \"1234\" \"appowner\""
    ));
}

#[test]
fn custom_runs_user() {
    let p = example(
        "acceptance/02-defining-the-environment/03-custom-runs-user",
        "hello",
    );
    let t = target(&p);
    assert_eq!(t["image"]["user"], "4321");
    assert!(pairs(&t["image"]["env"]).contains(&"HOME=/home/apprunner".to_string()));
    assert!(effective_runs(t).iter().any(|r| r.contains(
        "useradd -l -o -m -d \"/home/apprunner\" -r -g \"4320\" -u \"4321\" \"apprunner\""
    )));
}

#[test]
fn runs_insecurely_stays_lives_user() {
    let p = example(
        "acceptance/02-defining-the-environment/04-runs-insecurely",
        "hello",
    );
    let t = target(&p);
    assert_eq!(t["image"]["user"], "1234");
    assert!(pairs(&t["image"]["env"]).contains(&"HOME=/home/somebody".to_string()));
    assert!(!pairs(&t["image"]["env"]).contains(&"HOME=/home/runuser".to_string()));
    assert!(effective_runs(t)
        .iter()
        .any(|r| r.contains("-u \"4321\" \"runuser\"")));
    assert_eq!(owner(copies(t)[0]), Some((1234, 65533)));
}

#[test]
fn runs_environment_reaches_image_and_later_steps() {
    let p = example(
        "acceptance/02-defining-the-environment/05-runs-environment",
        "hello",
    );
    let t = target(&p);
    let env = pairs(&t["image"]["env"]);
    assert!(env.contains(&"FOO=bar".to_string()) && env.contains(&"BAZ=qux".to_string()));
    let env_steps = steps(t, "env");
    let runs_env = env_steps
        .iter()
        .find(|e| pairs(&e["definitions"]).contains(&"FOO=bar".to_string()))
        .unwrap();
    assert_eq!(runs_env["phase"], "privilege-dropped");
    assert_eq!(
        pairs(&runs_env["definitions"]),
        ["BAZ=qux", "FOO=bar"],
        "sorted by name"
    );
}

#[test]
fn runs_in_sets_workdir_but_copies_go_to_lives_in() {
    let p = example("acceptance/02-defining-the-environment/06-runs-in", "hello");
    let t = target(&p);
    assert_eq!(t["image"]["working_dir"], "/some/other/directory");
    assert_eq!(copies(t)[0]["workdir"], "/srv/app");
    let workdirs = steps(t, "working-directory");
    assert_eq!(workdirs.last().unwrap()["phase"], "post-install");
}

// ---- 03-installing-packages -----------------------------------------------------------

#[test]
fn apt_packages_in_one_root_run() {
    let p = example("acceptance/03-installing-packages/01-apt-packages", "build");
    let t = target(&p);
    let run = run_step(
        t,
        "apt-get update && apt-get install -y \"gcc\" \"libc6-dev\" && rm -rf /var/lib/apt/lists/*",
    );
    assert_eq!(run["context"]["user"], "0");
    assert_eq!(run["phase"], "privileged");
    assert!(pairs(&t["image"]["env"]).contains(&"DEBIAN_FRONTEND=noninteractive".to_string()));
}

#[test]
fn apt_sources_and_target_release() {
    let p = example(
        "acceptance/03-installing-packages/02-apt-sources-target-release",
        "build",
    );
    let t = target(&p);
    let runs = effective_runs(t);
    let ca = runs
        .iter()
        .position(|r| r == "apt-get update && apt-get install -y \"ca-certificates\"")
        .unwrap();
    let install = runs.iter().position(|r| r == "apt-get update && apt-get install -y -t \"bullseye-wikimedia\" \"fake-libgcc-7-dev\" && rm -rf /var/lib/apt/lists/*").unwrap();
    assert!(ca < install);
    let files = steps(t, "file");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["path"], "/etc/apt/sources.list.d/99blubber.list");
    assert_eq!(files[0]["mode"], 0o644);
    assert_eq!(
        files[0]["content"],
        "deb https://apt.wikimedia.org/wikimedia bullseye-wikimedia thirdparty/amd-rocm54\n"
    );
}

#[test]
fn apt_source_signed_by_writes_keyring() {
    use sha2::{Digest, Sha256};
    let file = fixtures()
        .join("examples/acceptance/03-installing-packages/03-apt-source-signed-by.blubber.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    let p = example(
        "acceptance/03-installing-packages/03-apt-source-signed-by",
        "build",
    );
    let t = target(&p);
    let files = steps(t, "file");
    let key = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .starts_with("/etc/apt/keyrings/")
        })
        .unwrap();
    let text = key["content"].as_str().unwrap();
    assert!(
        yaml.contains(text.lines().nth(1).unwrap()),
        "key text comes from the config"
    );
    let keyring = format!(
        "/etc/apt/keyrings/{}.asc",
        hex::encode(Sha256::digest(text))
    );
    assert_eq!(key["path"], keyring.as_str());
    let list = files
        .iter()
        .find(|f| f["path"] == "/etc/apt/sources.list.d/99blubber.list")
        .unwrap();
    assert_eq!(
        list["content"],
        format!("deb [signed-by={keyring}] https://packages.microsoft.com/debian/12/prod bookworm main\n")
    );
    assert_eq!(
        t["image"]["entrypoint"],
        serde_json::json!(["dotnet", "--version"])
    );
}

// ---- 04-builders ----------------------------------------------------------------------

#[test]
fn builder_compiles_c_as_lives_user() {
    let p = example("acceptance/04-builders/01-builder-compile-c", "build");
    let t = target(&p);
    let c = copies(t);
    assert_eq!(strings(&c[0]["sources"]), ["main.c"]);
    assert_eq!(c[0]["destination"], "./");
    assert_eq!(c[0]["phase"], "pre-install");
    assert_eq!(owner(c[0]), Some((65533, 65533)));
    let run = run_step(t, "gcc -o hello main.c");
    assert_eq!(run["context"]["user"], "65533");
    assert_eq!(run["context"]["workdir"], "/srv/app");
}

#[test]
fn multiple_custom_builders_run_in_order() {
    let p = example(
        "acceptance/04-builders/02-multiple-custom-builders",
        "build",
    );
    let t = target(&p);
    let kinds: Vec<String> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "pre-install")
        .map(|s| match s["kind"].as_str().unwrap() {
            "copy" => format!("copy {:?}", strings(&s["sources"])),
            _ => s["effective"].as_str().unwrap().to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "copy [\"go.mod\", \"go.sum\"]",
            "go mod download",
            "copy [\"main.go\"]",
            "go build ."
        ]
    );
}

#[test]
fn builder_script_and_copy_into_scratch() {
    let p = example(
        "acceptance/04-builders/03-builder-script-and-copies",
        "application",
    );
    assert_eq!(p["stages"].as_array().unwrap().len(), 2);
    let build = stage(&p, "build");
    let script = steps(build, "run-script");
    assert_eq!(script.len(), 1);
    let text = script[0]["script"].as_str().unwrap();
    assert!(text.starts_with("#!/bin/bash\n"));
    assert!(
        text.contains("\"$CGO_ENABLED\"") && text.contains("$(go list)"),
        "not expanded"
    );
    assert_eq!(script[0]["context"]["user"], "65533");
    assert!(pairs(&script[0]["context"]["env"]).contains(&"CGO_ENABLED=0".to_string()));
    let app = target(&p);
    assert_eq!(app["base"], Value::Null);
    assert_eq!(strings(&app["depends_on_variants"]), ["build"]);
    let c = copies(app);
    assert_eq!(c[0]["kind"], "copy-from");
    assert_eq!(
        c[0]["from"],
        serde_json::json!({"kind": "variant", "name": "build"})
    );
    assert_eq!(strings(&c[0]["sources"]), ["./hello-world-go"]);
    assert_eq!(c[0]["source_workdir"], "/srv/app");
    assert_eq!(c[0]["destination"], "/hello");
    assert_eq!(owner(c[0]), None, "scratch copies keep source ownership");
    assert!(steps(app, "user").is_empty());
}

#[test]
fn requirements_without_source_copy_the_whole_context() {
    let p = example("acceptance/04-builders/04-requirements-exclude", "build");
    let c = copies(target(&p));
    assert_eq!(strings(&c[0]["sources"]), ["./"]);
    assert_eq!(c[0]["destination"], "./");
    assert_eq!(strings(&c[0]["exclude"]), ["*.md"]);
}

#[test]
fn builder_caches_expand_destination_and_belong_to_lives_user() {
    let p = example("acceptance/04-builders/05-builder-caches", "build");
    let t = target(&p);
    let go_build = run_step(t, "go build .");
    let cache = &go_build["context"]["caches"][0];
    assert_eq!(
        cache["destination"], "/var/cache/go",
        "from runs.environment"
    );
    assert_eq!(cache["id"], "/var/cache/go");
    assert_eq!(cache["access"], "shared");
    assert_eq!(cache["owner"], serde_json::json!([65533, 65533]));
    // ${GOPATH} comes from the base image, unknown without it: kept for the executor.
    let download = run_step(t, "go mod download");
    assert_eq!(
        download["context"]["caches"][0]["destination"],
        "${GOPATH}/pkg"
    );
}

#[test]
fn builder_mounts_from_another_variant() {
    let p = example(
        "acceptance/04-builders/06-builder-mounts-from-variant",
        "webserver",
    );
    let order: Vec<&str> = p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["variant"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["assets", "build", "webserver"]);
    let build = stage(&p, "build");
    assert_eq!(strings(&build["depends_on_variants"]), ["assets"]);
    let run = run_step(build, "go build");
    assert_eq!(
        run["context"]["mounts"][0],
        serde_json::json!({"from": {"kind": "variant", "name": "assets"}, "source": "/src/dist", "destination": "./dist"})
    );
    let assets = stage(&p, "assets");
    let c = copies(assets);
    // `./src/` is a directory: it keeps its own destination, so it is a separate copy.
    assert_eq!(strings(&c[1]["sources"]), ["webpack.config.js"]);
    assert_eq!(c[1]["destination"], "./");
    assert_eq!(strings(&c[2]["sources"]), ["src/"]);
    assert_eq!(c[2]["destination"], "./src/");
    assert_eq!(
        target(&p)["image"]["entrypoint"],
        serde_json::json!(["/usr/bin/web-app"])
    );
}

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

// ---- CLI ------------------------------------------------------------------------------

#[test]
fn text_plan_shows_effective_commands() {
    let root = tempfile::tempdir().unwrap();
    let text = ok_stdout(
        flense(root.path())
            .arg("plan")
            .arg("make")
            .arg("-f")
            .arg(fixtures().join("build-arguments.blubber.yaml"))
            .args(["--build-arg", "MAKE_TARGET=bar"]),
    );
    assert!(text.contains("stage make (from debian:stable)"), "{text}");
    assert!(text.contains("-> as 65533 in /srv/app: make bar"), "{text}");
}

#[test]
fn plan_of_invalid_config_exits_2() {
    let root = tempfile::tempdir().unwrap();
    let out = output(
        flense(root.path())
            .arg("plan")
            .arg("build")
            .arg("-f")
            .arg(fixtures().join("examples/derived/10-command-then-script-conflict.blubber.yaml"))
            .arg("--json"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not allowed if any of field(s)"));
}
