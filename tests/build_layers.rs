//! `flense build` for variants whose steps flense writes itself (users, local copies,
//! copies between variants, scratch): ownership in the layer tars, image config, cache
//! behaviour, reproducibility, and the same digest as root and as an unprivileged user.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::{flense, ok_stdout, output};
use support::fixtures::rootfs_tar;
use support::users::{as_test_user, give_to_test_user};

const BLUBBER: &str = r#"version: v4
lives:
  in: /srv/service
variants:
  app:
    base: localhost/busybox:latest
    copies:
      - from: local
        source: .
        destination: .
        exclude: ["**/*.tmp"]
    entrypoint: [/bin/sh, -c, "cat src/index.js"]
  dist:
    copies:
      - from: app
        source: src
        destination: /dist/
    entrypoint: [/dist/index.js]
"#;

/// A project directory with sources, a `.dockerignore` and the config above.
fn project(dir: &Path) -> PathBuf {
    let p = dir.join("svc");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::create_dir_all(p.join("src/lib")).unwrap();
    fs::create_dir_all(p.join("node_modules/left-pad")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    fs::write(p.join("src/index.js"), "console.log('hi');\n").unwrap();
    fs::write(p.join("src/lib/util.js"), "module.exports = 1;\n").unwrap();
    fs::write(p.join("src/scratch.tmp"), "temporary\n").unwrap();
    fs::write(p.join("node_modules/left-pad/index.js"), "x\n").unwrap();
    fs::write(p.join(".dockerignore"), "node_modules\n").unwrap();
    p
}

fn import_busybox(root: &Path) {
    let tar = rootfs_tar("busybox");
    ok_stdout(
        flense(root)
            .arg("import")
            .arg(&tar)
            .args(["--tag", "localhost/busybox:latest"]),
    );
}

fn build(root: &Path, project: &Path, variant: &str) -> String {
    ok_stdout(
        flense(root)
            .args(["build", variant, "-q", "-C"])
            .arg(project),
    )
    .trim()
    .to_string()
}

/// The JSON events of a build.
fn build_events(root: &Path, project: &Path, variant: &str) -> Vec<Value> {
    let out = ok_stdout(
        flense(root)
            .args(["build", variant, "--json", "-C"])
            .arg(project),
    );
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event {l}: {e}")))
        .collect()
}

fn statuses(events: &[Value]) -> BTreeMap<String, String> {
    events
        .iter()
        .filter(|e| e["event"] == "step" && e["status"] != "applied")
        .map(|e| {
            (
                format!("{} {:02}", e["variant"].as_str().unwrap(), e["index"]),
                format!(
                    "{} {}",
                    e["status"].as_str().unwrap(),
                    e["instruction"].as_str().unwrap()
                ),
            )
        })
        .collect()
}

fn inspect(root: &Path, reference: &str) -> Value {
    let out = ok_stdout(flense(root).args(["inspect", reference]));
    serde_json::from_str(&out).unwrap()
}

/// One tar entry: (path, uid, gid, mode, content).
type TarEntry = (String, u64, u64, u32, Vec<u8>);

/// (path, uid, gid, mode, content) of every entry of every layer of an image, top layer
/// last, read from the blobs in the store.
fn layer_entries(root: &Path, reference: &str) -> Vec<Vec<TarEntry>> {
    let image = inspect(root, reference);
    let layers = image["manifest"]["layers"].as_array().unwrap().clone();
    layers
        .iter()
        .map(|l| {
            let digest = l["digest"].as_str().unwrap();
            let blob = root
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:"));
            let gz = flate2::read::GzDecoder::new(fs::File::open(blob).unwrap());
            let mut tar = tar::Archive::new(gz);
            tar.entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let h = e.header().clone();
                    let mut content = Vec::new();
                    e.read_to_end(&mut content).unwrap();
                    (
                        e.path().unwrap().to_string_lossy().into_owned(),
                        h.uid().unwrap(),
                        h.gid().unwrap(),
                        h.mode().unwrap(),
                        content,
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn files_belong_to_lives_and_the_image_runs_as_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_busybox(&root);
    let p = project(tmp.path());
    let digest = build(&root, &p, "app");
    assert!(digest.starts_with("sha256:"), "{digest}");

    let image = inspect(&root, "svc:app");
    let config = &image["config"]["config"];
    assert_eq!(config["User"], "900");
    assert_eq!(config["WorkingDir"], "/srv/service");
    assert_eq!(config["Entrypoint"][2], "cat src/index.js");
    assert_eq!(config["Labels"]["blubber.variant"], "app");
    assert!(config["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("HOME=/home/runuser")));

    let layers = layer_entries(&root, "svc:app");
    let all: Vec<_> = layers.iter().flatten().collect();
    let find = |p: &str| {
        all.iter()
            .rev()
            .find(|e| e.0.trim_end_matches('/') == p)
            .unwrap_or_else(|| panic!("{p} not in any layer"))
    };
    let index = find("srv/service/src/index.js");
    assert_eq!((index.1, index.2), (65533, 65533));
    assert_eq!(index.4, b"console.log('hi');\n");
    assert_eq!(
        (find("srv/service").1, find("srv/service").2),
        (65533, 65533)
    );
    assert_eq!((find("home/runuser").1, find("home/runuser").2), (900, 900));
    let passwd = String::from_utf8(find("etc/passwd").4.clone()).unwrap();
    assert!(
        passwd.contains("somebody:!:65533:65533::/home/somebody:"),
        "{passwd}"
    );
    assert!(
        passwd.contains("runuser:!:900:900::/home/runuser:"),
        "{passwd}"
    );
    // .dockerignore and the copy's exclude pattern.
    assert!(all.iter().all(|e| !e.0.contains("node_modules")));
    assert!(all.iter().all(|e| !e.0.ends_with(".tmp")));
}

#[test]
fn rebuilds_use_the_cache_and_a_source_change_reruns_only_the_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_busybox(&root);
    let p = project(tmp.path());
    let first = statuses(&build_events(&root, &p, "app"));
    assert!(first.values().all(|s| s.starts_with("ran")), "{first:?}");
    let digest1 = inspect(&root, "svc:app")["digest"].clone();

    let again = statuses(&build_events(&root, &p, "app"));
    assert!(again.values().all(|s| s.starts_with("cached")), "{again:?}");
    assert_eq!(inspect(&root, "svc:app")["digest"], digest1);

    fs::write(p.join("src/lib/util.js"), "module.exports = 2;\n").unwrap();
    let changed = statuses(&build_events(&root, &p, "app"));
    let ran: Vec<_> = changed.values().filter(|s| s.starts_with("ran")).collect();
    assert_eq!(ran.len(), 1, "{changed:?}");
    assert!(ran[0].contains("COPY"), "{changed:?}");
    assert_ne!(inspect(&root, "svc:app")["digest"], digest1);

    // --no-cache runs everything again and gives the same image.
    let out = ok_stdout(
        flense(&root)
            .args(["build", "app", "--no-cache", "--json", "-C"])
            .arg(&p),
    );
    assert!(out.contains(r#""status":"ran""#) && !out.contains(r#""status":"cached""#));
}

#[test]
fn two_clean_builds_in_two_stores_give_the_same_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let p = project(tmp.path());
    let mut digests = Vec::new();
    for name in ["one", "two"] {
        let root = tmp.path().join(name);
        import_busybox(&root);
        digests.push(build(&root, &p, "app"));
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn an_unprivileged_user_builds_the_same_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_busybox(&root);
    let p = project(tmp.path());
    let as_root = build(&root, &p, "dist");

    let user_dir = tmp.path().join("user");
    fs::create_dir_all(&user_dir).unwrap();
    let user_project = project(&user_dir);
    let tar_copy = user_dir.join("busybox.tar");
    fs::copy(rootfs_tar("busybox"), &tar_copy).unwrap();
    give_to_test_user(&user_dir);
    fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let user_root = user_dir.join("store");
    let bin = support::cli::flense_bin();
    ok_stdout(
        as_test_user(&bin)
            .arg("--root")
            .arg(&user_root)
            .arg("import")
            .arg(&tar_copy)
            .args(["--tag", "localhost/busybox:latest"]),
    );
    let as_user = ok_stdout(
        as_test_user(&bin)
            .arg("--root")
            .arg(&user_root)
            .args(["build", "dist", "-q", "-C"])
            .arg(&user_project),
    );
    assert_eq!(as_user.trim(), as_root);
    let app_root = build(&root, &p, "app");
    ok_stdout(
        as_test_user(&bin)
            .arg("--root")
            .arg(&user_root)
            .args(["build", "app", "-q", "-C"])
            .arg(&user_project),
    );
    let app_user = ok_stdout(
        as_test_user(&bin)
            .arg("--root")
            .arg(&user_root)
            .args(["inspect", "svc:app"]),
    );
    let app_user: Value = serde_json::from_str(&app_user).unwrap();
    assert_eq!(app_user["digest"], app_root.as_str());
}

#[test]
fn a_scratch_variant_copies_from_another_variant_without_users() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_busybox(&root);
    let p = project(tmp.path());
    build(&root, &p, "dist");
    let image = inspect(&root, "svc:dist");
    let config = &image["config"]["config"];
    assert_eq!(config["WorkingDir"], "/");
    assert!(
        config.get("User").is_none_or(|u| u.is_null() || u == ""),
        "{config}"
    );
    assert_eq!(config["Entrypoint"][0], "/dist/index.js");
    let layers = layer_entries(&root, "svc:dist");
    assert_eq!(layers.len(), 1, "scratch + one copy layer");
    let paths: Vec<_> = layers[0]
        .iter()
        .map(|e| e.0.trim_end_matches('/').to_string())
        .collect();
    assert_eq!(
        paths,
        vec!["dist", "dist/index.js", "dist/lib", "dist/lib/util.js"]
    );
    // Copied from a variant without --chown: the source owner (lives) is kept.
    assert!(
        layers[0][1..].iter().all(|e| (e.1, e.2) == (65533, 65533)),
        "{:?}",
        layers[0]
    );
}

#[test]
fn bad_input_exits_2_and_a_missing_source_exits_1_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_busybox(&root);
    let p = project(tmp.path());
    let out = output(flense(&root).args(["build", "nope", "-C"]).arg(&p));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output(
        flense(&root)
            .args(["build", "app", "--build-arg", "=x", "-C"])
            .arg(&p),
    );
    assert_eq!(out.status.code(), Some(2));
    let out = output(
        flense(&root)
            .args(["build", "app", "--output", "zip:x", "-C"])
            .arg(&p),
    );
    assert_eq!(out.status.code(), Some(2));

    fs::write(
        p.join(".pipeline/blubber.yaml"),
        BLUBBER.replace("source: src", "source: missing-dir"),
    )
    .unwrap();
    let out = output(flense(&root).args(["build", "dist", "-C"]).arg(&p));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing-dir"), "{stderr}");
}

#[test]
fn output_writes_an_oci_layout_that_skopeo_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_busybox(&root);
    let p = project(tmp.path());
    let layout = tmp.path().join("layout");
    let digest = ok_stdout(
        flense(&root)
            .args(["build", "app", "-q", "--output"])
            .arg(format!("oci:{}", layout.display()))
            .arg("-C")
            .arg(&p),
    );
    assert!(layout.join("index.json").is_file());
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}", layout.display()))
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let raw = out.stdout;
            let got = format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw))
            );
            assert_eq!(got, digest.trim());
        }
        Ok(out) => panic!("skopeo failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => eprintln!("skopeo not installed ({e}); checked the layout files only"),
    }
}

