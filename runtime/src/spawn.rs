//! Starting a sandbox: the parent side (pipes, ID maps, waiting) and the middle process
//! that unshares the namespaces and forks the sandbox's PID 1.
//!
//! Processes: caller -> middle (unshares user, mount, pid, uts, ipc and maybe net
//! namespaces; waits for its ID maps) -> init (PID 1: mounts, pivot_root, reaps,
//! forwards signals) -> command.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{pipe2, Pid};

use crate::child::{Child, RootState};
use crate::error::RuntimeError;
use crate::idmap::{IdMaps, IdMode};
use crate::init::{self, InitPlan, Report, RootMount, TAG_EXEC, TAG_OVERLAY};
use crate::spec::{Mount, Network, Sandbox, Stdio};
use crate::sys;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Sandbox {
    /// Starts the command in a new sandbox. Returns once the command has been exec'd
    /// (or with the set-up or exec error). Falls back to a copied root when the kernel
    /// overlay cannot be mounted.
    pub fn spawn(&mut self) -> Result<Child, RuntimeError> {
        self.validate()?;
        let maps = IdMaps::resolve(self.id_mode, self.user.uid, self.user.gid)?;
        tracing::info!("user namespace mode: {}", maps.mode);
        let root = self.prepare_root(false)?;
        match self.start(root, maps.clone()) {
            Err(Failure::Overlay(err)) => {
                tracing::warn!(
                    "kernel overlay unavailable ({err}); falling back to a copied root \
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

    fn init_plan(&self, root: RootMount, new_root: PathBuf, maps: &IdMaps) -> InitPlan {
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
            network_none: self.network == Network::None,
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

    fn start(
        &mut self,
        (root, new_root, state): (RootMount, PathBuf, RootState),
        maps: IdMaps,
    ) -> Result<Child, Failure> {
        let plan = self.init_plan(root, new_root, &maps);
        let stdio = StdioFds::open(&mut self.stdin, &mut self.stdout, &mut self.stderr)?;
        let pipe = || {
            pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| Failure::Other(RuntimeError::io("create pipe", e.into())))
        };
        let (go_r, go_w) = pipe()?;
        let (ev_r, ev_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (info_r, info_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        let mut flags = CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC;
        if self.network == Network::None {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        let report = Report {
            err: err_w.as_raw_fd(),
            info: info_w.as_raw_fd(),
            status: status_w.as_raw_fd(),
        };
        let parent = nix::unistd::getpid();
        let started = Instant::now();
        let middle = match sys::fork() {
            Ok(0) => middle(
                &plan,
                flags,
                &stdio,
                go_r.as_raw_fd(),
                ev_w.as_raw_fd(),
                report,
                parent,
            ),
            Ok(pid) => Pid::from_raw(pid),
            Err(e) => return Err(Failure::Other(RuntimeError::io("fork", e))),
        };
        drop((go_r, ev_w, err_w, info_w, status_w));
        let mut ev = File::from(ev_r);
        let mut go = File::from(go_w);
        let mut child = Child::new(
            middle,
            status_r,
            maps,
            state,
            stdio.parent_ends,
            self.timeout,
            started,
        );
        let mut byte = [0u8; 1];
        if ev.read_exact(&mut byte).is_ok() {
            if let Err(e) = child.maps.apply(middle.as_raw()) {
                child.abandon();
                return Err(Failure::Other(e));
            }
            use std::io::Write;
            let _ = go.write_all(b"G");
            drop(go);
            let mut pid = [0u8; 4];
            if ev.read_exact(&mut pid).is_ok() {
                child.set_init(i32::from_le_bytes(pid));
            }
        }
        let mut info = String::new();
        let _ = File::from(info_r).read_to_string(&mut info);
        let mut err = Vec::new();
        let _ = File::from(err_r).read_to_end(&mut err);
        for line in info.lines() {
            match line.split_once('\t') {
                Some(("stub", p)) => child.stubs.push(PathBuf::from(p)),
                Some((_, note)) => tracing::debug!("sandbox: {note}"),
                None => {}
            }
        }
        if err.len() >= 5 {
            child.abandon();
            let errno = i32::from_le_bytes([err[1], err[2], err[3], err[4]]);
            let source = std::io::Error::from_raw_os_error(errno);
            let what = String::from_utf8_lossy(&err[5..]).into_owned();
            return Err(match err[0] {
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
            });
        }
        if !child.has_init() {
            child.abandon();
            return Err(Failure::Other(RuntimeError::Setup {
                stage: "start sandbox (the helper process died)".into(),
                source: std::io::Error::from_raw_os_error(libc::ECHILD),
            }));
        }
        if let Err(e) = child.start_watchdog() {
            child.abandon();
            return Err(Failure::Other(e));
        }
        tracing::debug!(elapsed = ?started.elapsed(), "sandbox started");
        Ok(child)
    }
}

/// Why a start failed: the overlay mount (retry with a copy) or anything else.
enum Failure {
    Overlay(RuntimeError),
    Other(RuntimeError),
}

impl Failure {
    fn into_error(self) -> RuntimeError {
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
struct StdioFds {
    child: [Option<OwnedFd>; 3],
    parent_ends: [Option<File>; 3],
}

impl StdioFds {
    fn open(stdin: &mut Stdio, stdout: &mut Stdio, stderr: &mut Stdio) -> Result<Self, Failure> {
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

/// The middle process: namespaces, then fork PID 1, then relay its end. Never returns.
fn middle(
    plan: &InitPlan,
    flags: CloneFlags,
    stdio: &StdioFds,
    go_r: RawFd,
    ev_w: RawFd,
    report: Report,
    parent: Pid,
) -> ! {
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
    sys::close_fds_except(&[go_r, ev_w, report.err, report.info, report.status]);
    if let Err(e) = nix::sched::unshare(flags) {
        report.fail(init::TAG_SETUP, "unshare namespaces", e.into());
    }
    init::write_all(ev_w, b"U");
    let mut go = [0u8; 1];
    // SAFETY: go_r is our open pipe descriptor; ManuallyDrop keeps it from being closed twice.
    let mut go_file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(go_r) });
    if go_file.read_exact(&mut go).is_err() || go[0] != b'G' {
        sys::exit(1);
    }
    let init_pid = match sys::fork() {
        Ok(0) => init::run(plan, report),
        Ok(pid) => pid,
        Err(e) => report.fail(init::TAG_SETUP, "fork init", e),
    };
    init::write_all(ev_w, &init_pid.to_le_bytes());
    for fd in [ev_w, go_r, report.err, report.info] {
        let _ = nix::unistd::close(fd);
    }
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(Pid::from_raw(init_pid), None) {
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
