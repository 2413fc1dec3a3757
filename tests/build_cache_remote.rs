//! `flense build --cache-to/--cache-from` between two runners (two stores): runner A
//! (root) builds and exports to a real `docker-registry` and to an OCI directory;
//! runner B (the unprivileged test user, an empty store) builds with the cache, runs no
//! step, unpacks no built layer, and gets A's image digest. Faults (a missing cache, a
//! corrupt blob) are warnings and misses; `flense pipeline` passes the flags to its
//! builds. With `--cache-mounts`, cache mounts' contents (npm's cache, builder `caches`)
//! travel from runner to runner too.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::cli::{flense, flense_bin, ok_output, ok_stdout, output};
use support::fixtures::{import_fixture, node_sample, relock_node_sample, rootfs_tar};
use support::registry::TestRegistry;
use support::unpacked::{layer_dir, layers_of};
use support::users::{as_test_user, give_to_test_user};

const WMF_BASE: &str = "docker-registry.wikimedia.org/nodejs20-devel:latest";

/// (instruction, status) of the layer steps of a `--json` build's output.
fn steps(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "step" && e["status"] != "applied")
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_string();
            (text("instruction"), text("status"))
        })
        .collect()
}

/// The image digest of a `--json` build's output.
fn image_digest(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "image")
        .map(|e| e["digest"].as_str().unwrap().to_string())
        .expect("an image event")
}

