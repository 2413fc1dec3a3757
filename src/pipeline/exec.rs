//! The step executor seam: what a stage asks the outside world to do (build, run,
//! copy, push, clean up). [`ProcessExecutor`] drives `flense build`/`run`/`push` as
//! child processes of the same binary; [`DryRunExecutor`] pretends, for `--dry-run`.

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::error::StepError;
use super::output::StageLog;
use crate::builder::images::PullPolicy;

mod process;

pub use process::{shell_quote, DryRunExecutor, ProcessExecutor};

/// A `build` step, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BuildRequest {
    /// The Blubber file.
    pub blubberfile: PathBuf,
    /// The variant (`--target`).
    pub variant: String,
    /// The build context directory.
    pub context: PathBuf,
    /// The stage's `imagePullPolicy` (`None` when it sets none: `flense build`'s
    /// default, or `flense pipeline --pull`).
    pub pull: Option<PullPolicy>,
    /// Labels of the image (`${setup.imageLabels}`), in key order.
    pub labels: Vec<(String, String)>,
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
    /// Paths in the container to save after the program exits (for later `copy` items
    /// from this container): item `i` goes to `<capture_dir>/<i>`.
    pub capture: Vec<String>,
    /// Where captured paths go (a host directory writable by any user).
    pub capture_dir: Option<PathBuf>,
    /// Services beside the run, in start order.
    pub services: Vec<ServiceRequest>,
}

/// A service of a run, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRequest {
    /// Its host name.
    pub name: String,
    /// The image (a local reference).
    pub image: String,
    /// What it was made from, for messages (`variant redis`, `image REF`).
    pub origin: String,
    /// Variables added to the image's env.
    pub env: Vec<(String, String)>,
    /// Arguments appended to the entrypoint.
    pub arguments: Vec<String>,
    /// The ready check.
    pub ready: Option<Vec<String>>,
    /// How long the ready check may keep failing.
    pub timeout: Option<std::time::Duration>,
    /// When its image is pulled (the stage's `build.imagePullPolicy`; `flense pipeline
    /// --pull` overrides it); `None`: pulled when missing from the store.
    pub pull: Option<PullPolicy>,
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

/// The things a stage needs done outside the process. Errors end up in the stage log and
/// the summary (with their causes, see [`StepError`]).
pub trait Executor: Send + Sync {
    /// Builds an image; returns its ID (hex digest, no `sha256:`).
    fn build(&self, req: &BuildRequest, log: &StageLog) -> Result<String, StepError>;
    /// Runs an image's entrypoint; stdout and stderr go to the log.
    fn run(&self, req: &RunRequest, log: &StageLog) -> Result<RunOutcome, StepError>;
    /// Copies a file or directory out of a container into the workspace.
    fn copy(&self, req: &CopyRequest, log: &StageLog) -> Result<(), StepError>;
    /// Pushes a local image to `destination`.
    fn push(&self, image: &str, destination: &str, log: &StageLog) -> Result<(), StepError>;
    /// Teardown: removes the containers (best effort).
    fn remove_containers(&self, containers: &[String], log: &StageLog);
    /// Makes sure `reference` (an image an earlier CI job made) is in the store, pulling
    /// it when it is not. Executors without a store of their own have nothing to do.
    fn fetch(&self, reference: &str, log: &StageLog) -> Result<(), StepError> {
        let _ = (reference, log);
        Ok(())
    }
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
) -> Result<(i32, Vec<String>), StepError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| StepError::Spawn {
        program: cmd.get_program().to_owned(),
        source,
    })?;
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
        .map_err(|source| StepError::Wait { pid, source });
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
