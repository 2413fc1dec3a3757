//! The builders (§5.5–§5.8): node, php, python and custom, standalone or in `builders`.

use crate::config::{
    self, effective_destination, Artifact, BuilderEntry, Command, CustomBuilder, NodeConfig,
    PhpConfig, PythonConfig,
};

use super::copies::emit_requirements;
use super::instruction::{Cache, CacheAccess, EnvVar, Mount, MountSource, Phase};
use super::quote::shell_line;
use super::stage::StageState;
use super::users::phase_owner;
use super::{PlanError, StageEnv};

fn non_empty(requirements: &Option<Vec<Artifact>>) -> Option<&[Artifact]> {
    requirements.as_deref().filter(|r| !r.is_empty())
}

fn requirements(
    state: &mut StageState,
    env: &StageEnv,
    requirements: &[Artifact],
) -> Result<(), PlanError> {
    let owner = phase_owner(state, env.variant)?;
    emit_requirements(state, env, requirements, owner);
    Ok(())
}

/// Emits one `builders[]` entry for the current phase.
pub fn entry(
    state: &mut StageState,
    env: &StageEnv,
    entry: &BuilderEntry,
) -> Result<(), PlanError> {
    match entry {
        BuilderEntry::Custom(b) => custom(state, env, b),
        BuilderEntry::Node(n) => node(state, env, n),
        BuilderEntry::Php(p) => php(state, env, p),
        BuilderEntry::Python(p) => python(state, env, p),
    }
}

/// `node` (§5.5).
pub fn node(state: &mut StageState, env: &StageEnv, node: &NodeConfig) -> Result<(), PlanError> {
    let reqs = non_empty(&node.requirements);
    let production = node.env == "production";
    match state.phase {
        Phase::PreInstall => {
            let Some(reqs) = reqs else { return Ok(()) };
            requirements(state, env, reqs)?;
            let npm = if node.use_npm_ci == Some(true) {
                "npm ci"
            } else {
                "npm install"
            };
            let args: Vec<String> = if production {
                vec!["--only=production".into()]
            } else {
                vec![]
            };
            state.run(shell_line(npm, &args));
            if production {
                if node.allow_dedupe_failure == Some(true) {
                    state.run(
                        r#"npm dedupe || echo "WARNING: npm dedupe failed, continuing anyways""#
                            .into(),
                    );
                } else {
                    state.run("npm dedupe".into());
                }
            }
        }
        Phase::PostInstall if !node.env.is_empty() || reqs.is_some() => {
            state.env(vec![EnvVar::new("NODE_ENV", node.env.clone())]);
        }
        _ => {}
    }
    Ok(())
}

/// `php` (§5.6).
pub fn php(state: &mut StageState, env: &StageEnv, php: &PhpConfig) -> Result<(), PlanError> {
    if state.phase != Phase::PreInstall {
        return Ok(());
    }
    let Some(reqs) = non_empty(&php.requirements) else {
        return Ok(());
    };
    requirements(state, env, reqs)?;
    let mut args = vec!["--no-scripts".to_string()];
    if php.production == Some(true) {
        args.push("--no-dev".into());
    }
    state.run(shell_line("composer install", &args));
    Ok(())
}

/// A Python package requirement: a version starting with a digit gets `==`.
fn package_spec(package: &str, version: &str) -> String {
    if version.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{package}=={version}")
    } else {
        format!("{package}{version}")
    }
}

fn with_default(package: &str, version: &str, default: &str) -> String {
    if version.is_empty() {
        default.to_string()
    } else {
        package_spec(package, version)
    }
}