/// The messages of the warning events of a `--json` build's output.
fn warnings(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn count(steps: &[(String, String)], status: &str) -> usize {
    steps.iter().filter(|(_, s)| s == status).count()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A root-owned 0755 temp dir, for directories of the test user below it.
fn shared_tmp() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    fs::set_permissions(tmp.path(), mode).unwrap();
    tmp
}

/// A directory the test user can use, under a root-owned 0755 temp dir.
fn user_dir(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    fs::create_dir_all(&dir).unwrap();
    give_to_test_user(&dir);
    dir
}

/// `flense --root STORE` as the unprivileged test user.
fn flense_as_user(store: &Path) -> Command {
    let mut cmd = as_test_user(&flense_bin());
    cmd.env_remove("FLENSE_ROOT").arg("--root").arg(store);
    cmd
}

/// The Node sample with npm logging its HTTP fetches and preferring its cache: a
/// package served from the cache logs `(cache hit)` or, without revalidation,
/// `(cache stale)`; one fetched from the registry `(cache miss)`.
fn logged_node_sample(dir: &Path) -> PathBuf {
    let project = node_sample(dir);
    let config = project.join(".pipeline/blubber.yaml");
    let text = fs::read_to_string(&config).unwrap();
    let logged = text.replacen(
        "  environment:\n",
        "  environment:\n    NPM_CONFIG_LOGLEVEL: http\n    NPM_CONFIG_PREFER_OFFLINE: \"true\"\n",
        1,
    );
    assert_ne!(logged, text);
    fs::write(&config, logged).unwrap();
    project
}

/// Runner B: as the test user, an empty store with only the base (imported, not
/// unpacked), builds the Node sample's `test` variant with `--cache-from cache`.
fn user_build(tmp: &Path, name: &str, tar: &Path, cache: &str) -> (PathBuf, PathBuf, Output) {
    let dir = user_dir(tmp, name);
    let project = logged_node_sample(&dir);
    give_to_test_user(&dir);
    let store = dir.join("store");
    ok_stdout(flense_as_user(&store).arg("import").arg(tar).args([
        "--no-unpack",
        "--tag",
        WMF_BASE,
    ]));
    let out = ok_output(
        flense_as_user(&store)
            .args(["build", "test", "--json", "--cache-from", cache, "-C"])
            .arg(&project),
    );
    (store, project, out)
}

#[test]
fn a_fresh_unprivileged_runner_reuses_a_registry_or_directory_cache_without_running_a_step() {
    let tmp = shared_tmp();
    let registry = TestRegistry::start();
    let reg_cache = registry.image("cache/node-service");
    let dir_cache = tmp.path().join("oci-cache");
    let dir_ref = format!("oci:{}", dir_cache.display());

    // Runner A, root: a cold build exporting to both caches.
    let root_a = tmp.path().join("store-a");
    let local = import_fixture(&root_a, "nodejs-devel");
    ok_stdout(flense(&root_a).args(["tag", &local, WMF_BASE]));
    let project_a = logged_node_sample(tmp.path());
    let out = ok_output(
        flense(&root_a)
            .args(["build", "test", "--json", "--cache-mounts"])
            .args(["--cache-to", &reg_cache])
            .args(["--cache-to", &dir_ref, "-C"])
            .arg(&project_a),
    );
    let built = steps(&out);
    assert_eq!(count(&built, "ran"), built.len(), "{built:?}");
    let digest_a = image_digest(&out);
    give_to_test_user(&dir_cache);

    let tar = tmp.path().join("nodejs-devel.tar");
    fs::copy(rootfs_tar("nodejs-devel"), &tar).unwrap();
    fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();

    // Runner B through the registry: every step from the cache, A's digest, and no
    // layer is unpacked: neither those the build fetched nor the base (the preflight
    // reads its users and shell from the blob).
    let (store_b, project_b, out) = user_build(tmp.path(), "runner-b", &tar, &reg_cache);
    let fetched = steps(&out);
    assert_eq!(count(&fetched, "ran"), 0, "{fetched:?}");
    assert_eq!(count(&fetched, "cached-remote"), built.len(), "{fetched:?}");
    assert_eq!(image_digest(&out), digest_a);
    let layers = layers_of(&store_b, "node-service:test");
    for (_, diff_id) in &layers {
        assert!(
            !layer_dir(&store_b, diff_id).exists(),
            "layer {diff_id} was unpacked by a build that ran nothing"
        );
    }
    // The image runs on B (its layers unpacked now), and the rebuild is a local hit.
    let run = output(
        flense_as_user(&store_b)
            .args(["run", "test", "--quiet", "--cache-from", &reg_cache, "-C"])
            .arg(&project_b),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("2 passing"));

    // A changed lockfile on B: npm runs again, from A's npm cache restored into B's
    // empty store (`--cache-mounts`), so every package tarball comes from the cache.
    relock_node_sample(&project_b);
    let out = ok_output(
        flense_as_user(&store_b)
            .args(["build", "test", "--json", "--cache-mounts"])
            .args(["--cache-from", &reg_cache, "-C"])
            .arg(&project_b),
    );
    let relocked = steps(&out);
    assert!(
        relocked
            .iter()
            .any(|(i, s)| i.contains("npm ci") && s == "ran"),
        "{relocked:?}"
    );
    let log = stderr(&out);
    let tarballs: Vec<&str> = log.lines().filter(|l| l.contains(".tgz")).collect();
    assert!(!tarballs.is_empty(), "npm logged no tarball fetch:\n{log}");
    assert!(
        tarballs
            .iter()
            .all(|l| l.contains("(cache hit)") || l.contains("(cache stale)")),
        "npm fetched packages that A's cache holds:\n{log}"
    );

    // Runner B' through the OCI directory.
    let (_, _, out) = user_build(tmp.path(), "runner-b2", &tar, &dir_ref);
    let fetched = steps(&out);
    assert_eq!(count(&fetched, "ran"), 0, "{fetched:?}");
    assert_eq!(image_digest(&out), digest_a);
}

const BUSYBOX_BLUBBER: &str = r#"version: v4
base: localhost/busybox:latest
variants:
  built:
    builder:
      requirements: [input.txt]
      command: "tr a-z A-Z < input.txt > upper.txt"
    copies: [local]
    entrypoint: [cat, upper.txt]
  other:
    copies: [local]
    entrypoint: [cat, input.txt]
"#;

fn busybox_project(dir: &Path) -> PathBuf {
    let p = dir.join("small");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), BUSYBOX_BLUBBER).unwrap();
    fs::write(p.join("input.txt"), "shout\n").unwrap();
    p
}

fn busybox_store(root: PathBuf) -> PathBuf {
    import_fixture(&root, "busybox");
    root
}

/// The layer blobs an OCI-directory cache's manifest lists.
fn cache_layer_blobs(dir: &Path) -> Vec<PathBuf> {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| dir.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(&fs::read(blob(manifest)).unwrap()).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect()
}

