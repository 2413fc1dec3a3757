//! The step executor seam: what a stage asks the outside world to do (build, run,
//! copy, push, clean up). [`ProcessExecutor`] drives `flense build`/`run`/`push` as
//! child processes of the same binary; [`DryRunExecutor`] pretends, for `--dry-run`.

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::output::StageLog;

/// A `build` step, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BuildRequest {
    /// The Blubber file.
    pub blubberfile: PathBuf,
    /// The variant (`--target`).
    pub variant: String,
    /// The build context directory.
    pub context: PathBuf,
    /// `imagePullPolicy: always`.
    pub pull: bool,
    /// The local name to tag the image with (`localhost/plib-image-<rand8>`).
    pub local_name: String,
}

/// A `run` step, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// The image reference to run.
    pub image: String,
    /// Arguments after the entrypoint.
    pub arguments: Vec<String>,
    /// Environment, in order (env entries, then credentials).
    pub env: Vec<(String, String)>,
    /// The container name (`plib-run-<rand8>`).
    pub container: String,
    /// How many trailing stdout lines to return.
    pub tail: usize,
}

/// What a run returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The program's exit code.
    pub exit_code: i32,
    /// The last `tail` lines of stdout.
    pub stdout_tail: Vec<String>,
}

/// A `copy` item, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    /// The container name it comes from.
    pub container: String,
    /// The image that container ran.
    pub image: String,
    /// Path in the container (a trailing `/` means "the contents").
    pub source: String,
    /// Absolute destination in the workspace.
    pub destination: PathBuf,
}

/// The things a stage needs done outside the process. Errors are messages for the log.
pub trait Executor: Send + Sync {
    /// Builds an image; returns its ID (hex digest, no `sha256:`).
    fn build(&self, req: &BuildRequest, log: &StageLog) -> Result<String, String>;
    /// Runs an image's entrypoint; stdout and stderr go to the log.
    fn run(&self, req: &RunRequest, log: &StageLog) -> Result<RunOutcome, String>;
    /// Copies a file or directory out of a container into the workspace.
    fn copy(&self, req: &CopyRequest, log: &StageLog) -> Result<(), String>;
    /// Pushes a local image to `destination`.
    fn push(&self, image: &str, destination: &str, log: &StageLog) -> Result<(), String>;
    /// Teardown: removes the containers (best effort).
    fn remove_containers(&self, containers: &[String], log: &StageLog);
}

/// Child processes started by the pipeline runner, so that Ctrl-C can stop them.
pub fn children() -> &'static Mutex<BTreeSet<u32>> {
    static CHILDREN: OnceLock<Mutex<BTreeSet<u32>>> = OnceLock::new();
    CHILDREN.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// Set once the run is interrupted (Ctrl-C, SIGTERM): children started afterwards are
/// stopped at once and no new stage starts.
pub static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks the run interrupted and sends SIGTERM to every child still running.
pub fn interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    terminate_children();
}

/// Sends SIGTERM to every child still running.
pub fn terminate_children() {
    let pids: Vec<u32> = children()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// Runs `cmd`, streaming stderr (and stdout unless captured) to the log line by line.
/// Returns the exit code (128+signal when killed) and the stdout lines kept (`keep`
/// trailing lines; all of them when `capture_all`).
pub fn stream(
    mut cmd: Command,
    log: &StageLog,
    keep: usize,
    capture_all: bool,
) -> Result<(i32, Vec<String>), String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let pid = child.id();
    children()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid);
    // An interrupt that came between the log line and the spawn must still stop it.
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let kept = std::thread::scope(|s| {
        s.spawn(|| {
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                log.line(&String::from_utf8_lossy(&line));
            }
        });
        let mut kept: VecDeque<String> = VecDeque::new();
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.by_ref().read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.strip_suffix('\n').unwrap_or(&text).to_string();
                    if !capture_all {
                        log.line(&line);
                    }
                    if capture_all || keep > 0 {
                        if !capture_all && kept.len() == keep {
                            kept.pop_front();
                        }
                        kept.push_back(line);
                    }
                }
            }
        }
        kept
    });
    let status = child
        .wait()
        .map_err(|e| format!("waiting for child {pid}: {e}"));
    children()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pid);
    let status = status?;
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok((code, kept.into_iter().collect()))
}

/// Drives the `flense` binary (`build`, `run`, `push`) as child processes.
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    /// The `flense` binary (normally `std::env::current_exe()`).
    pub program: PathBuf,
    /// `--root` to pass on.
    pub root: Option<PathBuf>,
    /// Extra `flense run` options (e.g. `--network host`).
    pub run_options: Vec<String>,
}

