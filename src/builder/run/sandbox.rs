//! The real step runner: `flense-runtime`'s rootless sandbox on an overlay of the
//! stage's unpacked layers; the overlay's upper directory becomes the step's layer.
//!
//! In single-ID mode (no subordinate IDs) only the step's own user exists in the user
//! namespace, so apt runs with `APT::Sandbox::User "root"` (it cannot drop to `_apt`),
//! and a step that fails there gets a hint on enabling subuid mode.

use std::os::fd::AsFd;
use std::path::PathBuf;

use flense_runtime::{IdMaps, IdMode, Isolation, Mount, Network, Overlay, RootFs, Sandbox, Stdio};

use crate::builder::run::runner::{
    RunnerError, StepMount, StepNetwork, StepOutcome, StepRequest, StepRunner,
};

/// Where the step's apt configuration is mounted in single-ID mode.
const APT_CONF: &str = "/.flense-apt.conf";

/// Runs build steps in `flense-runtime` sandboxes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxRunner {
    mode: IdMode,
    isolation: Isolation,
}

impl SandboxRunner {
    /// A runner using this user-namespace mode (`Auto` picks root, subuid or single).
    pub fn new(mode: IdMode) -> Self {
        Self {
            mode,
            isolation: Isolation::Auto,
        }
    }

    /// The same runner with this isolation (`Auto`: namespaces when allowed, chroot for
    /// root where namespace creation is refused).
    pub fn with_isolation(self, isolation: Isolation) -> Self {
        Self { isolation, ..self }
    }

    /// The mode asked of the runtime for a step as `uid`. Layers unpacked without root
    /// belong to the caller on disk, which subuid mode shows as root inside the sandbox,
    /// so a non-root step (a builder as the lives user) could not write to its own
    /// directories there. With `Auto`, such steps run in single mode (the caller is the
    /// step user, so the files are the step user's); root steps (apt) keep subuid mode,
    /// where dpkg can chown to other IDs.
    pub fn mode_for(&self, uid: u32) -> IdMode {
        if self.mode == IdMode::Auto && uid != 0 && !nix::unistd::geteuid().is_root() {
            IdMode::Single
        } else {
            self.mode
        }
    }

    /// The mode a step as `uid:gid` would run in (root's identity mapping in chroot
    /// isolation). Fails when the isolation cannot work here, naming the cause.
    pub fn effective_mode(&self, uid: u32, gid: u32) -> Result<IdMode, RunnerError> {
        let isolation = self.isolation.resolve().map_err(RunnerError::Sandbox)?;
        let mode = match isolation {
            Isolation::Chroot => IdMode::Root,
            _ => self.mode_for(uid),
        };
        IdMaps::resolve(mode, uid, gid)
            .map(|m| m.mode)
            .map_err(RunnerError::Sandbox)
    }
}

fn stderr_file() -> Result<std::fs::File, RunnerError> {
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| RunnerError::Setup {
            what: "duplicating stderr".into(),
            source,
        })?;
    Ok(std::fs::File::from(fd))
}