#[test]
fn a_missing_cache_or_a_corrupt_blob_is_a_warning_and_a_miss_with_the_right_image() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start();
    let project = busybox_project(tmp.path());
    let cache_dir = tmp.path().join("oci-cache");
    let dir_ref = format!("oci:{}", cache_dir.display());

    let reg_cache = registry.image("cache/small");

    // A cache repository that does not exist: a warning (on stderr and as an event), a
    // cold build, an export.
    let missing = registry.image("nothing/here");
    let root_a = busybox_store(tmp.path().join("a"));
    let out = ok_output(
        flense(&root_a)
            .args(["build", "built", "--json", "--cache-from", &missing])
            .args(["--cache-to", &dir_ref, "--cache-to", &reg_cache, "-C"])
            .arg(&project),
    );
    let cold = steps(&out);
    assert_eq!(count(&cold, "ran"), cold.len(), "{cold:?}");
    assert!(stderr(&out).contains("nothing/here"), "{}", stderr(&out));
    let warned = warnings(&out);
    assert!(
        warned.len() == 1 && warned[0].contains("nothing/here"),
        "{warned:?}"
    );
    let digest = image_digest(&out);

    // A dry run on a fresh store reports the steps as in the shared cache, fetching
    // nothing.
    let root_dry = busybox_store(tmp.path().join("dry"));
    let dry = ok_stdout(
        flense(&root_dry)
            .args([
                "build",
                "built",
                "--dry-run",
                "--cache-from",
                &dir_ref,
                "-C",
            ])
            .arg(&project),
    );
    assert_eq!(
        dry.matches("(cached (remote))").count(),
        cold.len(),
        "{dry}"
    );

    // The same cache from FLENSE_CACHE_FROM: every step a hit.
    let root_b = busybox_store(tmp.path().join("b"));
    let out = ok_output(
        flense(&root_b)
            .args(["build", "built", "--json", "-C"])
            .arg(&project)
            .env("FLENSE_CACHE_FROM", format!("{missing},{dir_ref}")),
    );
    assert_eq!(count(&steps(&out), "ran"), 0, "{:?}", steps(&out));
    assert_eq!(image_digest(&out), digest);

    // Every layer blob of both caches corrupted (the registry serves the wrong bytes
    // from its storage): each step misses in both, runs, and the image is the same.
    for blob in cache_layer_blobs(&cache_dir) {
        let hex = blob.file_name().unwrap().to_str().unwrap().to_string();
        corrupt(&served_blob(&registry, &hex));
        corrupt(&blob);
    }
    let root_c = busybox_store(tmp.path().join("c"));
    let out = ok_output(
        flense(&root_c)
            .args(["build", "built", "--json", "--cache-from", &dir_ref])
            .args(["--cache-from", &reg_cache, "-C"])
            .arg(&project),
    );
    let rebuilt = steps(&out);
    assert_eq!(count(&rebuilt, "ran"), rebuilt.len(), "{rebuilt:?}");
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    let corrupt: Vec<String> = warnings(&out)
        .into_iter()
        .filter(|w| w.contains("corrupt"))
        .collect();
    for cache in [&dir_ref, &reg_cache] {
        assert!(
            corrupt.iter().any(|w| w.contains(cache.as_str())),
            "no warning event for {cache}: {corrupt:?}"
        );
    }
    assert_eq!(image_digest(&out), digest);
}

/// A builder step that appends the runner's name to a file in a builder cache.
const CACHES_BLUBBER: &str = r#"version: v4
base: localhost/busybox:latest
variants:
  appended:
    builder:
      requirements: [runner.txt]
      command: "cat runner.txt >> /var/cache/shared/log && cp /var/cache/shared/log seen.txt"
      caches: [/var/cache/shared]
    entrypoint: [cat, seen.txt]
"#;

fn caches_project(dir: &Path, runner: &str) -> PathBuf {
    let p = dir.join("appender");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), CACHES_BLUBBER).unwrap();
    fs::write(p.join("runner.txt"), format!("{runner}\n")).unwrap();
    p
}

