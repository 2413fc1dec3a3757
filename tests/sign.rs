//! Signing and verification through the CLI (docs/signing.md): `key generate`,
//! `push --sign-by`, `verify --key` and `pull --verify-key`, against a real registry,
//! with skopeo (containers/image) reading and copying the signatures and OpenSSL
//! checking the cryptography independently.
//!
//! Debian bookworm's skopeo and podman are built with sigstore signing and verification
//! disabled ("Debian-local change: sigstore disabled"), but they still locate, read and
//! copy sigstore attachments; the interop checks use what they can do and go further
//! where the installed skopeo can verify.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::cli::{flense, ok_output, ok_stdout, output};
use support::fixtures::import_fixture;
use support::registry::TestRegistry;

const PASSWORD: &str = "correct horse battery staple";

/// A registry holding the busybox fixture as `app:1` (signed by `key`) and `unsigned:1`.
struct Signed {
    reg: TestRegistry,
    tmp: tempfile::TempDir,
    root: PathBuf,
    local: String,
    /// Prefix of the signing key pair (`.key`, `.pub`).
    key: PathBuf,
    digest: String,
}

impl Signed {
    fn new() -> Self {
        let reg = TestRegistry::start();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("store");
        let local = import_fixture(&root, "busybox");
        let key = tmp.path().join("signer");
        generate_key(&root, &key);
        let mut setup = Self {
            reg,
            tmp,
            root,
            local,
            key,
            digest: String::new(),
        };
        setup.digest = setup.push("app:1", Some(&setup.key.clone()));
        assert_eq!(setup.push("unsigned:1", None), setup.digest);
        setup
    }

    /// `flense push` of the fixture to `repo_and_tag`, signed with `key` when given.
    fn push(&self, repo_and_tag: &str, key: Option<&Path>) -> String {
        let mut cmd = flense(&self.root);
        cmd.env("FLENSE_KEY_PASSWORD", PASSWORD)
            .arg("push")
            .arg(&self.local)
            .arg(self.reg.image(repo_and_tag));
        if let Some(key) = key {
            cmd.arg("--sign-by").arg(with_ext(key, "key"));
        }
        ok_stdout(&mut cmd).trim().to_string()
    }

    fn verify(&self, repo_and_tag: &str, key: &Path) -> Output {
        output(
            flense(&self.root)
                .arg("verify")
                .arg(self.reg.image(repo_and_tag))
                .arg("--key")
                .arg(key),
        )
    }

    /// The registries.d directory that makes containers/image use sigstore attachments
    /// for this registry.
    fn registries_d(&self) -> PathBuf {
        let dir = self.tmp.path().join("registries.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("flense-test.yaml"),
            format!(
                "docker:\n  {}:\n    use-sigstore-attachments: true\n",
                self.reg.addr
            ),
        )
        .unwrap();
        dir
    }

    /// A containers policy.json that requires sigstore signatures by `public_key` for
    /// this registry (and accepts anything when `public_key` is `None`).
    fn policy(&self, public_key: Option<&Path>) -> PathBuf {
        let requirement = match public_key {
            Some(key) => serde_json::json!([{
                "type": "sigstoreSigned",
                "keyPath": key,
                "signedIdentity": {"type": "matchRepoDigestOrExact"},
            }]),
            None => serde_json::json!([{"type": "insecureAcceptAnything"}]),
        };
        let policy = serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {&self.reg.addr: requirement}},
        });
        let path = self.tmp.path().join(format!(
            "policy-{}.json",
            public_key.map_or("any".into(), |k| k.display().to_string().replace('/', "_"))
        ));
        std::fs::write(&path, policy.to_string()).unwrap();
        path
    }

    /// `skopeo copy` from this registry to `dest` under `policy`, with sigstore attachments.
    fn skopeo_copy(&self, policy: &Path, repo_and_tag: &str, dest: &str) -> Output {
        let mut cmd = Command::new("skopeo");
        cmd.arg("--policy")
            .arg(policy)
            .arg("--registries.d")
            .arg(self.registries_d())
            .args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg(format!("docker://{}", self.reg.image(repo_and_tag)))
            .arg(dest);
        output(&mut cmd)
    }

    /// The signature manifest's tag for the pushed digest.
    fn sig_tag(&self) -> String {
        format!("{}.sig", self.digest.replacen(':', "-", 1))
    }
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}.{ext}", prefix.display()))
}

