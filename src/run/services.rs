//! Services beside a run (`flense run --service NAME=IMAGE`, a stage's `services:`):
//! each service runs in its own sandbox, and the services and the run share one private
//! network (loopback, and outbound access when asked for), where every service name resolves to 127.0.0.1 through an
//! `/etc/hosts` mounted into each sandbox. Services start in order, each waited for
//! with its ready check; the run starts once all are ready; whatever happens, every
//! service is then stopped (SIGTERM, SIGKILL after a grace period) and removed.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flense_runtime::{
    Child, ExitStatus, IdMode, Mount, Network, NetworkGroup, RuntimeError, Sandbox,
    SignalForwarder, Stdio,
};

use super::{sandbox_for, RunError, RunOverrides};
use crate::line_tail::LineTail;
use crate::store::Store;

/// How long a service may take to become ready when its spec does not say.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped service gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// How many of a service's last log lines an error shows.
const TAIL_LINES: usize = 20;
/// Pause between two ready checks.
const RETRY: Duration = Duration::from_millis(500);

/// One service: a name (its host name), an image and how to start and check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Host name the run reaches it by; also names its log.
    pub name: String,
    /// The image reference in the local store.
    pub image: String,
    /// Variables added to the image's env.
    pub env: Vec<(String, String)>,
    /// Arguments appended to the image's entrypoint (replacing its cmd when given).
    pub args: Vec<String>,
    /// Run inside the service until it exits 0; `None`: ready once started.
    pub ready: Option<Vec<String>>,
    /// How long the ready check may keep failing.
    pub timeout: Duration,
}

impl ServiceSpec {
    /// A service `name` running `image` as configured, ready once started.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            image: image.into(),
            env: Vec::new(),
            args: Vec::new(),
            ready: None,
            timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// The services of a run and where their output goes.
#[derive(Debug, Clone, Default)]
pub struct Services {
    /// The services, in start order.
    pub specs: Vec<ServiceSpec>,
    /// Each service's output goes to `<log_prefix><name>.log` when set.
    pub log_prefix: Option<PathBuf>,
    /// Live output lines are prefixed `[<label>/<name>]` (`[<name>]` without a label).
    pub label: Option<String>,
}

/// A started service.
struct Running {
    name: String,
    child: Child,
    state: crate::store::ScratchDir,
    tail: Arc<LineTail>,
    logger: Option<JoinHandle<()>>,
    env: Vec<(String, String)>,
    user: flense_runtime::User,
}

impl Running {
    fn failed(&self, reason: String) -> RunError {
        RunError::Service {
            name: self.name.clone(),
            reason,
            tail: self.tail.lines(),
        }
    }
}

/// Runs `main` (the run's sandbox, not started yet) beside `services` in one private
/// network; returns how the run ended, or the service that failed to come up.
pub(super) fn run_beside(
    store: &Store,
    main: Sandbox,
    main_state: &Path,
    overrides: &RunOverrides,
) -> Result<ExitStatus, RunError> {
    let services = &overrides.services;
    let user = main.identity().clone();
    let mut group = NetworkGroup::new(overrides.userns, user.uid, user.gid)?;
    if overrides.network == Network::Host || overrides.outbound {
        // "host" with services, or "private": outbound access through a user-mode
        // network, when pasta can give it (it needs /dev/net/tun).
        if let Err(e) = group.connect_outbound() {
            tracing::warn!(
                "no outbound network for the run (and its services), only loopback: {}",
                crate::error_chain::ErrorChain(&e)
            );
        }
    }
    let net_dir = store.scratch_dir("net-")?;
    let hosts = write_hosts(net_dir.path(), &services.specs)?;
    let hosts_mount = Mount::Bind {
        src: hosts,
        dst: "/etc/hosts".into(),
        readonly: true,
    };
    let mut forwarder = match overrides.forward_signals {
        true => Some(SignalForwarder::block()?),
        false => None,
    };
    let mut running: Vec<Running> = Vec::new();
    let outcome = start_all(store, &group, &hosts_mount, overrides, &mut running)
        .and_then(|()| wait_all_ready(&mut running, &services.specs, forwarder.as_ref()));
    let result = match outcome {
        Ok(Some(signal)) => Ok(ExitStatus::Signaled(signal)),
        Ok(None) => {
            let main = main.mount(hosts_mount).join(&group)?;
            run_main(main, forwarder.as_mut())
        }
        Err(e) => Err(e),
    };
    drop(forwarder);
    for service in running.into_iter().rev() {
        stop(service, services.label.as_deref());
    }
    if let Err(e) = flense_runtime::remove_tree(main_state, group.id_maps()) {
        tracing::warn!("leaving {}: {e}", main_state.display());
    }
    result
}

/// Whether a run without services still needs a group: its own network with outbound
/// access (`--network private`), which needs namespaces (chroot isolation has none,
/// and keeps the host's network with its own warning).
pub(super) fn private_outbound(overrides: &RunOverrides) -> bool {
    overrides.outbound
        && overrides.network == Network::None
        && overrides.isolation.resolve().ok() == Some(flense_runtime::Isolation::Namespace)
}

/// Starts the run's sandbox in the group and waits for it.
fn run_main(
    mut main: Sandbox,
    forwarder: Option<&mut SignalForwarder>,
) -> Result<ExitStatus, RunError> {
    let mut child = main.spawn()?;
    if let Some(f) = forwarder {
        f.forward_to(&child)?;
    }
    Ok(child.wait()?)
}

/// `/etc/hosts` of the group: every service name is this network's loopback.
fn write_hosts(dir: &Path, specs: &[ServiceSpec]) -> Result<PathBuf, RunError> {
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let text = format!(
        "127.0.0.1\tlocalhost {}\n::1\tlocalhost ip6-localhost ip6-loopback {}\n",
        names.join(" "),
        names.join(" ")
    );
    let path = dir.join("hosts");
    let written = std::fs::write(&path, text).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
    });
    written.map_err(|source| RunError::ServiceFile { path, source })?;
    Ok(dir.join("hosts"))
}