/// The contents of the file `log` in the store's cache directories.
fn cache_log(store: &Path) -> String {
    walkdir::WalkDir::new(store.join("cache/mounts"))
        .into_iter()
        .flatten()
        .find(|e| e.file_name() == "log")
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .unwrap_or_default()
}

#[test]
fn a_builder_cache_travels_to_an_unprivileged_runner_with_a_relative_store() {
    let tmp = shared_tmp();
    let registry = TestRegistry::start();
    let reg_cache = registry.image("cache/appender");

    // Runner A, root: the step writes "A" into the cache, exported as its own layer.
    let root_a = busybox_store(tmp.path().join("a"));
    let project_a = caches_project(&tmp.path().join("project-a"), "A");
    ok_output(
        flense(&root_a)
            .args([
                "build",
                "appended",
                "--cache-mounts",
                "--cache-to",
                &reg_cache,
            ])
            .arg("-C")
            .arg(&project_a),
    );
    assert_eq!(cache_log(&root_a), "A\n");
    let from_a = mount_layers(&registry, "cache/appender:buildcache");
    assert_eq!(from_a.len(), 1, "{from_a:?}");
    assert_eq!(from_a[0].0, "/var/cache/shared");

    // Runner B, the test user, a store given as a relative --root and
    // FLENSE_CACHE_MOUNTS=1: its step (another runner.txt) runs on A's cache contents.
    let dir = user_dir(tmp.path(), "runner-b");
    caches_project(&dir, "B");
    let tar = dir.join("busybox.tar");
    fs::copy(rootfs_tar("busybox"), &tar).unwrap();
    give_to_test_user(&dir);
    let user_flense = |args: &[&str]| {
        let mut cmd = as_test_user(&flense_bin());
        cmd.current_dir(&dir)
            .args(["--root", "store"])
            .args(args)
            .env("FLENSE_CACHE_MOUNTS", "1");
        ok_output(&mut cmd)
    };
    user_flense(&["import", "busybox.tar", "--tag", "localhost/busybox:latest"]);
    let out = user_flense(&[
        "build",
        "appended",
        "--json",
        "--cache-from",
        &reg_cache,
        "--cache-to",
        &reg_cache,
        "-C",
        "appender",
    ]);
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    assert_eq!(cache_log(&dir.join("store")), "A\nB\n");
    let seen = user_flense(&["run", "appended", "--quiet", "-C", "appender"]);
    assert_eq!(String::from_utf8_lossy(&seen.stdout), "A\nB\n");

    // B's changed contents replaced A's record of the cache id (the last writer wins).
    let from_b = mount_layers(&registry, "cache/appender:buildcache");
    assert_eq!(from_b.len(), 1, "{from_b:?}");
    assert_ne!(from_b[0].1, from_a[0].1);
    let runner_c = |name: &str| {
        let root = busybox_store(tmp.path().join(name));
        let project = caches_project(&tmp.path().join(format!("project-{name}")), "C");
        let out = ok_output(
            flense(&root)
                .args(["build", "appended", "--json", "--cache-mounts"])
                .args(["--cache-from", &reg_cache, "-C"])
                .arg(&project),
        );
        (cache_log(&root), warnings(&out))
    };
    assert_eq!(runner_c("c1"), ("A\nB\nC\n".to_string(), Vec::new()));

    // The registry serves wrong bytes for the cache's blob: a warning, a cold cache.
    corrupt(&served_blob(&registry, &from_b[0].1["sha256:".len()..]));
    let (log, warned) = runner_c("c2");
    assert_eq!(log, "C\n");
    assert!(
        warned.len() == 1 && warned[0].contains("starts empty"),
        "{warned:?}"
    );
}

/// (cache id, layer digest) of the cache mounts in the cache manifest `repo_and_tag`.
fn mount_layers(registry: &TestRegistry, repo_and_tag: &str) -> Vec<(String, String)> {
    let manifest: Value = serde_json::from_slice(&registry.raw_manifest(repo_and_tag)).unwrap();
    let text = |v: &Value| v.as_str().unwrap().to_string();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let id = l["annotations"].get("dev.flense.cache.mount")?;
            Some((text(id), text(&l["digest"])))
        })
        .collect()
}

