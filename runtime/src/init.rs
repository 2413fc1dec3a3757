//! Code that runs inside the new namespaces: the file-system set-up done by the
//! sandbox's PID 1 (mounts, `pivot_root`, /proc, /dev, /sys, host files), then the init
//! loop that reaps zombies and forwards signals, and the exec of the command.
//!
//! Everything here runs in forked children: errors are reported to the parent through
//! a pipe ([`Report`]) and the process ends with `_exit`.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::mounts::FsSetup;
use crate::spec::{Mount, Rlimit, User};
use crate::sys;

/// Error-record tags written to the error pipe.
pub(crate) const TAG_SETUP: u8 = 1;
pub(crate) const TAG_EXEC: u8 = 2;
pub(crate) const TAG_OVERLAY: u8 = 3;

/// How the new root is mounted.
#[derive(Debug)]
pub(crate) enum RootMount {
    /// Kernel overlay with these options, mounted from `mount_cwd` when the lower
    /// directories are given relative to it.
    Overlay {
        options: String,
        mount_cwd: Option<PathBuf>,
    },
    /// Bind the directory onto itself.
    Bind { writable: bool },
}

/// Everything the sandbox's PID 1 needs, computed before forking.
#[derive(Debug)]
pub(crate) struct InitPlan {
    pub root: RootMount,
    pub new_root: PathBuf,
    pub mounts: Vec<Mount>,
    pub hostname: String,
    pub network_none: bool,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub path_dirs: Vec<PathBuf>,
    pub cwd: PathBuf,
    pub user: User,
    pub set_ids: bool,
    pub rlimits: Vec<Rlimit>,
}

/// The pipes a sandbox child writes to (write ends owned by the caller of `spawn`,
/// inherited by the forked children).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report<'fd> {
    /// Error records: tag, errno (i32 LE), message. Close-on-exec.
    pub err: BorrowedFd<'fd>,
    /// Lines `stub\t<path>` and `note\t<text>`.
    pub info: BorrowedFd<'fd>,
    /// The final status record: kind (0 exit, 1 signal) and value, i32 LE each.
    pub status: BorrowedFd<'fd>,
}

impl Report<'_> {
    /// Writes an error record and ends the process.
    pub fn fail(&self, tag: u8, what: &str, err: io::Error) -> ! {
        let mut rec = vec![tag];
        rec.extend_from_slice(&err.raw_os_error().unwrap_or(0).to_le_bytes());
        rec.extend_from_slice(what.as_bytes());
        write_all(self.err, &rec);
        sys::exit(127)
    }

    /// Writes an info line (`stub` or `note`) for the parent.
    pub fn line(&self, kind: &str, text: &str) {
        let line = format!("{kind}\t{text}\n");
        write_all(self.info, line.as_bytes());
    }

    /// Writes the final status record.
    pub fn status(&self, signaled: bool, value: i32) {
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&(signaled as i32).to_le_bytes());
        rec[4..].copy_from_slice(&value.to_le_bytes());
        write_all(self.status, &rec);
    }
}

/// Writes all of `buf` to `fd`, ignoring errors (the reader may be gone).
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return,
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// PID 1 of the sandbox: sets up the root, starts the command, then reaps and forwards
/// signals until the command ends. Never returns.
pub(crate) fn run(plan: &InitPlan, report: Report<'_>) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut fs = FsSetup {
        report,
        stubs: Vec::new(),
    };
    fs.setup_root(plan);
    if plan.network_none {
        if let Err(e) = sys::loopback_up() {
            report.fail(TAG_SETUP, "bring up lo", e);
        }
    }
    if let Err(e) = nix::unistd::sethostname(&plan.hostname) {
        // A container's seccomp profile may refuse it (podman's, without
        // CAP_SYS_ADMIN): the sandbox keeps the container's host name.
        report.line(
            "warn",
            &format!("cannot set the host name here ({e}); the container's is kept"),
        );
    }
    for stub in &fs.stubs {
        report.line("stub", &stub.to_string_lossy());
    }

    let forwarded = forwarded_signals();
    let _ = forwarded.thread_block();
    // SAFETY: PID 1 is itself a forked child with a single thread, so the command's
    // process inherits no lock held by another thread; it ends in exec or `_exit`.
    let pid = match unsafe { sys::fork() } {
        Ok(0) => exec_command(plan, report),
        Ok(pid) => Pid::from_raw(pid),
        Err(e) => report.fail(TAG_SETUP, "fork command", e),
    };
    // The parent reads the error and info pipes to their end: close this process's
    // copies (never used here again) so that only the command holds them.
    let _ = nix::unistd::close(report.err.as_raw_fd());
    let _ = nix::unistd::close(report.info.as_raw_fd());
    reap_until_exit(pid, &forwarded, report)
}

fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(sig);
    }
    set
}

/// Waits for signals: reaps every child on SIGCHLD, forwards the others to the command
/// (except what the terminal sent to the process group the command is in: the command
/// got that itself).
fn reap_until_exit(command: Pid, set: &SigSet, report: Report<'_>) -> ! {
    let signals =
        nix::sys::signalfd::SignalFd::with_flags(set, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC);
    loop {
        let (sig, from_terminal) = match &signals {
            Ok(sfd) => match sfd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(sig) => (sig, crate::forward::from_terminal(info.ssi_code)),
                    Err(_) => continue,
                },
                _ => continue,
            },
            Err(_) => match set.wait() {
                Ok(sig) => (sig, false),
                Err(_) => continue,
            },
        };
        if sig != Signal::SIGCHLD {
            let own_group = nix::unistd::getpgid(Some(command)) == Ok(nix::unistd::getpgrp());
            if !(from_terminal && own_group) {
                let _ = kill(command, sig);
            }
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == command => {
                    report.status(false, code);
                    sys::exit(code)
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                    report.status(true, sig as i32);
                    sys::exit(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// The command's process: identity, limits, directory, then exec.
pub(crate) fn exec_command(plan: &InitPlan, report: Report<'_>) -> ! {
    sys::reset_signals();
    // Files a step creates must not depend on the caller's umask.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    if plan.set_ids {
        let groups: Vec<Gid> = plan.user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        if let Err(e) = nix::unistd::setgroups(&groups) {
            report.fail(TAG_SETUP, "setgroups", e.into());
        }
        let gid = Gid::from_raw(plan.user.gid);
        if let Err(e) = nix::unistd::setresgid(gid, gid, gid) {
            report.fail(TAG_SETUP, &format!("setgid {}", plan.user.gid), e.into());
        }
        let uid = Uid::from_raw(plan.user.uid);
        if let Err(e) = nix::unistd::setresuid(uid, uid, uid) {
            report.fail(TAG_SETUP, &format!("setuid {}", plan.user.uid), e.into());
        }
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        report.fail(TAG_SETUP, "no_new_privs", e.into());
    }
    for lim in &plan.rlimits {
        if let Err(e) = sys::setrlimit(lim.resource, lim.soft, lim.hard) {
            report.fail(TAG_SETUP, &format!("setrlimit {}", lim.resource), e);
        }
    }
    if let Err(e) = nix::unistd::chdir(&plan.cwd) {
        report.fail(
            TAG_SETUP,
            &format!("chdir {}", plan.cwd.display()),
            e.into(),
        );
    }
    let program = plan.argv[0].as_bytes();
    let mut last = nix::errno::Errno::ENOENT;
    if program.contains(&b'/') {
        last = nix::unistd::execve(&plan.argv[0], &plan.argv, &plan.envp).unwrap_err();
    } else {
        for dir in &plan.path_dirs {
            let Ok(candidate) = CString::new(
                dir.join(Path::new(std::ffi::OsStr::from_bytes(program)))
                    .into_os_string()
                    .as_bytes(),
            ) else {
                continue;
            };
            let err = nix::unistd::execve(&candidate, &plan.argv, &plan.envp).unwrap_err();
            if err != nix::errno::Errno::ENOENT && err != nix::errno::Errno::ENOTDIR {
                last = err;
            }
        }
    }
    report.fail(
        TAG_EXEC,
        &String::from_utf8_lossy(program),
        io::Error::from_raw_os_error(last as i32),
    )
}