/// `python` (§5.7).
pub fn python(state: &mut StageState, env: &StageEnv, py: &PythonConfig) -> Result<(), PlanError> {
    if !py.is_enabled() {
        return Ok(());
    }
    let exe = py.version.as_str();
    let reqs = py.requirements.as_deref().unwrap_or(&[]);
    let poetry = !py.poetry.version.is_empty();
    let args = |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_string()).collect() };
    match state.phase {
        Phase::PreInstall => {
            let venv = py.venv_path();
            if !reqs.is_empty() {
                requirements(state, env, reqs)?;
            }
            let mut venv_args = args(&["-m", "venv", venv]);
            if py.use_system_site_packages == Some(true) {
                venv_args.push("--system-site-packages".into());
            }
            state.run(shell_line(exe, &venv_args));
            state.env(vec![
                EnvVar::new("PATH", format!("{venv}/bin:$PATH")),
                EnvVar::new("VIRTUAL_ENV", venv),
            ]);
            // Quirk Q7 fixed: a short `version` (e.g. `python`) does not panic.
            let pip_default = if exe.starts_with("python2") {
                "pip<21"
            } else {
                "pip"
            };
            let setuptools =
                with_default("setuptools", &py.setuptools_version, "setuptools!=60.9.0");
            let wheel = with_default("wheel", &py.wheel_version, "wheel");
            let tox = with_default("tox", &py.tox_version, "tox");
            let pip = with_default("pip", &py.pip_version, pip_default);
            let install = args(&["-m", "pip", "install", "-U"]);
            let mut first = install.clone();
            first.push(setuptools);
            let mut second = install.clone();
            second.extend([wheel, tox, pip]);
            state.run_all(vec![shell_line(exe, &first), shell_line(exe, &second)]);
            if poetry {
                state.env(vec![EnvVar::new(
                    "POETRY_VIRTUALENVS_PATH",
                    "/opt/lib/poetry",
                )]);
                let mut poetry_install = install.clone();
                poetry_install.push(format!("poetry{}", py.poetry.version));
                state.run(shell_line(exe, &poetry_install));
                state.run(shell_line("mkdir -p", &args(&["/opt/lib/poetry"])));
                let mut poetry_args = args(&["install", "--no-root"]);
                if !py.poetry.only.is_empty() {
                    poetry_args.extend(args(&["--only", &py.poetry.only]));
                }
                if !py.poetry.without.is_empty() {
                    poetry_args.extend(args(&["--without", &py.poetry.without]));
                }
                if py.poetry.only.is_empty()
                    && py.poetry.without.is_empty()
                    && py.poetry.devel != Some(true)
                {
                    poetry_args.push("--no-dev".into());
                }
                state.run(shell_line("poetry", &poetry_args));
            } else if !reqs.is_empty() {
                let mut pip_args = args(&["-m", "pip", "install"]);
                if py.no_deps == Some(true) {
                    pip_args.push("--no-deps".into());
                }
                for r in reqs {
                    pip_args.push("-r".into());
                    pip_args.push(effective_destination(r));
                }
                state.run(shell_line(exe, &pip_args));
            }
        }
        Phase::PostInstall if !poetry && py.no_deps == Some(true) => {
            state.run(shell_line(exe, &args(&["-m", "pip", "check"])));
        }
        _ => {}
    }
    Ok(())
}

/// The shell line of a builder command (§2.4): the array form quotes each argument after
/// the first; the string form runs verbatim.
pub fn command_line(command: &Command) -> String {
    match command {
        Command::Exec(argv) => match argv.split_first() {
            Some((first, rest)) => shell_line(first, rest),
            None => String::new(),
        },
        Command::Shell(line) => line.clone(),
    }
}

fn mounts(state: &StageState, env: &StageEnv, builder: &CustomBuilder) -> Vec<Mount> {
    let expand_opt = |s: &str| (!s.is_empty()).then(|| state.expand(s));
    builder
        .mounts
        .iter()
        .flatten()
        .map(|m| Mount {
            from: if m.from == config::LOCAL {
                MountSource::Local
            } else if env.is_variant(&m.from) {
                MountSource::Variant(m.from.clone())
            } else {
                MountSource::Image(m.from.clone())
            },
            destination: expand_opt(&m.destination).unwrap_or_else(|| ".".into()),
            source: expand_opt(&m.source),
        })
        .collect()
}

fn caches(state: &StageState, builder: &CustomBuilder) -> Result<Vec<Cache>, PlanError> {
    let lives = state.owner("$LIVES_UID", "$LIVES_GID")?;
    let owner = (lives.uid != 0 || lives.gid != 0).then_some((lives.uid, lives.gid));
    Ok(builder
        .caches
        .iter()
        .flatten()
        .map(|c| {
            let destination = state.expand(&c.destination);
            Cache {
                id: if c.id.is_empty() {
                    destination.clone()
                } else {
                    c.id.clone()
                },
                destination,
                access: match c.access {
                    config::CacheAccess::Shared => CacheAccess::Shared,
                    config::CacheAccess::Locked => CacheAccess::Locked,
                    config::CacheAccess::Private => CacheAccess::Private,
                },
                owner,
            }
        })
        .collect())
}

/// `builder` / `builders[].custom` (§5.8).
pub fn custom(
    state: &mut StageState,
    env: &StageEnv,
    builder: &CustomBuilder,
) -> Result<(), PlanError> {
    if state.phase != Phase::PreInstall {
        return Ok(());
    }
    if let Some(reqs) = non_empty(&builder.requirements) {
        requirements(state, env, reqs)?;
    }
    let script = builder.script.as_deref().unwrap_or("");
    let command = builder.command.as_ref().filter(|c| !c.is_empty());
    if script.is_empty() && command.is_none() {
        return Ok(());
    }
    let mounts = mounts(state, env, builder);
    for m in &mounts {
        if let MountSource::Variant(v) = &m.from {
            state.depend_on(v);
        }
    }
    let caches = caches(state, builder)?;
    if !script.is_empty() {
        let script = if script.starts_with("#!") {
            script.to_string()
        } else {
            format!("#!/bin/sh\n{script}")
        };
        state.run_script(script, mounts, caches);
    } else if let Some(command) = command {
        state.run_with(command_line(command), mounts, caches);
    }
    Ok(())
}