fn generate_key(root: &Path, prefix: &Path) {
    ok_output(
        flense(root)
            .env("FLENSE_KEY_PASSWORD", PASSWORD)
            .args(["key", "generate"])
            .arg(prefix),
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn containers_image_finds_reads_and_copies_flense_signatures() {
    let s = Signed::new();
    let public = with_ext(&s.key, "pub");
    let policy = s.policy(Some(&public));
    let out_dir = s.tmp.path().join("out");
    let unsigned = s.skopeo_copy(
        &policy,
        "unsigned:1",
        &format!("oci:{}:u", out_dir.display()),
    );
    assert!(!unsigned.status.success(), "unsigned image accepted");
    assert!(
        stderr(&unsigned).contains("no signature exists"),
        "{}",
        stderr(&unsigned)
    );
    let signed = s.skopeo_copy(&policy, "app:1", &format!("oci:{}:s", out_dir.display()));
    let sigstore_enabled = signed.status.success();
    if !sigstore_enabled {
        // Debian's build: it found flense's signature and stops only at checking it.
        assert!(
            stderr(&signed).contains("sigstore disabled"),
            "{}",
            stderr(&signed)
        );
    } else {
        let other = s.tmp.path().join("other");
        generate_key(&s.root, &other);
        let wrong = s.policy(Some(&with_ext(&other, "pub")));
        let refused = s.skopeo_copy(&wrong, "app:1", &format!("oci:{}:w", out_dir.display()));
        assert!(
            !refused.status.success(),
            "signature by another key accepted"
        );
    }

    // skopeo copies the signatures (parsing flense's layers, writing its own manifest);
    // they are for app:1, so they do not vouch for the copy's name.
    let any = s.policy(None);
    let copied = s.skopeo_copy(
        &any,
        "app:1",
        &format!("docker://{}", s.reg.image("copied:1")),
    );
    assert!(copied.status.success(), "{}", stderr(&copied));
    let out = s.verify("copied:1", &public);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "identity mismatch: signed for {}",
            s.reg.image("app:1")
        )),
        "{}",
        stderr(&out)
    );
    // Signing the copy appends to the signature manifest skopeo wrote.
    s.push("copied:1", Some(&s.key));
    let sig_manifest: serde_json::Value =
        serde_json::from_slice(&s.reg.raw_manifest(&format!("copied:{}", s.sig_tag()))).unwrap();
    assert_eq!(sig_manifest["layers"].as_array().unwrap().len(), 2);
    ok_output(
        flense(&s.root)
            .arg("verify")
            .arg(s.reg.image("copied:1"))
            .arg("--key")
            .arg(&public),
    );
}

#[test]
fn openssl_and_flense_agree_on_signatures() {
    let s = Signed::new();
    // skopeo fetches the signature image; OpenSSL checks flense's signature with
    // flense's public key.
    let sig_dir = s.tmp.path().join("sig");
    let out = s.skopeo_copy(
        &s.policy(None),
        &format!("app:{}", s.sig_tag()),
        &format!("dir:{}", sig_dir.display()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sig_dir.join("manifest.json")).unwrap()).unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = sig_dir.join(&layer["digest"].as_str().unwrap()["sha256:".len()..]);
    let payload_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&payload).unwrap()).unwrap();
    assert_eq!(
        payload_json["critical"]["image"]["docker-manifest-digest"],
        s.digest.as_str()
    );
    assert_eq!(
        payload_json["critical"]["identity"]["docker-reference"],
        s.reg.image("app:1")
    );
    let signature = {
        use base64::Engine;
        let text = layer["annotations"]["dev.cosignproject.cosign/signature"]
            .as_str()
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    };
    let sig_file = s.tmp.path().join("sig.der");
    std::fs::write(&sig_file, &signature).unwrap();
    let verified = output(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(with_ext(&s.key, "pub"))
            .arg("-signature")
            .arg(&sig_file)
            .arg(&payload),
    );
    assert!(verified.status.success(), "{}", stderr(&verified));

    // An OpenSSL key signs a cosign payload for unsigned:1; `flense verify` accepts it
    // with OpenSSL's public key and names the reason with flense's.
    let openssl_key = s.tmp.path().join("openssl.pem");
    let openssl_pub = s.tmp.path().join("openssl.pub");
    for args in [
        vec![
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ],
        vec![
            "pkey",
            "-pubout",
            "-in",
            openssl_key.to_str().unwrap(),
            "-out",
        ],
    ] {
        let target = if args[0] == "genpkey" {
            &openssl_key
        } else {
            &openssl_pub
        };
        let out = output(Command::new("openssl").args(&args).arg(target));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let foreign_payload = s.tmp.path().join("payload.json");
    std::fs::write(
        &foreign_payload,
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{}"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":{{"creator":"openssl"}}}}"#,
            s.reg.image("unsigned:1"),
            s.digest
        ),
    )
    .unwrap();
    let signed = output(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&openssl_key)
            .arg(&foreign_payload),
    );
    assert!(signed.status.success(), "{}", stderr(&signed));
    attach(&s, "unsigned:1", &foreign_payload, &signed.stdout);
    ok_output(
        flense(&s.root)
            .arg("verify")
            .arg(s.reg.image("unsigned:1"))
            .arg("--key")
            .arg(&openssl_pub),
    );
    let out = s.verify("unsigned:1", &with_ext(&s.key, "pub"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not signed by this key"),
        "{}",
        stderr(&out)
    );
}