fn start_all(
    store: &Store,
    group: &NetworkGroup,
    hosts: &Mount,
    overrides: &RunOverrides,
    running: &mut Vec<Running>,
) -> Result<(), RunError> {
    for spec in &overrides.services.specs {
        running.push(start(store, group, hosts, overrides, spec)?);
    }
    Ok(())
}

/// Starts one service in the group, its output going to its log and the live output.
fn start(
    store: &Store,
    group: &NetworkGroup,
    hosts: &Mount,
    overrides: &RunOverrides,
    spec: &ServiceSpec,
) -> Result<Running, RunError> {
    let setup = |source: RunError| RunError::ServiceSetup {
        name: spec.name.clone(),
        source: Box::new(source),
    };
    let image = store.image(&spec.image).map_err(|e| setup(e.into()))?;
    let layers: Vec<PathBuf> = store
        .unpack_image(&image)
        .map_err(|e| setup(e.into()))?
        .into_iter()
        .map(|l| l.diff)
        .collect();
    let state = store
        .scratch_dir("service-")
        .map_err(RunError::from)
        .map_err(setup)?;
    let service_overrides = RunOverrides {
        args: spec.args.clone(),
        env: spec.env.clone(),
        userns: overrides.userns,
        isolation: overrides.isolation,
        hostname: Some(spec.name.clone()),
        mounts: vec![hosts.clone()],
        ..RunOverrides::default()
    };
    let sandbox = sandbox_for(
        &image,
        &spec.image,
        &layers,
        state.path(),
        &service_overrides,
    )
    .map_err(setup)?;
    if group.id_maps().mode == IdMode::Single {
        let main = (
            group.id_maps().uids[0].inside,
            group.id_maps().gids[0].inside,
        );
        let user = sandbox.identity();
        if (user.uid, user.gid) != main {
            return Err(setup(RunError::Runtime(RuntimeError::InvalidSpec(
                format!(
                    "it runs as {}:{} but the run as {}:{}, and the single ID mode maps only \
                 one user; use the subuid or root mode (see docs/services.md)",
                    user.uid, user.gid, main.0, main.1
                ),
            ))));
        }
    }
    let (env, user) = (sandbox.env_vars().to_vec(), sandbox.identity().clone());
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| setup(RunError::ServicePipe(e.into())))?;
    let write = File::from(write);
    let write2 = write
        .try_clone()
        .map_err(|e| setup(RunError::ServicePipe(e)))?;
    let mut sandbox = sandbox
        .stdin(Stdio::Null)
        .stdout(Stdio::File(write))
        .stderr(Stdio::File(write2))
        .join(group)
        .map_err(|e| setup(e.into()))?;
    let tail = Arc::new(LineTail::new(TAIL_LINES));
    let log = log_file(&overrides.services, &spec.name)?;
    let prefix = match &overrides.services.label {
        Some(label) => format!("[{label}/{}]", spec.name),
        None => format!("[{}]", spec.name),
    };
    let logger = spawn_logger(File::from(read), log, prefix, Arc::clone(&tail));
    let child = sandbox.spawn().map_err(|e| setup(e.into()))?;
    drop(sandbox);
    Ok(Running {
        name: spec.name.clone(),
        child,
        state,
        tail,
        logger: Some(logger),
        env,
        user,
    })
}

