//! `flense completion bash|zsh|fish` and `flense man DIR`: the bash script, sourced in
//! bash and driven as bash's programmable completion drives it, completes subcommands,
//! option values, variant names of the project's blubber.yaml and pipeline names.

mod support;

use std::path::Path;
use std::process::Command;

use support::cli::{flense_bin, ok_stdout};

const BLUBBER: &str =
    "version: v4\nbase: x\nvariants:\n  test: {}\n  production: {}\n  build-tools: {}\n";
const PIPELINES: &str = "pipelines:\n  unit:\n    stages: []\n  publish:\n    stages: []\n";

/// What `_flense` puts in COMPREPLY for the command line `words` (a bash array
/// literal; the last word is the one completed), run in `dir`.
fn complete(dir: &Path, words: &str) -> Vec<String> {
    let script = format!(
        "source <(flense completion bash) && COMP_WORDS=({words}) && \
         COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)) && _flense && printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let path = format!(
        "{}:{}",
        flense_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = ok_stdout(
        Command::new("bash")
            .args(["-c", &script])
            .current_dir(dir)
            .env("PATH", path),
    );
    let mut names: Vec<String> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[test]
fn bash_completes_subcommands_options_variants_and_pipelines() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    std::fs::create_dir_all(project.join(".pipeline")).unwrap();
    std::fs::write(project.join(".pipeline/blubber.yaml"), BLUBBER).unwrap();
    std::fs::write(project.join(".pipeline/config.yaml"), PIPELINES).unwrap();
    std::fs::write(
        tmp.path().join("other.yaml"),
        "version: v4\nvariants:\n  only: {}\n",
    )
    .unwrap();

    assert_eq!(complete(&project, "flense bu"), ["build"]);
    let top = complete(&project, "flense ''");
    assert!(top.contains(&"pipeline".to_string()) && top.contains(&"completion".to_string()));
    assert!(
        !top.iter().any(|w| w == "__complete" || w == "man"),
        "{top:?}"
    );
    assert_eq!(
        complete(&project, "flense build --pull ''"),
        ["always", "missing", "never"]
    );

    // Variant names, from .pipeline/blubber.yaml or the file given with -f.
    assert_eq!(
        complete(&project, "flense build ''"),
        ["build-tools", "production", "test"]
    );
    assert_eq!(
        complete(&project, "flense run --pull never p"),
        ["production"]
    );
    assert_eq!(
        complete(&project, "flense build -f ../other.yaml ''"),
        ["only"]
    );
    assert_eq!(
        complete(tmp.path(), "flense plan -f other.yaml ''"),
        ["only"]
    );
    assert_eq!(
        complete(&project, "flense build --file = ../other.yaml ''"),
        ["only"]
    );
    assert!(!complete(&project, "flense build --pull = ''").contains(&"test".to_string()));
    assert_eq!(complete(tmp.path(), "flense build -C project t"), ["test"]);
    // After the variant come options, not more variants.
    assert!(complete(&project, "flense build test --no-c").contains(&"--no-cache".to_string()));

    // Pipeline names, from .pipeline/config.yaml.
    assert_eq!(
        complete(&project, "flense pipeline ''"),
        ["publish", "unit"]
    );
    assert_eq!(
        complete(tmp.path(), "flense pipeline -C project u"),
        ["unit"]
    );
}

#[test]
fn zsh_and_fish_scripts_and_man_pages() {
    let zsh = ok_stdout(Command::new(flense_bin()).args(["completion", "zsh"]));
    assert!(zsh.starts_with("#compdef flense"), "{zsh}");
    let fish = ok_stdout(Command::new(flense_bin()).args(["completion", "fish"]));
    assert!(fish.contains("complete -c flense"), "{fish}");

    let tmp = tempfile::tempdir().unwrap();
    let man = tmp.path().join("man1");
    ok_stdout(Command::new(flense_bin()).arg("man").arg(&man));
    let build = std::fs::read_to_string(man.join("flense-build.1")).unwrap();
    assert!(build.contains(".TH flense-build 1"), "{build}");
    assert!(build.contains("\\-\\-pull"), "{build}");
    assert!(man.join("flense.1").is_file() && man.join("flense-export-argo.1").is_file());
    assert!(!man.join("flense-__complete.1").exists());
}