/// Stores a signature made elsewhere as cosign does, with flense's library.
fn attach(s: &Signed, repo_and_tag: &str, payload: &Path, der_signature: &[u8]) {
    use base64::Engine;
    let reference = flense::image::reference::Reference::parse(&s.reg.image(repo_and_tag)).unwrap();
    let digest = s.digest.parse().unwrap();
    let signature = flense::sign::attach::StoredSignature {
        payload: std::fs::read(payload).unwrap(),
        signature: base64::engine::general_purpose::STANDARD.encode(der_signature),
    };
    flense::sign::attach::attach_signature(
        &support::registry::anonymous_client(),
        &reference,
        &digest,
        &signature,
    )
    .unwrap();
}

#[test]
fn verify_and_pull_refuse_unsigned_and_wrongly_signed_images() {
    let s = Signed::new();
    let public = with_ext(&s.key, "pub");
    let other = s.tmp.path().join("other");
    generate_key(&s.root, &other);
    s.push("other:1", Some(&other));

    let out = s.verify("app:1", &public);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), s.digest);
    let out = s.verify("unsigned:1", &public);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not signed"), "{}", stderr(&out));

    let pull_root = s.tmp.path().join("pulled");
    let pull = |repo_and_tag: &str| {
        output(
            flense(&pull_root)
                .arg("pull")
                .arg(s.reg.image(repo_and_tag))
                .arg("--verify-key")
                .arg(&public),
        )
    };
    for (image, reason) in [
        ("unsigned:1", "is not signed"),
        ("other:1", "not signed by this key"),
    ] {
        let out = pull(image);
        assert_eq!(out.status.code(), Some(1), "{image}: {}", stderr(&out));
        assert!(stderr(&out).contains(reason), "{image}: {}", stderr(&out));
    }
    let out = pull("app:1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&s.digest),
        "{}",
        stderr(&out)
    );
    let images = ok_stdout(flense(&pull_root).args(["images", "--json"]));
    assert!(images.contains(&s.reg.image("app:1")), "{images}");
    assert!(!images.contains("unsigned"), "{images}");
    assert!(!images.contains("other"), "{images}");
}

