//! Builders on the `bookworm` fixture, through `flense build` and `flense run`: an apt
//! variant, custom builders (array command, string command with a source mount and a
//! cache, inline script), and a Python variant (venv + pip, python3 from apt).
//! One store for the scenario, so the base is imported once.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::cli::{flense, ok_stdout, output};
use support::fixtures::import_fixture;

const BLUBBER: &str = r#"version: v4
base: localhost/bookworm:latest
variants:
  tools:
    apt:
      packages: [jq]
    entrypoint: [jq, --version]
  custom:
    builders:
      - custom:
          requirements: [input.txt]
          command: [sh, -c, "tr a-z A-Z < input.txt > upper.txt"]
      - custom:
          command: "wc -l < /mnt/ctx/input.txt > lines.txt && date +%s >> /home/somebody/.cache/flense/runs"
          mounts:
            - from: local
              destination: /mnt/ctx
          caches: [/home/somebody/.cache/flense]
      - custom:
          script: |
            set -e
            n=$((2 + 3))
            echo "sum=$n" > sum.txt
    entrypoint: [cat, upper.txt, lines.txt, sum.txt]
  python:
    apt:
      packages: [python3-venv]
    python:
      version: python3
      requirements: [requirements.txt]
    copies: [local]
    entrypoint: [python3, hello.py]
"#;

fn project(dir: &Path) -> PathBuf {
    let p = dir.join("builders");
    fs::create_dir_all(p.join(".pipeline")).unwrap();
    fs::write(p.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    fs::write(p.join("input.txt"), "hello\nworld\n").unwrap();
    fs::write(p.join("requirements.txt"), "six==1.16.0\n").unwrap();
    fs::write(
        p.join("hello.py"),
        "import sys, six\nprint('python', sys.prefix, 'six', six.__version__)\n",
    )
    .unwrap();
    p
}

fn run(root: &Path, project: &Path, variant: &str) -> Output {
    output(flense(root).args(["run", variant, "-C"]).arg(project))
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn layer_paths(root: &Path, reference: &str) -> Vec<String> {
    let image: Value =
        serde_json::from_str(&ok_stdout(flense(root).args(["inspect", reference]))).unwrap();
    let mut paths = Vec::new();
    for layer in image["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
    {
        let digest = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let file = fs::File::open(root.join("blobs/sha256").join(digest)).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for e in tar.entries().unwrap() {
            paths.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
    }
    paths
}

#[test]
fn apt_custom_and_python_builders() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    import_fixture(&root, "bookworm");
    let p = project(tmp.path());

    // apt, as root in the Privileged phase.
    let out = stdout_of(&run(&root, &p, "tools"));
    assert!(out.starts_with("jq-"), "{out}");
    let image: Value = serde_json::from_str(&ok_stdout(
        flense(&root).args(["inspect", "builders:tools"]),
    ))
    .unwrap();
    let env = image["config"]["config"]["Env"].to_string();
    assert!(env.contains("DEBIAN_FRONTEND=noninteractive"), "{env}");

    // Custom builders: array command, string command with a mount and a cache, script.
    let out = stdout_of(&run(&root, &p, "custom"));
    assert_eq!(out, "HELLO\nWORLD\n2\nsum=5\n");
    let paths = layer_paths(&root, "builders:custom");
    assert!(
        paths.iter().any(|p| p.ends_with("srv/app/lines.txt")),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("mnt/ctx/input.txt") && !p.contains(".cache/flense/runs")),
        "mounts and caches stay out of the layers: {paths:?}"
    );
    // The cache persisted in the store: one run recorded.
    let caches = root.join("cache/mounts");
    let runs: Vec<_> = walkdir::WalkDir::new(&caches)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "runs")
        .collect();
    assert_eq!(runs.len(), 1, "cache dirs under {}", caches.display());

    // Python: a venv in /opt/lib/venv and pip from PyPI, as the lives user.
    let out = stdout_of(&run(&root, &p, "python"));
    assert!(out.contains("python /opt/lib/venv six 1.16.0"), "{out}");
    // The SBOM lists what pip installed (its dist-info) and what apt did.
    let sbom = ok_stdout(flense(&root).args(["sbom", "builders:python"]));
    assert!(sbom.contains("\"pkg:pypi/six@1.16.0\""), "{sbom}");
    assert!(sbom.contains("\"pkg:deb/debian/python3-venv@"), "{sbom}");
}
