//! Examples 01–03: basic usage, users and environment, apt.

use super::*;

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