#[test]
fn build_push_signs_what_it_pushed() {
    let s = Signed::new();
    let project = s.tmp.path().join("project");
    std::fs::create_dir_all(project.join(".pipeline")).unwrap();
    std::fs::write(
        project.join(".pipeline/blubber.yaml"),
        format!(
            "version: v4\nbase: {}\nvariants:\n  app:\n    entrypoint: [/bin/true]\n",
            s.local
        ),
    )
    .unwrap();
    let built = ok_stdout(
        flense(&s.root)
            .env("FLENSE_KEY_PASSWORD", PASSWORD)
            .args(["build", "app", "-q", "-C"])
            .arg(&project)
            .arg("--push")
            .arg(s.reg.image("built:1"))
            .arg("--sign-by")
            .arg(with_ext(&s.key, "key")),
    );
    let out = s.verify("built:1", &with_ext(&s.key, "pub"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        built.trim(),
        "the signature covers the built image"
    );
}

#[test]
fn unprivileged_user_generates_signs_and_verifies_without_showing_secrets() {
    const USER: &str = "signer";
    const REGISTRY_PASSWORD: &str = "registry-secret-4711";
    let reg = TestRegistry::start_with_auth(USER, REGISTRY_PASSWORD);
    let home = tempfile::tempdir().unwrap();
    let docker = home.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    {
        use base64::Engine;
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{REGISTRY_PASSWORD}"));
        std::fs::write(
            docker.join("config.json"),
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr),
        )
        .unwrap();
    }
    // Root puts the image into the registry; the test user does the rest.
    let root_store = home.path().join("root-store");
    let local = import_fixture(&root_store, "busybox");
    ok_output(
        flense(&root_store)
            .env("DOCKER_CONFIG", &docker)
            .arg("push")
            .arg(&local)
            .arg(reg.image("base/busybox:1")),
    );
    support::users::give_to_test_user(home.path());
    let store = home.path().join("store");
    let prefix = home.path().join("user-key");
    let run = |args: &[&str], password: &str| {
        output(
            support::users::as_test_user(&support::cli::flense_bin())
                .env("HOME", home.path())
                .env("DOCKER_CONFIG", &docker)
                .env("FLENSE_KEY_PASSWORD", password)
                .arg("-vv")
                .arg("--root")
                .arg(&store)
                .args(args),
        )
    };
    let no_secret = |out: &Output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in [PASSWORD, REGISTRY_PASSWORD] {
            assert!(!text.contains(secret), "output shows a secret:\n{text}");
        }
        assert!(out.status.success(), "{text}");
    };
    let empty = run(&["key", "generate", prefix.to_str().unwrap()], "");
    assert_eq!(empty.status.code(), Some(2), "{}", stderr(&empty));
    assert!(
        stderr(&empty).contains("--allow-empty-password"),
        "{}",
        stderr(&empty)
    );
    no_secret(&run(
        &["key", "generate", prefix.to_str().unwrap()],
        PASSWORD,
    ));
    let private = with_ext(&prefix, "key");
    let public = with_ext(&prefix, "pub");
    let again = run(&["key", "generate", prefix.to_str().unwrap()], PASSWORD);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(&private).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.uid(), support::users::test_user().0);
    }
    let image = reg.image("base/busybox:1");
    let signed = reg.image("user/signed:1");
    no_secret(&run(&["pull", &image], ""));
    no_secret(&run(
        &[
            "push",
            &image,
            &signed,
            "--sign-by",
            private.to_str().unwrap(),
        ],
        PASSWORD,
    ));
    no_secret(&run(
        &["verify", &signed, "--key", public.to_str().unwrap()],
        "",
    ));
    let wrong = run(
        &[
            "push",
            &image,
            &signed,
            "--sign-by",
            private.to_str().unwrap(),
        ],
        "not the password",
    );
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        stderr(&wrong).contains("wrong password"),
        "{}",
        stderr(&wrong)
    );
}

/// Reads what `output` shows until it contains `wanted`; panics (naming what was
/// shown) when the command ends first or nothing comes for a minute, so a hang fails.
fn read_until(output: &mut impl std::io::Read, shown: &mut Vec<u8>, wanted: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !String::from_utf8_lossy(shown).contains(wanted) {
        let mut buf = [0u8; 1024];
        let n = output.read(&mut buf).unwrap_or(0);
        assert!(
            n > 0 && std::time::Instant::now() < deadline,
            "no {wanted:?} on the terminal; it showed:\n{}",
            String::from_utf8_lossy(shown)
        );
        shown.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn key_generate_asks_for_the_password_on_the_terminal_without_echo() {
    use std::io::Write;
    use std::process::Stdio;
    const TYPED: &str = "typed-on-the-tty-0815";
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("tty");
    // `exec`: no shell (dash, when $SHELL is unset) stays between script and flense.
    let command = format!(
        "exec '{}' key generate '{}'",
        support::cli::flense_bin().display(),
        prefix.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env_remove("FLENSE_KEY_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("script (util-linux)");
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    let mut shown = Vec::new();
    // Typed only once the prompt is up, i.e. once echo is off.
    read_until(
        &mut output,
        &mut shown,
        "Password for the new private key: ",
    );
    writeln!(input, "{TYPED}").unwrap();
    read_until(&mut output, &mut shown, "Password again: ");
    writeln!(input, "{TYPED}").unwrap();
    read_until(&mut output, &mut shown, "public key written to");
    drop(input);
    let mut rest = Vec::new();
    let _ = output.read_to_end(&mut rest);
    shown.extend(rest);
    assert!(child.wait().unwrap().success());
    let shown = String::from_utf8_lossy(&shown);
    assert!(!shown.contains(TYPED), "the password was shown:\n{shown}");
    flense::sign::keys::read_private_key(&with_ext(&prefix, "key"), TYPED.as_bytes())
        .expect("the key opens with the typed password");
}