impl StepRunner for SandboxRunner {
    fn run(&self, req: &StepRequest) -> Result<StepOutcome, RunnerError> {
        let mode = self.effective_mode(req.uid, req.gid)?;
        tracing::debug!("step as {}:{} in {mode} mode", req.uid, req.gid);
        let overlay = Overlay::new(req.lowers.clone(), &req.state_dir);
        let mut sb = Sandbox::new(RootFs::Overlay(overlay), req.argv.clone())
            .cwd(&req.cwd)
            .user(req.uid, req.gid)
            .groups(req.groups.clone())
            .network(match req.network {
                StepNetwork::Host => Network::Host,
                StepNetwork::None => Network::None,
            })
            .id_mode(self.mode_for(req.uid))
            .isolation(self.isolation)
            .stdin(Stdio::Null)
            // Step output goes to stderr: stdout carries the digest or JSON events.
            .stdout(Stdio::File(stderr_file()?))
            .stderr(Stdio::File(stderr_file()?));
        for (k, v) in &req.env {
            sb = sb.env(k, v);
        }
        if mode == IdMode::Single && req.uid == 0 {
            let conf = req.state_dir.with_extension("apt.conf");
            std::fs::write(&conf, "APT::Sandbox::User \"root\";\n").map_err(|source| {
                RunnerError::Setup {
                    what: conf.display().to_string(),
                    source,
                }
            })?;
            sb = sb
                .mount(Mount::Bind {
                    src: conf,
                    dst: PathBuf::from(APT_CONF),
                    readonly: true,
                })
                .env("APT_CONFIG", APT_CONF);
        }
        for m in &req.mounts {
            sb = sb.mount(match m {
                StepMount::Bind { src, dst, readonly } => Mount::Bind {
                    src: src.clone(),
                    dst: dst.clone(),
                    readonly: *readonly,
                },
                StepMount::Cache { src, dst } => Mount::Cache {
                    src: src.clone(),
                    dst: dst.clone(),
                },
            });
        }
        let mut child = sb.spawn().map_err(RunnerError::Sandbox)?;
        let status = child.wait().map_err(RunnerError::Sandbox)?;
        let entries = if req.capture && status.success() {
            let started = std::time::Instant::now();
            let entries: Vec<_> = child
                .diff((req.uid, req.gid))
                .map_err(|e| match e {
                    flense_runtime::RuntimeError::CaptureDenied { .. }
                        if mode == IdMode::Subuid =>
                    {
                        RunnerError::CapturePrivate(e)
                    }
                    e => RunnerError::Capture(e),
                })?
                .into_iter()
                .map(crate::builder::layers::diff::to_layer_entry)
                .collect();
            tracing::debug!(elapsed = ?started.elapsed(), "captured {} entries", entries.len());
            entries
        } else {
            Vec::new()
        };
        // Subuid mode leaves files of subordinate IDs the caller could not chown or
        // delete later: those layers are unpacked from their blobs instead.
        let adoptable = !child.uses_copy_fallback()
            && (mode == IdMode::Single || nix::unistd::geteuid().is_root());
        let tree = (req.capture && adoptable)
            .then(|| std::path::absolute(Overlay::new(Vec::new(), &req.state_dir).upper_dir()).ok())
            .flatten();
        Ok(StepOutcome {
            exit_code: status.code(),
            entries,
            tree,
            owners_assumed: mode == IdMode::Single,
        })
    }

    fn check_user(&self, uid: u32, gid: u32) -> Result<(), RunnerError> {
        self.effective_mode(uid, gid).map(|_| ())
    }

    fn isolation(&self) -> Option<String> {
        match self.isolation.resolve().ok()? {
            Isolation::Chroot => Some(match flense_runtime::namespaces_allowed() {
                Err(flense_runtime::RuntimeError::Namespaces { cause, .. }) => format!(
                    "chroot (namespace creation is refused: {cause}; steps have no pid, \
                     mount, network or IPC isolation)"
                ),
                _ => "chroot (asked for; no pid, mount, network or IPC isolation)".to_string(),
            }),
            other => Some(other.to_string()),
        }
    }

    fn failure_hint(&self, req: &StepRequest, _code: i32) -> Option<String> {
        let mode = self.effective_mode(req.uid, req.gid).ok()?;
        let line = req.argv.join(" ");
        let changes_owners = req.uid == 0
            || ["chown", "apt-get", "dpkg"]
                .iter()
                .any(|w| line.contains(w));
        (mode == IdMode::Single && changes_owners).then(|| {
            "this step ran in single-ID mode, where only one user ID exists in the sandbox; \
             a step that changes file ownership to other IDs (dpkg/apt packages, chown) fails there. \
             Enable subuid mode: install `uidmap` (newuidmap/newgidmap) and give your user ranges, \
             e.g. `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER`"
                .to_string()
        })
    }
}
