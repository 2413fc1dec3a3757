//! Registry auth with a real `docker-registry` behind htpasswd Basic auth or Bearer
//! tokens: credentials from a docker config file (`auths` with base64 `auth`,
//! `registrytoken`, `identitytoken`), from `REGISTRY_AUTH_FILE` and from
//! `$DOCKER_AUTH_CONFIG`; wrong or missing credentials fail clearly and never print the
//! secret.

mod support;

use std::path::Path;

use base64::Engine;
use support::cli::{flense, ok_output, output};
use support::registry::{simple_image, TestRegistry, TokenServer};

const USER: &str = "flense-ci";
const PASSWORD: &str = "Corr3ct-Horse-Battery";

fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
}

/// `flense` with credentials only from `docker_dir` (no other auth sources).
fn flense_with(root: &Path, docker_dir: &Path) -> std::process::Command {
    let mut cmd = flense(root);
    cmd.env("DOCKER_CONFIG", docker_dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_AUTH_CONFIG")
        .env_remove("XDG_RUNTIME_DIR");
    cmd
}

fn setup() -> (TestRegistry, tempfile::TempDir, String) {
    let reg = TestRegistry::start_with_auth(USER, PASSWORD);
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "private/busybox:v1", &[]);
    (reg, tmp, image.digest)
}

#[test]
fn docker_config_credentials_pull_and_push() {
    let (reg, tmp, digest) = setup();
    let docker = tmp.path().join("docker");
    docker_config(&docker, &reg.addr, USER, PASSWORD);
    let root = tmp.path().join("store");
    let out = ok_output(
        flense_with(&root, &docker)
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);

    ok_output(
        flense_with(&root, &docker)
            .arg("push")
            .arg(reg.image("private/busybox:v1"))
            .arg(reg.image("private/copy:v1")),
    );
    assert_eq!(
        support::registry::sha256(&reg.raw_manifest("private/copy:v1")),
        digest
    );
}

#[test]
fn registry_auth_file_is_read_first() {
    let (reg, tmp, digest) = setup();
    let podman = tmp.path().join("podman");
    docker_config(&podman, &reg.addr, USER, PASSWORD);
    let docker = tmp.path().join("docker");
    docker_config(&docker, &reg.addr, USER, "stale-password");
    let root = tmp.path().join("store");
    let out = ok_output(
        flense_with(&root, &docker)
            .env("REGISTRY_AUTH_FILE", podman.join("config.json"))
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
}

#[test]
fn wrong_password_fails_clearly_without_printing_it() {
    let (reg, tmp, _) = setup();
    let wrong = "Wr0ng-Secret-Value";
    let good = tmp.path().join("good");
    docker_config(&good, &reg.addr, USER, PASSWORD);
    let docker = tmp.path().join("docker");
    docker_config(&docker, &reg.addr, USER, wrong);
    let root = tmp.path().join("store");
    let pulled = output(
        flense_with(&root, &good)
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert!(pulled.status.success());
    for args in [
        vec!["pull".to_string(), reg.image("private/busybox:v1")],
        vec![
            "push".to_string(),
            reg.image("private/busybox:v1"),
            reg.image("private/other:v1"),
        ],
    ] {
        let out = output(flense_with(&root, &docker).args(&args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains(wrong), "secret printed: {err}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{wrong}"));
        assert!(!err.contains(&encoded), "encoded secret printed: {err}");
        assert!(err.contains(&reg.addr), "{err}");
        assert!(err.contains("authentication failed"), "{err}");
        assert!(err.contains("credentials were rejected"), "{err}");
    }
}

#[test]
fn missing_credentials_say_where_they_were_looked_for() {
    let (reg, tmp, _) = setup();
    let root = tmp.path().join("store");
    let out = output(
        flense_with(&root, &tmp.path().join("no-docker-config"))
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no credentials found"), "{err}");
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn bearer_token_with_repository_scope() {
    let tokens = TokenServer::start(USER, PASSWORD);
    let reg = TestRegistry::start_with_tokens(&tokens);
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "private/busybox:v1", &[]);
    tokens.scopes.lock().unwrap().clear();

    let docker = tmp.path().join("docker");
    docker_config(&docker, &reg.addr, USER, PASSWORD);
    let root = tmp.path().join("store");
    let out = ok_output(
        flense_with(&root, &docker)
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), image.digest);
    assert!(
        tokens
            .scopes
            .lock()
            .unwrap()
            .contains(&"repository:private/busybox:pull".to_string()),
        "{:?}",
        tokens.scopes
    );

    // Push into another repository: a pull,push token for it, plus pull on the source
    // repository for the cross-repository mount.
    let out = ok_output(
        flense_with(&root, &docker)
            .arg("push")
            .arg(reg.image("private/busybox:v1"))
            .arg(reg.image("team/app:1")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mounted"), "{stderr}");
    let scopes = tokens.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:team/app:pull,push".to_string()),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&"repository:private/busybox:pull".to_string()),
        "{scopes:?}"
    );
    assert_eq!(
        support::registry::sha256(&reg.raw_manifest("team/app:1")),
        image.digest
    );

    // Wrong password: the token server says no, the secret stays out of the message.
    let wrong = tmp.path().join("wrong");
    docker_config(&wrong, &reg.addr, USER, "Not-The-Password");
    let out = output(
        flense_with(&tmp.path().join("store2"), &wrong)
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("authentication failed") && !err.contains("Not-The-Password"),
        "{err}"
    );
}

#[test]
fn credential_helper_from_cred_helpers() {
    let (reg, tmp, digest) = setup();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-flensetest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\nif [ \"$1\" = get ] && [ \"$server\" = \"{}\" ]; then\n\
             echo '{{\"ServerURL\":\"{}\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
            reg.addr, reg.addr
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"flensetest"}}}}"#, reg.addr),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let root = tmp.path().join("store");
    let out = ok_output(
        flense_with(&root, &docker)
            .env("PATH", &path)
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);

    // credsStore for everything: the helper has nothing for this registry, so the pull
    // is anonymous and refused with a clear message.
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"flensetest"}"#).unwrap();
    let other = TestRegistry::start_with_auth(USER, PASSWORD);
    let out = output(
        flense_with(&root, &docker)
            .env("PATH", &path)
            .arg("pull")
            .arg(other.image("private/busybox:v1")),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no credentials found"), "{err}");
}

