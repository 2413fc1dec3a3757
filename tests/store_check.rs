//! Crash consistency of the store through the CLI: `flense check [--repair]` on broken
//! blobs, layers and cache records; `kill -9` of builds, pulls, pushes and prunes at
//! each point that matters (the points inside the store are reached through the
//! `FLENSE_TEST_PAUSE_AT` test hook, see `flense::fault_point`), their leftovers
//! reclaimed by the next command; prune running while builds do.

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::cli::{flense, flense_bin, ok_stdout, output};
use support::fixtures::{busybox_tar_for_test_user, import_fixture, rootfs_tar};
use support::registry::{sha256, simple_image, Fault, FaultProxy, TestImage, TestRegistry};
use support::users::{as_test_user, give_to_test_user};

const BLUBBER: &str = r#"version: v4
lives:
  in: /srv/app
variants:
  quick:
    base: localhost/busybox:latest
    builders:
      - custom:
          requirements: [input.txt]
          command: [sh, -c, "tr a-z A-Z < input.txt > upper.txt"]
    entrypoint: [cat, upper.txt]
  slow:
    base: localhost/busybox:latest
    builders:
      - custom:
          command: [sh, -c, "sleep 5 && echo slow > slow.txt"]
    entrypoint: [cat, slow.txt]
  other:
    base: localhost/busybox:latest
    builders:
      - custom:
          command: [sh, -c, "sleep 1 && echo other > other.txt"]
    entrypoint: [cat, other.txt]
"#;

fn project(dir: &Path) -> PathBuf {
    let p = dir.join("app");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    fs::write(p.join("input.txt"), "hello\n").unwrap();
    p
}

