//! Starting a sandbox: the parent side (pipes, ID maps, waiting) and the middle process
//! that unshares the namespaces and forks the sandbox's PID 1.
//!
//! Processes: caller -> middle (unshares user, mount, pid, uts, ipc and maybe net
//! namespaces; waits for its ID maps) -> init (PID 1: mounts, pivot_root, reaps,
//! forwards signals) -> command.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, Pid};

use crate::child::{Child, RootState};
use crate::error::RuntimeError;
use crate::idmap::{IdMaps, IdMode};
use crate::init::{self, InitPlan, Report, RootMount, TAG_EXEC, TAG_OVERLAY};
use crate::isolation::Isolation;
use crate::spec::{Mount, Network, Sandbox, Stdio};
use crate::sys;

pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Sandbox {
    /// Starts the command in a new sandbox. Returns once the command has been exec'd
    /// (or with the set-up or exec error). Falls back to a copied root when the kernel
    /// overlay cannot be mounted.
    pub fn spawn(&mut self) -> Result<Child, RuntimeError> {
        self.validate()?;
        if self.isolation.resolve()? == Isolation::Chroot {
            if self.joined.is_some() {
                return Err(RuntimeError::InvalidSpec(
                    "a shared network needs namespace isolation, not chroot".into(),
                ));
            }
            let maps = IdMaps::resolve(IdMode::Root, self.user.uid, self.user.gid)?;
            return self.spawn_chroot(maps);
        }
        let maps = match &self.joined {
            Some(joined) => joined.maps.clone(),
            None => IdMaps::resolve(self.id_mode, self.user.uid, self.user.gid)?,
        };
        tracing::info!("user namespace mode: {}", maps.mode);
        let root = self.prepare_root(false)?;
        match self.start(root, maps.clone()) {
            Err(Failure::Overlay(err)) => {
                let cause = std::error::Error::source(&err)
                    .map(|source| format!(": {source}"))
                    .unwrap_or_default();
                tracing::warn!(
                    "kernel overlay unavailable ({err}{cause}); falling back to a copied root \
                     filesystem and a stat-walk diff"
                );
                let root = self.prepare_root(true)?;
                self.start(root, maps).map_err(Failure::into_error)
            }
            other => other.map_err(Failure::into_error),
        }
    }

    fn validate(&self) -> Result<(), RuntimeError> {
        if self.args.is_empty() || self.args[0].is_empty() {
            return Err(RuntimeError::InvalidSpec("no command to run".into()));
        }
        let relative = std::iter::once(self.cwd.as_path())
            .chain(self.mounts.iter().map(Mount::dst))
            .find(|p| !p.is_absolute());
        if let Some(p) = relative {
            return Err(RuntimeError::InvalidSpec(format!(
                "{} must be an absolute path inside the sandbox",
                p.display()
            )));
        }
        let has_nul = self.args.iter().any(|a| a.contains('\0'))
            || self
                .env
                .iter()
                .any(|(k, v)| k.contains(['\0', '=']) || v.contains('\0'));
        if has_nul {
            return Err(RuntimeError::InvalidSpec(
                "an argument or variable contains a NUL byte (or a name contains '=')".into(),
            ));
        }
        for m in &self.mounts {
            if let Mount::Bind { src, .. } = m {
                if !src.exists() {
                    return Err(RuntimeError::InvalidSpec(format!(
                        "mount source {} does not exist",
                        src.display()
                    )));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn init_plan(&self, root: RootMount, new_root: PathBuf, maps: &IdMaps) -> InitPlan {
        let cstr = |s: &str| CString::new(s).unwrap_or_default();
        let path = self
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        InitPlan {
            root,
            new_root,
            mounts: self.mounts.clone(),
            hostname: self.hostname.clone().unwrap_or_else(|| "flense".into()),
            network_none: self.network == Network::None && self.joined.is_none(),
            argv: self.args.iter().map(|a| cstr(a)).collect(),
            envp: self
                .env
                .iter()
                .map(|(k, v)| cstr(&format!("{k}={v}")))
                .collect(),
            path_dirs: path
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect(),
            cwd: self.cwd.clone(),
            user: self.user.clone(),
            set_ids: maps.mode != IdMode::Single,
            rlimits: self.rlimits.clone(),
        }
    }

    /// The namespaces the middle process unshares.
    fn namespaces(&self) -> CloneFlags {
        let mut flags = CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC;
        if self.joined.is_some() {
            return flags;
        }
        flags |= CloneFlags::CLONE_NEWUSER;
        if self.network == Network::None {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        flags
    }

    fn start(
        &mut self,
        (root, new_root, state): (RootMount, PathBuf, RootState),
        maps: IdMaps,
    ) -> Result<Child, Failure> {
        let plan = self.init_plan(root, new_root, &maps);
        let stdio = StdioFds::open(&mut self.stdin, &mut self.stdout, &mut self.stderr)?;
        let ControlPipes { sandbox, caller } = ControlPipes::open()?;
        let started = Instant::now();
        let join = self
            .joined
            .as_ref()
            .map(|j| (j.user_ns.as_fd(), j.net_ns.as_fd()));
        let middle = fork_middle(&plan, self.namespaces(), join, &stdio, &sandbox)?;
        drop(sandbox);
        let mut child = Child::new(
            middle,
            caller.status,
            maps,
            state,
            stdio.parent_ends,
            self.timeout,
            started,
        );
        let joined = self.joined.is_some();
        let ready = hand_over_id_maps(&mut child, middle, joined, caller.events, caller.go)
            .map_err(Failure::Other)
            .and_then(|()| read_setup_reports(&mut child, caller.info, caller.err))
            .and_then(|()| child.start_watchdog().map_err(Failure::Other));
        if let Err(failure) = ready {
            child.abandon();
            return Err(failure);
        }
        tracing::debug!(elapsed = ?started.elapsed(), "sandbox started");
        Ok(child)
    }
}

/// The ID-map handshake: the middle process writes "U" once it has unshared its user
/// namespace; the caller writes its ID maps and answers "G"; the middle process then
/// writes PID 1's host pid. When the middle process ends early, the child is left
/// without PID 1 and the error record says why. A sandbox that joined a group's user
/// namespace has its maps already.
fn hand_over_id_maps(
    child: &mut Child,
    middle: Pid,
    joined: bool,
    events: OwnedFd,
    go: OwnedFd,
) -> Result<(), RuntimeError> {
    let mut events = File::from(events);
    let mut byte = [0u8; 1];
    if events.read_exact(&mut byte).is_err() {
        return Ok(());
    }
    if !joined {
        child.maps.apply(middle.as_raw())?;
    }
    let _ = File::from(go).write_all(b"G");
    let mut pid = [0u8; 4];
    if events.read_exact(&mut pid).is_ok() {
        child.set_init(i32::from_le_bytes(pid));
    }
    Ok(())
}

/// Reads what the set-up reported, each pipe to its end (the sandbox's copies close
/// when the command is exec'd or the set-up fails): mount-point stubs to remove later,
/// notes, and the error record that stopped it, if any.
pub(crate) fn read_setup_reports(
    child: &mut Child,
    info: OwnedFd,
    err: OwnedFd,
) -> Result<(), Failure> {
    let mut lines = String::new();
    let _ = File::from(info).read_to_string(&mut lines);
    let mut record = Vec::new();
    let _ = File::from(err).read_to_end(&mut record);
    for line in lines.lines() {
        match line.split_once('\t') {
            Some(("stub", p)) => child.stubs.push(PathBuf::from(p)),
            Some(("warn", note)) => warn_once(note),
            Some((_, note)) => tracing::debug!("sandbox: {note}"),
            None => {}
        }
    }
    if let Some(failure) = decode_error_record(&record) {
        return Err(failure);
    }
    if !child.has_init() {
        return Err(Failure::Other(RuntimeError::Setup {
            stage: "start sandbox (the helper process died)".into(),
            source: std::io::Error::from_raw_os_error(libc::ECHILD),
        }));
    }
    Ok(())
}

/// The failure an error record describes (tag, errno as i32 LE, what failed), if the
/// record is complete.
pub(crate) fn decode_error_record(record: &[u8]) -> Option<Failure> {
    let [tag, e0, e1, e2, e3, what @ ..] = record else {
        return None;
    };
    let source = std::io::Error::from_raw_os_error(i32::from_le_bytes([*e0, *e1, *e2, *e3]));
    let what = String::from_utf8_lossy(what).into_owned();
    Some(match *tag {
        TAG_OVERLAY => Failure::Overlay(RuntimeError::Setup {
            stage: what,
            source,
        }),
        TAG_EXEC => Failure::Other(RuntimeError::Exec {
            program: what,
            source,
        }),
        _ => Failure::Other(RuntimeError::Setup {
            stage: what,
            source,
        }),
    })
}

/// Logs a warning of the sandbox set-up (a fallback it took) once per process.
fn warn_once(note: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.iter().any(|s| s == note) {
        tracing::warn!("sandbox: {note}");
        seen.push(note.to_string());
    }
}

/// Why a start failed: the overlay mount (retry with a copy) or anything else.
pub(crate) enum Failure {
    Overlay(RuntimeError),
    Other(RuntimeError),
}

impl Failure {
    pub(crate) fn into_error(self) -> RuntimeError {
        match self {
            Failure::Overlay(e) | Failure::Other(e) => e,
        }
    }
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Self {
        Failure::Other(e)
    }
}

/// The descriptors the child puts on 0, 1, 2, and the parent's ends of pipes.
pub(crate) struct StdioFds {
    pub(crate) child: [Option<OwnedFd>; 3],
    pub(crate) parent_ends: [Option<File>; 3],
}

impl StdioFds {
    pub(crate) fn open(
        stdin: &mut Stdio,
        stdout: &mut Stdio,
        stderr: &mut Stdio,
    ) -> Result<Self, Failure> {
        let mut fds = StdioFds {
            child: [None, None, None],
            parent_ends: [None, None, None],
        };
        for (i, s) in [stdin, stdout, stderr].into_iter().enumerate() {
            let io_err = |what: &str, e: std::io::Error| Failure::Other(RuntimeError::io(what, e));
            match std::mem::take(s) {
                Stdio::Inherit => {}
                Stdio::Null => {
                    let f = std::fs::OpenOptions::new()
                        .read(i == 0)
                        .write(i != 0)
                        .open("/dev/null")
                        .map_err(|e| io_err("open /dev/null", e))?;
                    fds.child[i] = Some(f.into());
                }
                Stdio::File(f) => fds.child[i] = Some(f.into()),
                Stdio::Piped => {
                    let (r, w) = pipe2(OFlag::O_CLOEXEC)
                        .map_err(|e| io_err("create stdio pipe", e.into()))?;
                    let (mine, theirs) = if i == 0 { (w, r) } else { (r, w) };
                    fds.parent_ends[i] = Some(File::from(mine));
                    fds.child[i] = Some(theirs);
                }
            }
        }
        Ok(fds)
    }
}

/// The pipes between the caller and the sandbox's processes.
pub(crate) struct ControlPipes {
    pub(crate) sandbox: SandboxEnds,
    pub(crate) caller: CallerEnds,
}

/// The ends the sandbox's processes use (inherited through fork).
pub(crate) struct SandboxEnds {
    /// Read by the middle process: "G" once its ID maps are written.
    go: OwnedFd,
    /// Written by the middle process: "U" once unshared, then PID 1's host pid.
    events: OwnedFd,
    err: OwnedFd,
    info: OwnedFd,
    status: OwnedFd,
}

/// The caller's ends of the same pipes.
pub(crate) struct CallerEnds {
    go: OwnedFd,
    events: OwnedFd,
    pub(crate) err: OwnedFd,
    pub(crate) info: OwnedFd,
    pub(crate) status: OwnedFd,
}

impl ControlPipes {
    pub(crate) fn open() -> Result<Self, Failure> {
        let pipe = || {
            pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| Failure::Other(RuntimeError::io("create pipe", e.into())))
        };
        let (go_r, go_w) = pipe()?;
        let (events_r, events_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (info_r, info_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        Ok(ControlPipes {
            sandbox: SandboxEnds {
                go: go_r,
                events: events_w,
                err: err_w,
                info: info_w,
                status: status_w,
            },
            caller: CallerEnds {
                go: go_w,
                events: events_r,
                err: err_r,
                info: info_r,
                status: status_r,
            },
        })
    }
}

impl SandboxEnds {
    pub(crate) fn report(&self) -> Report<'_> {
        Report {
            err: self.err.as_fd(),
            info: self.info.as_fd(),
            status: self.status.as_fd(),
        }
    }
}

/// Forks the middle process (which never returns into this code).
fn fork_middle(
    plan: &InitPlan,
    flags: CloneFlags,
    join: Option<(BorrowedFd<'_>, BorrowedFd<'_>)>,
    stdio: &StdioFds,
    ends: &SandboxEnds,
) -> Result<Pid, Failure> {
    let parent = nix::unistd::getpid();
    // SAFETY: the child runs only `middle` and, in its own children, the sandbox set-up:
    // descriptor, namespace, mount and process calls plus allocation, no lock another
    // thread of the caller may hold; every path ends in exec or `_exit`.
    match unsafe { sys::fork() } {
        Ok(0) => middle(plan, flags, join, stdio, ends, parent),
        Ok(pid) => Ok(Pid::from_raw(pid)),
        Err(e) => Err(Failure::Other(RuntimeError::io("fork", e))),
    }
}

/// The middle process: namespaces (joining a group's user and network namespaces
/// first, when given), then fork PID 1, then relay its end. Never returns.
fn middle(
    plan: &InitPlan,
    flags: CloneFlags,
    join: Option<(BorrowedFd<'_>, BorrowedFd<'_>)>,
    stdio: &StdioFds,
    ends: &SandboxEnds,
    parent: Pid,
) -> ! {
    let report = ends.report();
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        sys::exit(1);
    }
    for (i, fd) in stdio.child.iter().enumerate() {
        if let Some(fd) = fd {
            if nix::unistd::dup2(fd.as_raw_fd(), i as RawFd).is_err() {
                sys::exit(1);
            }
        }
    }
    let (go, events) = (ends.go.as_fd(), ends.events.as_fd());
    let mut keep = vec![go, events, report.err, report.info, report.status];
    keep.extend(join.iter().flat_map(|(user, net)| [*user, *net]));
    sys::close_fds_except(&keep);
    if let Some((user, net)) = join {
        if let Err(e) = nix::sched::setns(user, CloneFlags::CLONE_NEWUSER) {
            report.fail(init::TAG_SETUP, "join the shared user namespace", e.into());
        }
        if let Err(e) = nix::sched::setns(net, CloneFlags::CLONE_NEWNET) {
            report.fail(
                init::TAG_SETUP,
                "join the shared network namespace",
                e.into(),
            );
        }
        let _ = nix::unistd::close(user.as_raw_fd());
        let _ = nix::unistd::close(net.as_raw_fd());
    }
    if let Err(e) = nix::sched::unshare(flags) {
        report.fail(init::TAG_SETUP, "unshare namespaces", e.into());
    }
    init::write_all(events, b"U");
    if read_byte(go) != Some(b'G') {
        sys::exit(1);
    }
    // SAFETY: this process is a forked child with a single thread, so PID 1 inherits no
    // lock held by another thread; it ends in exec or `_exit`.
    let init_pid = match unsafe { sys::fork() } {
        Ok(0) => init::run(plan, report),
        Ok(pid) => pid,
        Err(e) => report.fail(init::TAG_SETUP, "fork init", e),
    };
    init::write_all(events, &init_pid.to_le_bytes());
    // The caller reads these pipes to their end: close this process's copies. Their
    // owners are never dropped here (the process ends with `_exit`).
    for fd in [events, go, report.err, report.info] {
        let _ = nix::unistd::close(fd.as_raw_fd());
    }
    relay_exit(Pid::from_raw(init_pid), report)
}

/// Reads one byte; `None` at the end of the pipe or on an error.
fn read_byte(fd: BorrowedFd<'_>) -> Option<u8> {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut byte) {
            Ok(1) => return Some(byte[0]),
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return None,
        }
    }
}

/// Waits for PID 1 and ends the middle process the same way (a signal becomes a
/// status record and exit code 128 + signal).
fn relay_exit(init: Pid, report: Report<'_>) -> ! {
    loop {
        match waitpid(init, None) {
            Ok(WaitStatus::Exited(_, code)) => sys::exit(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                report.status(true, sig as i32);
                sys::exit(128 + sig as i32)
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => sys::exit(1),
        }
    }
}