fn log_file(services: &Services, name: &str) -> Result<Option<File>, RunError> {
    let Some(prefix) = &services.log_prefix else {
        return Ok(None);
    };
    let path = PathBuf::from(format!("{}{name}.log", prefix.display()));
    File::create(&path)
        .map(Some)
        .map_err(|source| RunError::ServiceFile { path, source })
}

/// Copies the service's output, line by line, to its log file and stderr (prefixed),
/// keeping the last lines for errors.
fn spawn_logger(
    read: File,
    mut log: Option<File>,
    prefix: String,
    tail: Arc<LineTail>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(read).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            eprintln!("{prefix} {line}");
            tail.push(line);
        }
    })
}

/// Waits for each service in turn; `Some(signal)` when a termination signal came first.
fn wait_all_ready(
    running: &mut [Running],
    specs: &[ServiceSpec],
    signals: Option<&SignalForwarder>,
) -> Result<Option<i32>, RunError> {
    for (service, spec) in running.iter_mut().zip(specs) {
        if let Some(signal) = wait_ready(service, spec, signals)? {
            return Ok(Some(signal));
        }
        eprintln!("flense: service `{}` is ready", spec.name);
    }
    // A service that ended while later ones were being waited for fails the run too.
    for service in running.iter_mut() {
        if let Some(status) = service.child.wait_timeout(Duration::ZERO)? {
            return Err(exited_early(service, status));
        }
    }
    Ok(None)
}

fn wait_ready(
    service: &mut Running,
    spec: &ServiceSpec,
    signals: Option<&SignalForwarder>,
) -> Result<Option<i32>, RunError> {
    let deadline = Instant::now() + spec.timeout;
    let _waiting = crate::activity::begin(
        || format!("waiting for service `{}` to be ready", spec.name),
        None,
    );
    loop {
        if let Some(signal) = signals.and_then(SignalForwarder::take_pending) {
            return Ok(Some(signal));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(check) = &spec.ready else {
            // No check: ready unless it ends at once.
            return match service.child.wait_timeout(RETRY)? {
                Some(status) => Err(exited_early(service, status)),
                None => Ok(None),
            };
        };
        if let Some(status) = service.child.wait_timeout(Duration::ZERO)? {
            return Err(exited_early(service, status));
        }
        let limit = left.max(Duration::from_secs(1));
        let status = service
            .child
            .run_inside(check, &service.env, &service.user, None, limit)
            .map_err(|source| RunError::ServiceSetup {
                name: service.name.clone(),
                source: Box::new(RunError::Runtime(source)),
            })?;
        if status.success() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(service.failed(format!(
                "did not become ready within {}s: `{}` kept failing (last exit code {})",
                spec.timeout.as_secs_f64(),
                check.join(" "),
                status.code()
            )));
        }
        std::thread::sleep(RETRY.min(left));
    }
}

fn exited_early(service: &Running, status: ExitStatus) -> RunError {
    // Let the logger catch up with what the service printed before it ended.
    std::thread::sleep(Duration::from_millis(100));
    service.failed(format!(
        "exited with code {} before it was ready",
        status.code()
    ))
}

/// Stops a service (SIGTERM, then SIGKILL after the grace period) and removes its
/// sandbox's state.
fn stop(mut service: Running, label: Option<&str>) {
    let ended = service
        .child
        .kill(nix::sys::signal::Signal::SIGTERM as i32)
        .and_then(|()| match service.child.wait_timeout(GRACE)? {
            Some(status) => Ok(status),
            None => {
                service
                    .child
                    .kill(nix::sys::signal::Signal::SIGKILL as i32)?;
                service.child.wait()
            }
        });
    if let Err(e) = ended {
        tracing::warn!("stop service {}: {e}", service.name);
    }
    if let Some(logger) = service.logger.take() {
        let _ = logger.join();
    }
    let label = label.map(|l| format!("{l}/")).unwrap_or_default();
    tracing::info!("service {label}{} stopped", service.name);
    if let Err(e) = flense_runtime::remove_tree(service.state.path(), service.child.id_maps()) {
        tracing::warn!("leaving {}: {e}", service.state.path().display());
    }
}
