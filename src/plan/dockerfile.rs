//! Renders a [`Plan`] as Dockerfile-equivalent text, in the format of Blubber's last
//! Dockerfile compiler (§6): `FROM img AS stage`, `USER x`, `ENV K="v"`, `ARG K="str"` or
//! `ARG K=123`, `RUN <line>`, `COPY [--chown=u:g] [--from=v] ["src", ..., "dest"]`,
//! `WORKDIR "path"`, `ENTRYPOINT ["a", "b"]`, a blank line after each stage, and the
//! final `LABEL` after the last stage.
//!
//! Instructions that compiler never had are written in current Dockerfile syntax:
//! `RUN --mount=...` for builder mounts and caches, heredocs for `File` and `RunScript`,
//! and `COPY --exclude=...` for excludes.

use super::instruction::{Cache, CopySpec, EnvVar, Instruction, Mount, MountSource, RunContext};
use super::quote::go_quote;
use super::Plan;

/// The Dockerfile-equivalent text of a whole plan (every stage, then the labels).
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for stage in &plan.stages {
        for step in &stage.steps {
            out.push_str(&render_instruction(&step.instruction));
            out.push('\n');
        }
        out.push('\n');
    }
    if !plan.labels.is_empty() {
        out.push_str(&render_instruction(&Instruction::Label {
            definitions: plan.labels.clone(),
        }));
        out.push('\n');
    }
    out
}

/// One instruction as Dockerfile text, without the trailing newline (heredoc forms span
/// several lines).
pub fn render_instruction(instruction: &Instruction) -> String {
    match instruction {
        Instruction::Base { image, stage } => {
            format!(
                "FROM {} AS {}",
                image.as_deref().unwrap_or("scratch"),
                stage
            )
        }
        Instruction::Arg { name, default, .. } => match default {
            super::ArgDefault::Str(s) => format!("ARG {name}={}", go_quote(s)),
            super::ArgDefault::Uint(n) => format!("ARG {name}={n}"),
        },
        Instruction::Env { definitions, .. } => format!("ENV {}", definitions_text(definitions)),
        Instruction::User { name, .. } => format!("USER {name}"),
        Instruction::WorkingDirectory { path, .. } => format!("WORKDIR {}", go_quote(path)),
        Instruction::Run {
            command, context, ..
        } if command.contains('\n') => {
            // A multi-line string-form command: a heredoc keeps the Dockerfile parseable
            // and runs the text through the default shell, like `/bin/sh -c`.
            format!("RUN {}{}", mount_flags(context), heredoc(command, ""))
        }
        Instruction::Run {
            command, context, ..
        } => format!("RUN {}{}", mount_flags(context), command),
        Instruction::RunAll {
            commands, context, ..
        } => format!("RUN {}{}", mount_flags(context), commands.join(" && ")),
        Instruction::RunScript {
            script, context, ..
        } => format!("RUN {}{}", mount_flags(context), heredoc(script, "")),
        Instruction::Copy(copy) => format!("COPY {}", copy_text(copy, None)),
        Instruction::CopyFrom { from, copy, .. } => {
            format!("COPY {}", copy_text(copy, Some(from.name())))
        }
        Instruction::File {
            path,
            content,
            mode,
        } => {
            format!(
                "COPY --chmod={mode:04o} {}",
                heredoc(content, &format!(" {path}"))
            )
        }
        Instruction::EntryPoint { command } => format!("ENTRYPOINT {}", json_array(command)),
        Instruction::Label { definitions } => format!("LABEL {}", definitions_text(definitions)),
    }
}

/// `K="v" K2="v2"`.
fn definitions_text(definitions: &[EnvVar]) -> String {
    definitions
        .iter()
        .map(|d| format!("{}={}", d.name, go_quote(&d.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `["a", "b"]` with Go quoting.
fn json_array(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// `[--chown=u:g] [--from=v] [--exclude=p]... ["src", ..., "dest"]`.
fn copy_text(copy: &CopySpec, from: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(owner) = &copy.chown {
        text.push_str(&format!("--chown={}:{} ", owner.user, owner.group));
    }
    if let Some(from) = from {
        text.push_str(&format!("--from={from} "));
    }
    for pattern in &copy.exclude {
        text.push_str(&format!("--exclude={pattern} "));
    }
    let mut items = copy.sources.clone();
    items.push(copy.destination.clone());
    text.push_str(&json_array(&items));
    text
}

/// `--mount=...` flags (each followed by a space) for a run's mounts and caches.
fn mount_flags(context: &RunContext) -> String {
    let mut text = String::new();
    for mount in &context.mounts {
        text.push_str(&mount_flag(mount));
        text.push(' ');
    }
    for cache in &context.caches {
        text.push_str(&cache_flag(cache));
        text.push(' ');
    }
    text
}

fn mount_flag(mount: &Mount) -> String {
    let mut flag = String::from("--mount=type=bind");
    match &mount.from {
        MountSource::Local => {}
        other => flag.push_str(&format!(",from={}", other.name())),
    }
    if let Some(source) = &mount.source {
        flag.push_str(&format!(",source={source}"));
    }
    flag.push_str(&format!(",target={},rw", mount.destination));
    flag
}

fn cache_flag(cache: &Cache) -> String {
    let mut flag = format!(
        "--mount=type=cache,target={},id={},sharing={}",
        cache.destination,
        cache.id,
        cache.access.as_str()
    );
    if let Some((uid, gid)) = cache.owner {
        flag.push_str(&format!(",uid={uid},gid={gid}"));
    }
    flag
}

/// A heredoc (`<<'EOF'`, then `rest_of_line`, then `text` and `EOF` on their own lines)
/// with a delimiter that no line of `text` equals. Text that does not end with a newline
/// gets one (heredocs cannot express its absence).
fn heredoc(text: &str, rest_of_line: &str) -> String {
    let mut delimiter = String::from("EOF");
    let mut n = 0;
    while text.lines().any(|line| line == delimiter) {
        n += 1;
        delimiter = format!("EOF{n}");
    }
    let mut out = format!("<<'{delimiter}'{rest_of_line}\n{text}");
    if !text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&delimiter);
    out
}