/// A store with the busybox fixture (`localhost/busybox:latest`) and the project above.
fn store_and_project(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("store");
    import_fixture(&root, "busybox");
    (root, project(dir))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How a test runs flense on a store: [`flense`] as root, or [`user_flense`].
type Cli = fn(&Path) -> Command;

/// `flense --root ROOT` run as the unprivileged test user.
fn user_flense(root: &Path) -> Command {
    let mut cmd = as_test_user(&flense_bin());
    cmd.arg("--root").arg(root);
    cmd
}

fn build_cmd(cli: Cli, root: &Path, project: &Path, variant: &str, extra: &[&str]) -> Command {
    let mut cmd = cli(root);
    cmd.args(["build", variant, "-q"])
        .args(extra)
        .arg("-C")
        .arg(project);
    cmd
}

fn build(root: &Path, project: &Path, variant: &str, extra: &[&str]) -> String {
    ok_stdout(&mut build_cmd(flense, root, project, variant, extra))
        .trim()
        .to_string()
}

fn check(cli: Cli, root: &Path, repair: bool) -> Output {
    let mut cmd = cli(root);
    cmd.arg("check");
    if repair {
        cmd.arg("--repair");
    }
    output(&mut cmd)
}

fn assert_consistent(cli: Cli, root: &Path) {
    let out = check(cli, root, false);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check found problems:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// What `flense check` reports, asserting it exits 1.
fn problems(cli: Cli, root: &Path) -> String {
    let out = check(cli, root, false);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}{}", text(&out.stderr));
    report
}

/// Asserts that `flense check` reports leftovers of killed processes and nothing else.
fn assert_only_leftovers(cli: Cli, root: &Path) {
    let report = problems(cli, root);
    let (summary, found): (Vec<&str>, Vec<&str>) =
        report.lines().partition(|l| l.contains(" problems; "));
    assert_eq!(summary.len(), 1, "{report}");
    assert!(!found.is_empty(), "{report}");
    for line in found {
        assert!(line.contains("left behind by a killed process"), "{report}");
    }
}

fn tmp_entries(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits (up to a minute) until `ready` holds, failing if `child` exits first.
fn wait_until(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the command ended ({status}) before {what}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill9(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Runs `cmd` until `ready` holds, then kills it (-9).
fn kill_when(cmd: &mut Command, what: &str, ready: impl Fn() -> bool) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(&mut child, what, ready);
    kill9(child);
}

/// A registry with the busybox test image `base/busybox:v1` (made in `dir`), and a proxy
/// to it whose first download of that image's layer stalls halfway.
fn stalling_registry(dir: &Path) -> (TestRegistry, TestImage, FaultProxy) {
    let reg = TestRegistry::start();
    let image = simple_image(&dir.join("layout"), "v1");
    image.push_with_skopeo(&reg, "base/busybox:v1", &[]);
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![Fault::StallResponse {
            method: "GET",
            path: "/blobs/".to_string() + &image.manifests[0].2[0],
        }],
    );
    (reg, image, proxy)
}

/// Runs `cmd` with `FLENSE_TEST_PAUSE_AT=point` and kills it (-9) once it reports on
/// stderr that it paused there; fails if it ends without pausing.
fn kill_at(cmd: &mut Command, point: &str) {
    let mut child = cmd
        .env("FLENSE_TEST_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let marker = format!("flense: test pause at {point}");
    let (paused, pause) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            if line == marker {
                let _ = paused.send(());
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    // The channel closes, ending the wait, when flense ends without pausing.
    let reached = pause.recv_timeout(Duration::from_secs(120)).is_ok();
    let _ = child.kill();
    child.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert!(reached, "flense did not pause at {point}:\n{stderr}");
}

/// Whether the last `flense check` exit was 0 or only about leftovers: asserts which.
fn assert_check_after_kill(cli: Cli, root: &Path, leftovers: bool) {
    if leftovers {
        assert_only_leftovers(cli, root);
    } else {
        assert_consistent(cli, root);
    }
}

/// Imports the busybox fixture as `localhost/busybox:latest` without unpacking it, so
/// the first build unpacks its layer.
fn import_packed(cli: Cli, root: &Path, tar: &Path) {
    ok_stdout(cli(root).arg("import").arg(tar).args([
        "--tag",
        "localhost/busybox:latest",
        "--no-unpack",
    ]));
}

/// The tag the kill tests build `quick` as.
const KILLED_TAG: &str = "localhost/killed:quick";

/// Whether `index.json` names `tag`.
fn tagged(root: &Path, tag: &str) -> bool {
    fs::read_to_string(root.join("index.json"))
        .unwrap()
        .contains(&format!("\"{tag}\""))
}

/// kill -9 of `flense build quick` in a store whose base image is not unpacked yet:
/// while it unpacks the base layer (part of it extracted in a staging directory), while
/// it writes the step's layer blob (part of it in a temp file) and while it commits the
/// image (config and manifest stored, the name not set; after an `rmi` of it). Each time `check` finds the
/// killed build's leftovers and nothing else (none after the commit point), and the same
/// build then succeeds with the same digest and reclaims them. Returns that digest.
fn kill_builds_at_each_point(cli: Cli, root: &Path, project: &Path) -> String {
    let mut built: Option<String> = None;
    let points = [
        ("unpack", &[][..], true),
        ("layer-write", &["--no-cache"][..], true),
        ("commit", &["--no-cache"][..], false),
    ];
    for (point, extra, leftovers) in points {
        let args = [&["-t", KILLED_TAG][..], extra].concat();
        if point == "commit" {
            // So that the name is not there already (and the rebuild starts afresh).
            ok_stdout(cli(root).args(["rmi", KILLED_TAG]));
        }
        kill_at(&mut build_cmd(cli, root, project, "quick", &args), point);
        let tmp = root.join("tmp");
        match point {
            "unpack" => assert!(
                tmp_entries(root).iter().any(|n| n.starts_with("layer-")
                    && fs::read_dir(tmp.join(n).join("diff")).unwrap().count() > 0),
                "no partly extracted layer in {:?}",
                tmp_entries(root)
            ),
            "layer-write" => assert!(
                tmp_entries(root).iter().any(|n| {
                    let meta = fs::metadata(tmp.join(n)).unwrap();
                    meta.is_file() && meta.len() > 0
                }),
                "no partly written blob in {:?}",
                tmp_entries(root)
            ),
            _ => assert!(!tagged(root, KILLED_TAG), "the image was tagged"),
        }
        assert_check_after_kill(cli, root, leftovers);
        let digest = ok_stdout(&mut build_cmd(cli, root, project, "quick", &args));
        let digest = digest.trim().to_string();
        assert_eq!(
            built.get_or_insert(digest.clone()),
            &digest,
            "after {point}"
        );
        assert_eq!(tmp_entries(root), Vec::<String>::new(), "after {point}");
        assert!(tagged(root, KILLED_TAG));
        assert_consistent(cli, root);
    }
    built.unwrap()
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    root.join("blobs/sha256").join(&digest["sha256:".len()..])
}

/// The layer-blob digest of the first build-cache record that has a layer.
fn a_cached_layer_blob(root: &Path) -> String {
    for entry in fs::read_dir(root.join("cache/index")).unwrap() {
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(entry.unwrap().path()).unwrap()).unwrap();
        if let Some(digest) = record["layer"]["digest"].as_str() {
            return digest.to_string();
        }
    }
    panic!("no build-cache record with a layer");
}

#[test]
fn check_finds_and_repair_fixes_a_corrupt_blob_a_truncated_layer_and_a_dangling_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, project) = store_and_project(tmp.path());
    let reg = TestRegistry::start();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "base/busybox:v1", &[]);
    let remote = reg.image("base/busybox:v1");
    ok_stdout(flense(&root).args(["pull", "-q", &remote]));
    let built = build(&root, &project, "quick", &[]);
    assert_consistent(flense, &root);

    // A pulled layer blob with one byte flipped (same size).
    let pulled_layer = image.manifests[0].2[0].clone();
    let path = blob_path(&root, &pulled_layer);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    // An unpacked file of the busybox fixture cut short.
    let busybox_layers = support::unpacked::layers_of(&root, "localhost/busybox:latest");
    let diff_id = busybox_layers[0].1.clone();
    let layer_dir = support::unpacked::layer_dir(&root, &diff_id);
    let busybox = layer_dir.join("diff/bin/busybox");
    let file = fs::OpenOptions::new().write(true).open(&busybox).unwrap();
    file.set_len(100).unwrap();
    // A build-cache record whose layer blob is gone.
    let cached = a_cached_layer_blob(&root);
    fs::remove_file(blob_path(&root, &cached)).unwrap();

    let report = problems(flense, &root);
    assert!(
        report.contains(&format!("blob {pulled_layer}")) && report.contains("corrupt"),
        "{report}"
    );
    assert!(
        report.contains(&format!("layer {diff_id}"))
            && report.contains("bin/busybox has 100 bytes"),
        "{report}"
    );
    assert!(
        report.contains("build-cache record") && report.contains(&cached),
        "{report}"
    );

    let out = check(flense, &root, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_consistent(flense, &root);
    assert!(!layer_dir.exists(), "the truncated layer is still there");

    // The next pull and build fetch and make again what was deleted, identically.
    let digest = ok_stdout(flense(&root).args(["pull", "-q", &remote]));
    assert_eq!(digest.trim(), image.digest);
    assert!(blob_path(&root, &pulled_layer).is_file());
    assert_eq!(build(&root, &project, "quick", &[]), built);
    let out = ok_stdout(flense(&root).args(["run", "--image", &built]));
    assert_eq!(out, "HELLO\n");
    assert_consistent(flense, &root);
}

/// kill -9 of a build during its step's `sleep` leaves the step's scratch directory;
/// `check` reports only that, and the next build reclaims it. Returns that build's digest.
fn kill_a_build_and_rebuild(cli: Cli, root: &Path, project: &Path) -> String {
    let mut child = build_cmd(cli, root, project, "slow", &["--no-cache"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(&mut child, "a step directory", || {
        tmp_entries(root).iter().any(|n| n.starts_with("step-"))
    });
    kill9(child);
    assert!(!tmp_entries(root).is_empty());
    assert_only_leftovers(cli, root);
    let digest = ok_stdout(&mut build_cmd(cli, root, project, "slow", &["--no-cache"]));
    assert_eq!(tmp_entries(root), Vec::<String>::new());
    assert_consistent(cli, root);
    digest.trim().to_string()
}

#[test]
fn killed_builds_of_an_unprivileged_user_are_reclaimed_by_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = busybox_tar_for_test_user(tmp.path());
    let user_dir = tmp.path().join("user");
    let project = project(&user_dir);
    give_to_test_user(&user_dir);
    let root = user_dir.join("store");
    import_packed(user_flense, &root, &tar);
    kill_builds_at_each_point(user_flense, &root, &project);
    kill_a_build_and_rebuild(user_flense, &root, &project);
}

/// Diff-ID records (either way) whose layer blob is not stored.
fn records_without_blobs(root: &Path) -> Vec<String> {
    let mut stale = Vec::new();
    for entry in fs::read_dir(root.join("diffids/sha256")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !root.join("blobs/sha256").join(&name).exists() {
            stale.push(format!("diffids/sha256/{name}"));
        }
    }
    for entry in fs::read_dir(root.join("layer-blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let blob = fs::read_to_string(&path).unwrap();
        if !blob_path(root, blob.trim()).exists() {
            stale.push(path.display().to_string());
        }
    }
    stale
}

#[test]
fn kill_9_of_build_push_and_prune_at_each_point_is_recovered_from() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let project = project(tmp.path());
    import_packed(flense, &root, &rootfs_tar("busybox"));
    let built = kill_builds_at_each_point(flense, &root, &project);

    // kill -9 of a push whose first blob upload is stuck halfway.
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![Fault::StallRequest {
            method: "PATCH",
            path: "/blobs/uploads/".into(),
        }],
    );
    kill_when(
        flense(&root)
            .args(["push", KILLED_TAG])
            .arg(format!("{}/killed/app:1", proxy.addr)),
        "a stalled upload",
        || proxy.fired(0) == 1,
    );
    assert_consistent(flense, &root);
    let pushed = ok_stdout(
        flense(&root)
            .args(["push", KILLED_TAG])
            .arg(reg.image("killed/app:1")),
    );
    assert_eq!(pushed.trim(), built);
    assert_eq!(sha256(&reg.raw_manifest("killed/app:1")), built);

    // kill -9 of a prune that deleted the blobs of an image no name reaches any more
    // (the tag moved to a new build) but not yet their records and unpacked layers.
    fs::write(project.join("input.txt"), "bye\n").unwrap();
    let args = ["-t", KILLED_TAG];
    assert_ne!(build(&root, &project, "quick", &args), built);
    let unreached = blob_path(&root, &built);
    kill_at(flense(&root).arg("prune"), "prune-delete");
    assert!(!unreached.exists(), "the prune was killed before deleting");
    assert_consistent(flense, &root);
    let pruned = ok_stdout(flense(&root).arg("prune"));
    assert_eq!(
        records_without_blobs(&root),
        Vec::<String>::new(),
        "{pruned}"
    );
    assert_consistent(flense, &root);
    fs::write(project.join("input.txt"), "hello\n").unwrap();
    assert_eq!(build(&root, &project, "quick", &args), built);
    let out = ok_stdout(flense(&root).args(["run", "--image", &built]));
    assert_eq!(out, "HELLO\n");
}

#[test]
fn killed_builds_and_pulls_leave_leftovers_the_next_command_reclaims() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, project) = store_and_project(tmp.path());
    let uninterrupted = build(&root, &project, "slow", &[]);

    assert_eq!(
        kill_a_build_and_rebuild(flense, &root, &project),
        uninterrupted
    );

    // kill -9 during a layer download stuck halfway: the partial blob stays behind.
    let (reg, image, proxy) = stalling_registry(tmp.path());
    let pull = format!("{}/base/busybox:v1", proxy.addr);
    kill_when(
        flense(&root).args(["pull", "-q", &pull]),
        "a stalled download",
        || proxy.fired(0) == 1 && !tmp_entries(&root).is_empty(),
    );
    assert_only_leftovers(flense, &root);
    let digest = ok_stdout(flense(&root).args(["pull", "-q", &reg.image("base/busybox:v1")]));
    assert_eq!(digest.trim(), image.digest);
    assert_eq!(tmp_entries(&root), Vec::<String>::new());
    assert_consistent(flense, &root);
}

