//! The real executor (`flense build`/`run`/`push` as child processes) and the pretend
//! one used by `--dry-run`.

use std::path::PathBuf;
use std::process::Command;

use sha2::{Digest, Sha256};

use super::super::error::StepError;
use super::super::output::StageLog;
use super::{stream, BuildRequest, CopyRequest, Executor, RunOutcome, RunRequest, ServiceRequest};
use crate::builder::images::PullPolicy;

/// Drives the `flense` binary (`build`, `run`, `push`) as child processes.
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    /// The `flense` binary (normally `std::env::current_exe()`).
    pub program: PathBuf,
    /// `--root` to pass on.
    pub root: Option<PathBuf>,
    /// Extra `flense run` options (e.g. `--network host`).
    pub run_options: Vec<String>,
    /// Extra `flense build` options (e.g. `--cache-from REF`).
    pub build_options: Vec<String>,
    /// `flense pipeline --pull`: the pull policy of every build, over the stages'
    /// `imagePullPolicy`.
    pub pull: Option<PullPolicy>,
}

impl ProcessExecutor {
    /// The command an image runs with `arguments`: its entrypoint plus the arguments, or
    /// plus its `Cmd` when there are none (read with `flense inspect`).
    fn program_of(&self, image: &str, arguments: &[String]) -> Result<Vec<String>, StepError> {
        let out = self
            .command("inspect")
            .arg(image)
            .output()
            .map_err(|e| inspect_error(image, e))?;
        if !out.status.success() {
            return Err(StepError::Failed(format!(
                "flense inspect {image} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| inspect_error(image, e))?;
        let list = |key: &str| -> Vec<String> {
            doc["config"]["config"][key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut program = list("Entrypoint");
        if arguments.is_empty() {
            program.extend(list("Cmd"));
        } else {
            program.extend(arguments.iter().cloned());
        }
        if program.is_empty() {
            return Err(StepError::Failed(format!(
                "image {image} has no entrypoint or command to run"
            )));
        }
        Ok(program)
    }

    fn command(&self, verb: &str) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some(r) = &self.root {
            cmd.arg("--root").arg(r);
        }
        cmd.arg(verb);
        cmd
    }
}

impl Executor for ProcessExecutor {
    fn build(&self, req: &BuildRequest, log: &StageLog) -> Result<String, StepError> {
        let mut cmd = self.command("build");
        cmd.arg(&req.variant)
            .arg("-f")
            .arg(&req.blubberfile)
            .arg("-C")
            .arg(&req.context)
            .arg("--tag")
            .arg(&req.local_name)
            .arg("--quiet")
            .args(&self.build_options);
        if let Some(policy) = self.pull.or(req.pull) {
            cmd.arg(format!("--pull={policy}"));
        }
        for (k, v) in &req.labels {
            cmd.arg("--label").arg(format!("{k}={v}"));
        }
        log.line(&format!("$ {}", render(&cmd)));
        let (code, stdout) = stream(cmd, log, 0, true)?;
        for l in &stdout {
            log.line(l);
        }
        if code != 0 {
            return Err(StepError::Failed(format!(
                "failed to build image: flense build exited with {code}"
            )));
        }
        let digest = stdout
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .ok_or("failed to build image: flense build printed no digest")?;
        let hex = digest.rsplit(':').next().unwrap_or(digest);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StepError::Failed(format!(
                "failed to build image: unexpected digest '{digest}'"
            )));
        }
        Ok(hex.to_string())
    }

    fn run(&self, req: &RunRequest, log: &StageLog) -> Result<RunOutcome, StepError> {
        let mut cmd = self.command("run");
        cmd.arg("--image").arg(&req.image);
        cmd.args(&self.run_options);
        add_services(&mut cmd, &req.services, self.pull, log);
        for (k, v) in &req.env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        let shown: Vec<String> = req.env.iter().map(|(k, _)| format!("-e {k}=…")).collect();
        log.line(&format!(
            "$ flense run --image {}{} -- {}",
            req.image,
            shown.iter().map(|s| format!(" {s}")).collect::<String>(),
            req.arguments
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        match (&req.capture_dir, req.capture.is_empty()) {
            (Some(dir), false) => {
                // `flense run` keeps no stopped container: to copy what the program
                // wrote, wrap it in a shell that saves the copy sources when it exits.
                let program = self.program_of(&req.image, &req.arguments)?;
                let mut script = String::from("\"$@\"; rc=$?\n");
                for (i, src) in req.capture.iter().enumerate() {
                    script.push_str(&format!(
                        "cp -R {} /.flense-copy/{i} 2>/dev/null || true\n",
                        shell_quote(&container_path(src))
                    ));
                }
                script.push_str("exit $rc\n");
                cmd.arg("--mount")
                    .arg(format!("type=bind,src={},dst=/.flense-copy", dir.display()))
                    .arg("--entrypoint")
                    .arg("/bin/sh")
                    .arg("--")
                    .arg("-c")
                    .arg(script)
                    .arg("flense-run")
                    .args(program);
            }
            _ => {
                cmd.arg("--").args(&req.arguments);
            }
        }
        let (exit_code, stdout_tail) = stream(cmd, log, req.tail, false)?;
        Ok(RunOutcome {
            exit_code,
            stdout_tail,
        })
    }

    fn copy(&self, req: &CopyRequest, log: &StageLog) -> Result<(), StepError> {
        // `flense run` does not keep stopped containers, so the copy runs `cp` in a fresh
        // container of the same image with the destination's parent bind-mounted.
        let parent = req
            .destination
            .parent()
            .ok_or("copy destination has no parent")?;
        std::fs::create_dir_all(parent).map_err(StepError::io_at(parent))?;
        let name = req
            .destination
            .file_name()
            .ok_or("copy destination has no file name")?;
        let source = container_path(&req.source);
        let mut cmd = self.command("run");
        cmd.arg("--image")
            .arg(&req.image)
            .arg("--mount")
            .arg(format!(
                "type=bind,src={},dst=/.flense-copy",
                parent.display()
            ))
            // As root in the sandbox (the caller outside it), whatever the image's user,
            // so the workspace directory is writable and the files end up the caller's.
            .arg("--user")
            .arg("0")
            .arg("--entrypoint")
            .arg("cp")
            .arg("--")
            .arg("-R")
            .arg(&source)
            .arg(format!("/.flense-copy/{}", name.to_string_lossy()));
        log.line(&format!("$ {}", render(&cmd)));
        let (code, _) = stream(cmd, log, 0, false)?;
        if code != 0 {
            return Err(StepError::Failed(format!(
                "copy of {} from {} failed with exit code {code}",
                req.source, req.container
            )));
        }
        Ok(())
    }

    fn push(&self, image: &str, destination: &str, log: &StageLog) -> Result<(), StepError> {
        let mut cmd = self.command("push");
        cmd.arg(image).arg(destination);
        run_logged(cmd, log, &format!("push of {destination}"))
    }

    fn fetch(&self, reference: &str, log: &StageLog) -> Result<(), StepError> {
        let present = self
            .command("inspect")
            .arg(reference)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if present {
            return Ok(());
        }
        // `localhost/NAME` (no port) is a store-only name: it cannot be pulled.
        if reference.starts_with("localhost/") {
            return Err(StepError::Failed(format!(
                "image {reference}, made by an earlier job, is not in this store: jobs on other machines need the images pushed (export the pipeline with --registry)"
            )));
        }
        let mut cmd = self.command("pull");
        cmd.arg(reference);
        run_logged(
            cmd,
            log,
            &format!("pull of {reference} (made by an earlier job)"),
        )
    }

    fn remove_containers(&self, containers: &[String], log: &StageLog) {
        if !containers.is_empty() {
            log.line(&format!(
                "removing containers: {} (flense run keeps none)",
                containers.join(", ")
            ));
        }
    }
}

/// The `flense run` options of `services`: logs beside the stage's, live lines
/// `[stage/service]`, images pulled as `pull` (`flense pipeline --pull`) or the
/// stage's `imagePullPolicy` says.
fn add_services(
    cmd: &mut Command,
    services: &[ServiceRequest],
    pull: Option<PullPolicy>,
    log: &StageLog,
) {
    if services.is_empty() {
        return;
    }
    if let Some(policy) = pull.or_else(|| services.iter().find_map(|s| s.pull)) {
        cmd.arg(format!("--pull={policy}"));
    }
    for s in services {
        log.line(&format!("service {}: {} ({})", s.name, s.image, s.origin));
        cmd.arg("--service").arg(format!("{}={}", s.name, s.image));
        for (k, v) in &s.env {
            cmd.arg("--service-env").arg(format!("{}={k}={v}", s.name));
        }
        for a in &s.arguments {
            cmd.arg("--service-arg").arg(format!("{}={a}", s.name));
        }
        if let Some(ready) = &s.ready {
            let words: Vec<String> = ready.iter().map(|w| shell_quote(w)).collect();
            cmd.arg("--service-ready")
                .arg(format!("{}={}", s.name, words.join(" ")));
        }
        if let Some(t) = s.timeout {
            cmd.arg("--service-timeout")
                .arg(format!("{}={}", s.name, t.as_secs()));
        }
    }
    if let Some(path) = log.path() {
        let prefix = path.with_extension("");
        cmd.arg("--service-logs")
            .arg(format!("{}.", prefix.display()));
    }
    cmd.arg("--service-label").arg(log.stage());
}

fn inspect_error(
    image: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StepError {
    StepError::Inspect {
        image: image.to_string(),
        source: source.into(),
    }
}

/// A copy source as an absolute container path; a trailing `/` means the contents
/// (`dir/.`), as upstream rewrites it for `docker cp`.
pub fn container_path(source: &str) -> String {
    let trimmed = source.trim_start_matches('/');
    if trimmed.ends_with('/') {
        format!("/{trimmed}.")
    } else {
        format!("/{trimmed}")
    }
}

/// Runs `cmd` with its command line and output in the log; a non-zero exit fails
/// `what`.
fn run_logged(cmd: Command, log: &StageLog, what: &str) -> Result<(), StepError> {
    log.line(&format!("$ {}", render(&cmd)));
    let (code, _) = stream(cmd, log, 0, false)?;
    if code != 0 {
        return Err(StepError::Failed(format!(
            "{what} failed with exit code {code}"
        )));
    }
    Ok(())
}

fn render(cmd: &Command) -> String {
    let mut parts = vec!["flense".to_string()];
    parts.extend(cmd.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    parts.join(" ")
}

/// Single-quotes a word for display when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Pretends: builds get a digest derived from the request, runs succeed with no output,
/// copies and pushes are only logged. Used by `--dry-run` so that interpolation
/// errors surface before anything runs.
#[derive(Debug, Default)]
pub struct DryRunExecutor;

impl Executor for DryRunExecutor {
    fn build(&self, req: &BuildRequest, log: &StageLog) -> Result<String, StepError> {
        log.line(&format!(
            "would build variant '{}' of {} in {}{}",
            req.variant,
            req.blubberfile.display(),
            req.context.display(),
            req.pull
                .map(|p| format!(" (pull: {p})"))
                .unwrap_or_default()
        ));
        let mut h = Sha256::new();
        h.update(format!(
            "{}\0{}\0{}",
            req.blubberfile.display(),
            req.variant,
            req.context.display()
        ));
        Ok(hex::encode(h.finalize()))
    }

    fn run(&self, req: &RunRequest, log: &StageLog) -> Result<RunOutcome, StepError> {
        for s in &req.services {
            let ready = match &s.ready {
                Some(r) => format!(", ready when `{}` succeeds", r.join(" ")),
                None => String::new(),
            };
            log.line(&format!(
                "would start service {} from {} ({}){ready}",
                s.name, s.image, s.origin
            ));
        }
        let env: Vec<String> = req.env.iter().map(|(k, _)| format!("{k}=…")).collect();
        log.line(&format!(
            "would run {} env [{}] arguments [{}]",
            req.image,
            env.join(", "),
            req.arguments
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(RunOutcome {
            exit_code: 0,
            stdout_tail: Vec::new(),
        })
    }

    fn copy(&self, req: &CopyRequest, log: &StageLog) -> Result<(), StepError> {
        log.line(&format!(
            "would copy {}:{} to {}",
            req.container,
            req.source,
            req.destination.display()
        ));
        Ok(())
    }

    fn push(&self, image: &str, destination: &str, log: &StageLog) -> Result<(), StepError> {
        log.line(&format!("would push {image} to {destination}"));
        Ok(())
    }

    fn fetch(&self, reference: &str, log: &StageLog) -> Result<(), StepError> {
        log.line(&format!("would use {reference} (made by an earlier job)"));
        Ok(())
    }

    fn remove_containers(&self, _containers: &[String], _log: &StageLog) {}
}
