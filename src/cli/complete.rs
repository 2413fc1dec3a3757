//! Shell completion and man pages from the clap definitions: `flense completion
//! bash|zsh|fish` prints a script (clap_complete); in bash, variant names (`build`,
//! `run`, `dockerfile`, `plan`) and pipeline names (`pipeline`) complete from the
//! project's files through the hidden `flense __complete CWORD WORDS...`; the hidden
//! `flense man DIR` writes the man pages (clap_mangen).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

/// Subcommands of this area.
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Print a shell completion script: `source <(flense completion bash)`, or save it
    /// as /usr/share/bash-completion/completions/flense (zsh: a `_flense` file in
    /// $fpath; fish: ~/.config/fish/completions/flense.fish).
    Completion(CompletionArgs),
    /// Write the man pages (flense.1 and one per subcommand) into DIR.
    #[command(hide = true)]
    Man {
        /// Directory for the pages (created when missing).
        dir: PathBuf,
    },
    /// Names to complete at word CWORD of WORDS (for the bash script): variants or
    /// pipelines, one a line; exit 1 when the word is none of those.
    #[command(name = "__complete", hide = true)]
    DynamicNames {
        /// Index of the word being completed.
        cword: usize,
        /// The command line's words, the program first.
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        words: Vec<String>,
    },
}

/// Arguments of `flense completion`.
#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells with a completion script.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// bash (with variant and pipeline names).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

/// Runs one subcommand of this area; `cli` is the whole command line definition.
pub fn run(cmd: Commands, mut cli: clap::Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Commands::Completion(args) => {
            print_script(args.shell, &mut cli);
            Ok(ExitCode::SUCCESS)
        }
        Commands::Man { dir } => {
            write_man_pages(&cli, &dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::DynamicNames { cword, words } => {
            cli.build();
            Ok(match dynamic_names(&cli, cword, &words) {
                Some(names) => {
                    let mut out = std::io::stdout().lock();
                    for name in names {
                        let _ = writeln!(out, "{name}");
                    }
                    ExitCode::SUCCESS
                }
                None => ExitCode::from(1),
            })
        }
    }
}

/// The bash function that asks `flense __complete` first and falls back to clap's
/// static completion (renamed `_flense_static`).
const BASH_NAMES: &str = r#"
_flense() {
    local names
    if names=$("${COMP_WORDS[0]}" __complete "$COMP_CWORD" -- "${COMP_WORDS[@]}" 2>/dev/null); then
        local IFS=$'\n'
        COMPREPLY=($(compgen -W "$names" -- "${COMP_WORDS[COMP_CWORD]}"))
        return 0
    fi
    # What bash passes to a completion function, also when it is called directly.
    _flense_static "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
}
"#;

fn print_script(shell: Shell, cli: &mut clap::Command) {
    use clap_complete::shells;
    let mut script = Vec::new();
    match shell {
        Shell::Bash => clap_complete::generate(shells::Bash, cli, "flense", &mut script),
        Shell::Zsh => clap_complete::generate(shells::Zsh, cli, "flense", &mut script),
        Shell::Fish => clap_complete::generate(shells::Fish, cli, "flense", &mut script),
    }
    let mut script = String::from_utf8_lossy(&script).into_owned();
    if shell == Shell::Bash {
        script = hide_hidden_subcommands(&script).replacen("_flense() {", "_flense_static() {", 1);
        script.push_str(BASH_NAMES);
    }
    print!("{script}");
}

/// clap_complete's bash script offers hidden subcommands too: drops `man` and
/// `__complete` from the top level's word list.
fn hide_hidden_subcommands(script: &str) -> String {
    script
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("opts=") && line.contains(" __complete") {
                line.split(' ')
                    .filter(|w| *w != "man" && *w != "__complete")
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                line.to_string()
            }
        })
        .map(|line| line + "\n")
        .collect()
}

/// Writes `flense.1` and `flense-<subcommand>.1` (nested ones too) into `dir`.
fn write_man_pages(cli: &clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cli.clone(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))
}

/// Subcommands whose first positional argument is a variant.
const VARIANT_COMMANDS: [&str; 4] = ["build", "run", "dockerfile", "plan"];

/// The variant or pipeline names that fit word `cword` of `words`, or `None` when that
/// word is not a variant or pipeline name (an option, an option's value, another
/// argument).
fn dynamic_names(cli: &clap::Command, cword: usize, words: &[String]) -> Option<Vec<String>> {
    let current = words.get(cword)?;
    if current.starts_with('-') {
        return None;
    }
    let before = words.get(1..cword)?;
    let (at, sub) = before.iter().enumerate().find_map(|(i, w)| {
        let known = !w.starts_with('-') && cli.find_subcommand(w).is_some();
        known.then(|| (i, cli.find_subcommand(w).expect("checked")))
    })?;
    let mut option_values: Vec<(&str, &str)> = Vec::new();
    let mut positionals = 0;
    let mut words_after = before[at + 1..].iter();
    while let Some(word) = words_after.next() {
        if word == "--" {
            return None;
        }
        if let Some(option) = word.strip_prefix('-').filter(|o| !o.is_empty()) {
            if option.contains('=') || !takes_value(sub, option) {
                continue;
            }
            // bash splits `--file=x` into `--file`, `=`, `x`.
            let value = match words_after.next() {
                Some(eq) if eq == "=" => words_after.next(),
                value => value,
            };
            match value {
                Some(value) => option_values.push((option, value)),
                None => return None, // the current word is this option's value
            }
        } else {
            positionals += 1;
        }
    }
    let value_of = |short: &str, long: &str| {
        option_values
            .iter()
            .rev()
            .find(|(o, _)| *o == short || *o == long)
            .map(|(_, v)| PathBuf::from(v))
    };
    match sub.get_name() {
        name if VARIANT_COMMANDS.contains(&name) && positionals == 0 => {
            let file = value_of("f", "-file").unwrap_or_else(|| {
                value_of("C", "-context")
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join(flense::config::DEFAULT_PATH)
            });
            let config = flense::config::load(&file).ok()?;
            Some(
                config
                    .variant_names()
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            )
        }
        "pipeline" => {
            let file = value_of("f", "-file").unwrap_or_else(|| {
                value_of("C", "-directory")
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join(".pipeline/config.yaml")
            });
            pipeline_names(&file)
        }
        _ => None,
    }
}

/// Whether option `option` (without its first `-`: `f`, `-file`) of `cmd` takes a value.
fn takes_value(cmd: &clap::Command, option: &str) -> bool {
    cmd.get_arguments().any(|arg| {
        let named = match option.strip_prefix('-') {
            Some(long) => arg.get_long() == Some(long),
            None => option
                .chars()
                .last()
                .is_some_and(|c| arg.get_short() == Some(c)),
        };
        named && arg.get_action().takes_values()
    })
}

/// The pipeline names of a config.yaml, in file order (without validating it).
fn pipeline_names(file: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(file).ok()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    Some(
        doc.get("pipelines")?
            .as_mapping()?
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
    )
}