#[test]
fn kill_9_of_a_build_during_its_base_pull_is_recovered_from() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let (_reg, image, proxy) = stalling_registry(tmp.path());
    let project = tmp.path().join("pulled");
    fs::create_dir_all(project.join(".pipeline")).unwrap();
    let blubber = format!(
        "version: v4\nlives:\n  in: /srv/app\nvariants:\n  pulled:\n    base: {}/base/busybox:v1\n    builders:\n      - custom:\n          command: [sh, -c, \"echo pulled > out.txt\"]\n    entrypoint: [sh, -c, \"read -r l < out.txt && echo $l\"]\n",
        proxy.addr
    );
    fs::write(project.join(".pipeline/blubber.yaml"), blubber).unwrap();

    kill_when(
        &mut build_cmd(flense, &root, &project, "pulled", &[]),
        "a stalled download",
        || proxy.fired(0) == 1 && root.join("tmp").is_dir() && !tmp_entries(&root).is_empty(),
    );
    assert_only_leftovers(flense, &root);
    // The proxy stalls only once: the same build now pulls the base and runs.
    let built = build(&root, &project, "pulled", &[]);
    assert_eq!(tmp_entries(&root), Vec::<String>::new());
    assert!(
        blob_path(&root, &image.digest).is_file(),
        "the base's manifest"
    );
    assert_consistent(flense, &root);
    let out = ok_stdout(flense(&root).args(["run", "--image", &built]));
    assert_eq!(out, "pulled\n");
}