/// The output of a command as one text (stdout and stderr).
fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_auths(dir: &Path, registry: &str, entry: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"auths":{{"{registry}":{entry}}}}}"#),
    )
    .unwrap();
}

/// A registry behind the token server, holding `private/busybox:v1`.
fn token_registry() -> (
    TokenServer,
    TestRegistry,
    tempfile::TempDir,
    support::registry::TestImage,
) {
    let tokens = TokenServer::start(USER, PASSWORD);
    let reg = TestRegistry::start_with_tokens(&tokens);
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "private/busybox:v1", &[]);
    (tokens, reg, tmp, image)
}

#[test]
fn registrytoken_is_sent_as_the_bearer_token_and_never_printed() {
    let (tokens, reg, tmp, image) = token_registry();
    // No request to the token server: the token is the registry's Bearer token.
    let jwt = tokens.issue(&[
        "repository:private/busybox:pull",
        "repository:team/app:pull,push",
    ]);
    let docker = tmp.path().join("registrytoken");
    write_auths(
        &docker,
        &reg.addr,
        &format!(r#"{{"registrytoken":"{jwt}"}}"#),
    );
    tokens.scopes.lock().unwrap().clear();
    let root = tmp.path().join("store");
    let pull = ok_output(
        flense_with(&root, &docker)
            .arg("-vv")
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    let push = ok_output(
        flense_with(&root, &docker)
            .arg("-vv")
            .arg("push")
            .arg(reg.image("private/busybox:v1"))
            .arg(reg.image("team/app:1")),
    );
    assert!(tokens.scopes.lock().unwrap().is_empty());
    let secret_part = &jwt[jwt.len() - 20..];
    for out in [&pull, &push] {
        assert!(
            !all_output(out).contains(secret_part),
            "{}",
            all_output(out)
        );
    }
    assert_eq!(
        support::registry::sha256(&reg.raw_manifest("team/app:1")),
        image.digest
    );
    // A token without the push scope is refused, and not printed.
    let pull_only = tokens.issue(&["repository:private/busybox:pull"]);
    write_auths(
        &docker,
        &reg.addr,
        &format!(r#"{{"registrytoken":"{pull_only}"}}"#),
    );
    let out = output(
        flense_with(&root, &docker)
            .arg("-vv")
            .arg("push")
            .arg(reg.image("private/busybox:v1"))
            .arg(reg.image("team/other:1")),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = all_output(&out);
    assert!(text.contains("credentials were rejected"), "{text}");
    assert!(!text.contains(&pull_only[pull_only.len() - 20..]), "{text}");
}

#[test]
fn identitytoken_is_exchanged_with_a_refresh_token_grant() {
    let (tokens, reg, tmp, image) = token_registry();
    let docker = tmp.path().join("identitytoken");
    let refresh = tokens.refresh_token.clone();
    write_auths(
        &docker,
        &reg.addr,
        &format!(r#"{{"identitytoken":"{refresh}"}}"#),
    );
    let out = ok_output(
        flense_with(&tmp.path().join("store"), &docker)
            .arg("-vv")
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&image.digest));
    assert!(tokens.refreshes.load(std::sync::atomic::Ordering::SeqCst) > 0);
    assert!(!all_output(&out).contains(&refresh), "{}", all_output(&out));
}

#[test]
fn docker_auth_config_comes_before_the_docker_config_file() {
    let (_tokens, reg, tmp, _image) = token_registry();
    // The docker config file holds a wrong password; $DOCKER_AUTH_CONFIG (JSON content,
    // as GitLab runners set it) the right one.
    let docker = tmp.path().join("wrong");
    docker_config(&docker, &reg.addr, USER, "Not-The-Password");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let content = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr);
    let out = ok_output(
        flense_with(&tmp.path().join("store"), &docker)
            .env("DOCKER_AUTH_CONFIG", &content)
            .arg("-vv")
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert!(!all_output(&out).contains(PASSWORD));
    // Not JSON: the error names the variable, never its content.
    let out = output(
        flense_with(&tmp.path().join("store2"), &docker)
            .env("DOCKER_AUTH_CONFIG", format!("auth={PASSWORD}"))
            .arg("pull")
            .arg(reg.image("private/busybox:v1")),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = all_output(&out);
    assert!(
        text.contains("$DOCKER_AUTH_CONFIG: not a valid JSON docker config"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
}