#[test]
fn extra_labels_go_into_the_image_config_without_rerunning_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_busybox(&root);
    let p = project(tmp.path());
    build(&root, &p, "app");
    let out = ok_stdout(
        flense(&root)
            .args(["build", "app", "--json", "-C"])
            .arg(&p)
            .args([
                "--label",
                "ci.project=svc",
                "--label",
                "team=qa=ops",
                "-t",
                "svc:labelled",
            ]),
    );
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        statuses(&events).values().all(|s| s.starts_with("cached")),
        "labels change only the config: {out}"
    );
    let labels = &inspect(&root, "svc:labelled")["config"]["config"]["Labels"];
    assert_eq!(labels["ci.project"], "svc");
    assert_eq!(labels["team"], "qa=ops");
    assert_eq!(labels["blubber.variant"], "app");
    assert!(inspect(&root, "svc:app")["config"]["config"]["Labels"]["team"].is_null());
    let bad = support::cli::output(
        flense(&root)
            .args(["build", "app", "-C"])
            .arg(&p)
            .args(["--label", "novalue"]),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--label \"novalue\" is not KEY=VALUE"));
}

#[test]
fn rmi_and_prune_drop_the_build_cache_of_deleted_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_busybox(&root);
    let p = project(tmp.path());
    build(&root, &p, "app");
    let records = |root: &Path| -> Vec<Value> {
        fs::read_dir(root.join("cache/index"))
            .unwrap()
            .flatten()
            .map(|e| serde_json::from_slice(&fs::read(e.path()).unwrap()).unwrap())
            .collect()
    };
    let with_layer = |recs: &[Value]| recs.iter().filter(|r| !r["layer"].is_null()).count();
    assert!(with_layer(&records(&root)) > 0);
    assert!(fs::read_dir(root.join("cache/locks"))
        .unwrap()
        .next()
        .is_some());

    let out = ok_stdout(flense(&root).args(["rmi", "svc:app"]));
    assert!(out.contains("build-cache records"), "{out}");
    let left = records(&root);
    for r in &left {
        if let Some(digest) = r["layer"]["digest"].as_str() {
            let blob = root.join("blobs/sha256").join(&digest["sha256:".len()..]);
            assert!(blob.is_file(), "a record of a deleted layer survived: {r}");
        }
    }
    assert_eq!(with_layer(&left), 0, "every layer of svc:app was deleted");
    assert!(fs::read_dir(root.join("cache/locks"))
        .unwrap()
        .next()
        .is_none());
    // The next build runs its layer steps again and gives the same image.
    let events = build_events(&root, &p, "app");
    assert!(
        statuses(&events).values().all(|s| s.starts_with("ran")),
        "{events:?}"
    );
}