#[test]
fn builds_succeed_while_prune_runs_in_a_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, project) = store_and_project(tmp.path());
    let spawn = |variant: &str| {
        build_cmd(flense, &root, &project, variant, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let builds = [spawn("slow"), spawn("other")];
    let mut prunes = 0;
    let mut running = builds.len();
    let mut builds = builds.map(Some);
    let mut outputs = Vec::new();
    while running > 0 {
        ok_stdout(flense(&root).arg("prune"));
        prunes += 1;
        for slot in builds.iter_mut() {
            let finished = slot
                .as_mut()
                .is_some_and(|c| c.try_wait().unwrap().is_some());
            if finished {
                let out = slot.take().unwrap().wait_with_output().unwrap();
                assert!(out.status.success(), "{}", text(&out.stderr));
                let digest = text(&out.stdout).trim().to_string();
                outputs.push(ok_stdout(flense(&root).args(["run", "--image", &digest])));
                running -= 1;
            }
        }
    }
    assert!(prunes > 0);
    outputs.sort();
    assert_eq!(outputs, ["other\n", "slow\n"]);
    ok_stdout(flense(&root).arg("prune"));
    assert_consistent(flense, &root);
}

/// A tmpfs mounted on a temp directory, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: PathBuf, bytes: u64) -> Self {
        fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs (tests run as root)");
        SmallDisk(dir)
    }

    fn used(&self) -> u64 {
        let stat = nix::sys::statvfs::statvfs(&self.0).unwrap();
        (stat.blocks() - stat.blocks_free()) * stat.fragment_size()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_pull_that_does_not_fit_fails_cleanly_and_rmi_prune_give_the_space_back() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start();
    let first = simple_image(&tmp.path().join("first"), "v1");
    let second = simple_image(&tmp.path().join("second"), "v2");
    first.push_with_skopeo(&reg, "small/first:v1", &[]);
    second.push_with_skopeo(&reg, "small/second:v2", &[]);
    let layer = &second.manifests[0].2[0];
    let layer_size = fs::metadata(second.layout.join("blobs/sha256").join(&layer[7..]))
        .unwrap()
        .len();
    // Room for one image's blobs, not for two.
    let disk = SmallDisk::mount(tmp.path().join("disk"), layer_size * 3 / 2 + (128 << 10));
    let root = disk.0.join("store");
    let pull = |name: &str| {
        output(
            flense(&root)
                .args(["pull", "-q", "--no-unpack"])
                .arg(reg.image(name)),
        )
    };
    let out = pull("small/first:v1");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = pull("small/second:v2");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("No space left on device") && err.contains(layer.as_str()),
        "{err}"
    );
    assert_consistent(flense, &root);
    assert_eq!(tmp_entries(&root), Vec::<String>::new());

    let before = disk.used();
    ok_stdout(flense(&root).args(["rmi", &reg.image("small/first:v1")]));
    assert!(disk.used() + layer_size <= before, "rmi gave no space back");
    let out = pull("small/second:v2");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_consistent(flense, &root);
}