impl ProcessExecutor {
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
    fn build(&self, req: &BuildRequest, log: &StageLog) -> Result<String, String> {
        let mut cmd = self.command("build");
        cmd.arg(&req.variant)
            .arg("-f")
            .arg(&req.blubberfile)
            .arg("-C")
            .arg(&req.context)
            .arg("--tag")
            .arg(&req.local_name)
            .arg("--quiet");
        log.line(&format!("$ {}", render(&cmd)));
        let (code, stdout) = stream(cmd, log, 0, true)?;
        for l in &stdout {
            log.line(l);
        }
        if code != 0 {
            return Err(format!(
                "failed to build image: flense build exited with {code}"
            ));
        }
        let digest = stdout
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .ok_or("failed to build image: flense build printed no digest")?;
        let hex = digest.rsplit(':').next().unwrap_or(digest);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "failed to build image: unexpected digest '{digest}'"
            ));
        }
        Ok(hex.to_string())
    }

    fn run(&self, req: &RunRequest, log: &StageLog) -> Result<RunOutcome, String> {
        let mut cmd = self.command("run");
        cmd.arg("--image").arg(&req.image);
        cmd.args(&self.run_options);
        for (k, v) in &req.env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.arg("--").args(&req.arguments);
        let shown: Vec<String> = req.env.iter().map(|(k, _)| format!("-e {k}=…")).collect();
        log.line(&format!(
            "$ flense run --image {} {} -- {}",
            req.image,
            shown.join(" "),
            req.arguments
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let (exit_code, stdout_tail) = stream(cmd, log, req.tail, false)?;
        Ok(RunOutcome {
            exit_code,
            stdout_tail,
        })
    }

    fn copy(&self, req: &CopyRequest, log: &StageLog) -> Result<(), String> {
        // `flense run` does not keep stopped containers, so the copy runs `cp` in a fresh
        // container of the same image with the destination's parent bind-mounted.
        let parent = req
            .destination
            .parent()
            .ok_or("copy destination has no parent")?;
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let name = req
            .destination
            .file_name()
            .ok_or("copy destination has no file name")?;
        let source = if req.source.ends_with('/') {
            format!("/{}.", req.source.trim_start_matches('/'))
        } else {
            format!("/{}", req.source.trim_start_matches('/'))
        };
        let mut cmd = self.command("run");
        cmd.arg("--image")
            .arg(&req.image)
            .arg("--mount")
            .arg(format!(
                "type=bind,src={},dst=/.flense-copy",
                parent.display()
            ))
            .arg("--entrypoint")
            .arg("cp")
            .arg("--")
            .arg("-a")
            .arg(&source)
            .arg(format!("/.flense-copy/{}", name.to_string_lossy()));
        log.line(&format!("$ {}", render(&cmd)));
        let (code, _) = stream(cmd, log, 0, false)?;
        if code != 0 {
            return Err(format!(
                "copy of {} from {} failed with exit code {code}",
                req.source, req.container
            ));
        }
        Ok(())
    }

    fn push(&self, image: &str, destination: &str, log: &StageLog) -> Result<(), String> {
        let mut cmd = self.command("push");
        cmd.arg(image).arg(destination);
        log.line(&format!("$ {}", render(&cmd)));
        let (code, _) = stream(cmd, log, 0, false)?;
        if code != 0 {
            return Err(format!(
                "push of {destination} failed with exit code {code}"
            ));
        }
        Ok(())
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
    fn build(&self, req: &BuildRequest, log: &StageLog) -> Result<String, String> {
        log.line(&format!(
            "would build variant '{}' of {} in {}{}",
            req.variant,
            req.blubberfile.display(),
            req.context.display(),
            if req.pull { " (pull: always)" } else { "" }
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

    fn run(&self, req: &RunRequest, log: &StageLog) -> Result<RunOutcome, String> {
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

    fn copy(&self, req: &CopyRequest, log: &StageLog) -> Result<(), String> {
        log.line(&format!(
            "would copy {}:{} to {}",
            req.container,
            req.source,
            req.destination.display()
        ));
        Ok(())
    }

    fn push(&self, image: &str, destination: &str, log: &StageLog) -> Result<(), String> {
        log.line(&format!("would push {image} to {destination}"));
        Ok(())
    }

    fn remove_containers(&self, _containers: &[String], _log: &StageLog) {}
}

/// Eight random characters from `[a-z0-9]` (temp-file and container names).
pub fn rand8() -> String {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut h = Sha256::new();
        h.update(format!("{t}{}", std::process::id()));
        bytes.copy_from_slice(&h.finalize()[..8]);
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Strips leading `/` and any `..` that would escape: `/../../foo/../bar` -> `bar`.
pub fn sanitise_relative(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// True when `p` is inside `root` after sanitising (always, by construction); kept for
/// callers that join user paths.
pub fn join_inside(root: &Path, rel: &str) -> PathBuf {
    root.join(sanitise_relative(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising() {
        assert_eq!(sanitise_relative("../../foo/../bar"), "bar");
        assert_eq!(sanitise_relative("/../../foo/../bar"), "bar");
        assert_eq!(sanitise_relative("/foo/../../dst/foo/../path"), "dst/path");
    }

    #[test]
    fn rand8_alphabet() {
        let r = rand8();
        assert_eq!(r.len(), 8);
        assert!(r
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