/// The file `registry` serves the blob `sha256:<hex>` from (its filesystem storage).
fn served_blob(registry: &TestRegistry, hex: &str) -> PathBuf {
    let blobs = "data/docker/registry/v2/blobs/sha256";
    let dir = registry.dir.path().join(blobs).join(&hex[..2]).join(hex);
    dir.join("data")
}

/// Flips a byte in the middle of `file`.
fn corrupt(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let middle = (bytes.len() - 1) / 2;
    bytes[middle] ^= 0xff;
    fs::write(file, bytes).unwrap();
}

/// Builds `variant` of the busybox project in each `(store, variant)` at once, with
/// `extra` arguments; returns each build's output.
fn parallel_builds(project: &Path, builds: &[(&Path, &str)], extra: &[&str]) -> Vec<Output> {
    let children: Vec<_> = builds
        .iter()
        .map(|(root, variant)| {
            flense(root)
                .args(["build", variant, "--json"])
                .args(extra)
                .arg("-C")
                .arg(project)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            out
        })
        .collect()
}

#[test]
fn two_runners_exporting_to_one_tag_at_once_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start();
    let reg_cache = registry.image("cache/shared-tag");
    let project = busybox_project(tmp.path());
    let root_p = busybox_store(tmp.path().join("p"));
    let root_q = busybox_store(tmp.path().join("q"));
    let builds = [(root_p.as_path(), "built"), (root_q.as_path(), "other")];
    // Cold builds first, so that the exports (from builds that hit their own store)
    // start together.
    let cold = parallel_builds(&project, &builds, &[]);
    let digests: Vec<String> = cold.iter().map(image_digest).collect();
    let exported = parallel_builds(&project, &builds, &["--cache-to", &reg_cache]);
    for (out, digest) in exported.iter().zip(&digests) {
        assert_eq!(&image_digest(out), digest);
        assert!(warnings(out).is_empty(), "{:?}", warnings(out));
    }

    // A third, fresh runner finds the steps of both.
    let root_r = busybox_store(tmp.path().join("r"));
    for ((_, variant), digest) in builds.iter().zip(&digests) {
        let out = ok_output(
            flense(&root_r)
                .args(["build", variant, "--json", "--cache-from", &reg_cache, "-C"])
                .arg(&project),
        );
        let fetched = steps(&out);
        assert_eq!(count(&fetched, "ran"), 0, "{variant}: {fetched:?}");
        assert_eq!(&image_digest(&out), digest);
    }
}

const PIPELINE: &str = r#"pipelines:
  small:
    blubberfile: blubber.yaml
    stages:
      - name: built
        build: built
      - name: other
        build: other
"#;

/// The digests of the images `flense images` lists under `prefix`.
fn image_digests(root: &Path, prefix: &str) -> Vec<String> {
    let list = ok_stdout(flense(root).arg("images"));
    let mut digests: Vec<String> = list
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
        .map(str::to_string)
        .collect();
    digests.sort();
    digests
}

#[test]
fn a_pipeline_passes_the_cache_flags_to_every_build() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("oci-cache");
    let dir_ref = format!("oci:{}", cache_dir.display());
    let run_pipeline = |name: &str, flag: &str| {
        let root = busybox_store(tmp.path().join(name));
        let project = busybox_project(&tmp.path().join(format!("{name}-project")));
        fs::write(project.join(".pipeline/config.yaml"), PIPELINE).unwrap();
        let out = output(
            flense(&root)
                .args(["pipeline", "-C"])
                .arg(&project)
                .args([flag, &dir_ref])
                .env("NO_COLOR", "1"),
        );
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        root
    };
    let first = run_pipeline("p1", "--cache-to");
    assert!(
        !cache_layer_blobs(&cache_dir).is_empty(),
        "the stages' layers"
    );
    let second = run_pipeline("p2", "--cache-from");
    let built = image_digests(&first, "localhost/");
    assert!(built.len() >= 3, "busybox and two stage images: {built:?}");
    assert_eq!(image_digests(&second, "localhost/"), built);
    // Nothing ran on the second store: no step's captured tree became a layer
    // directory, and only the base was unpacked (by its import).
    let layer_dirs = fs::read_dir(second.join("layers")).unwrap().count();
    assert_eq!(layer_dirs, 1, "only the base is unpacked");
}
