//! A running sandbox: wait (with the sandbox's timeout), signal, and capture the diff.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::chroot::ChrootState;
use crate::copy::Snapshot;
use crate::diff::{self, DiffEntry, Ownership};
use crate::error::RuntimeError;
use crate::idmap::{IdMaps, IdMode};
use crate::sys;

/// How a sandboxed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
    /// The sandbox's timeout ran out and the whole sandbox was killed.
    TimedOut,
}

impl ExitStatus {
    /// True for `Exited(0)`.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Exited(0)
    }

    /// The shell-style code: the exit code, 128 + signal, or 124 after a timeout (as
    /// `timeout(1)` does).
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(c) => *c,
            ExitStatus::Signaled(s) => 128 + s,
            ExitStatus::TimedOut => 124,
        }
    }
}

/// What the root filesystem of a sandbox was, for the diff capture.
#[derive(Debug)]
pub(crate) enum RootState {
    /// A plain directory: nothing to capture.
    Dir,
    /// Kernel overlay: the upper directory is the diff.
    Overlay {
        upper: PathBuf,
        lowers: Vec<PathBuf>,
    },
    /// Copy fallback (and chroot isolation): the copied tree, its state before the
    /// command ran, and the subtrees the diff leaves out.
    Copy {
        tree: PathBuf,
        snapshot: Snapshot,
        prune: Vec<PathBuf>,
    },
}

/// A started sandbox.
#[derive(Debug)]
pub struct Child {
    middle: Pid,
    init: Option<OwnedFd>,
    init_pid: i32,
    status_r: OwnedFd,
    pub(crate) maps: IdMaps,
    state: RootState,
    pub(crate) stubs: Vec<PathBuf>,
    /// Chroot isolation: the process group to end and the caches to give back.
    pub(crate) chroot: Option<ChrootState>,
    timeout: Option<Duration>,
    timed_out: Arc<AtomicBool>,
    started: Instant,
    status: Option<ExitStatus>,
    /// The write end of the command's stdin, when it was [`Stdio::Piped`](crate::Stdio).
    pub stdin: Option<File>,
    /// The read end of the command's stdout, when piped.
    pub stdout: Option<File>,
    /// The read end of the command's stderr, when piped.
    pub stderr: Option<File>,
}

impl Child {
    pub(crate) fn new(
        middle: Pid,
        status_r: OwnedFd,
        maps: IdMaps,
        state: RootState,
        [stdin, stdout, stderr]: [Option<File>; 3],
        timeout: Option<Duration>,
        started: Instant,
    ) -> Self {
        Child {
            middle,
            init: None,
            init_pid: 0,
            status_r,
            maps,
            state,
            stubs: Vec::new(),
            chroot: None,
            timeout,
            timed_out: Arc::new(AtomicBool::new(false)),
            started,
            status: None,
            stdin,
            stdout,
            stderr,
        }
    }

    pub(crate) fn set_init(&mut self, pid: i32) {
        self.init_pid = pid;
        self.init = sys::pidfd_open(pid).ok();
    }

    /// Starts the watchdog that kills the sandbox when its timeout runs out, whether or
    /// not the caller is in [`wait`](Self::wait) (it may be reading a pipe).
    pub(crate) fn start_watchdog(&mut self) -> Result<(), RuntimeError> {
        let Some(limit) = self.timeout else {
            return Ok(());
        };
        let middle =
            sys::pidfd_open(self.middle.as_raw()).map_err(|e| RuntimeError::io("pidfd_open", e))?;
        let Some(init) = self.init.as_ref().and_then(|fd| fd.try_clone().ok()) else {
            return Ok(());
        };
        let started = self.started;
        let flag = Arc::clone(&self.timed_out);
        std::thread::spawn(move || loop {
            let left = limit.saturating_sub(started.elapsed());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(middle.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => {
                    tracing::warn!("timeout of {limit:?} reached; killing the sandbox");
                    flag.store(true, Ordering::SeqCst);
                    let _ = sys::pidfd_send_signal(init.as_fd(), libc::SIGKILL);
                    return;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                _ => return,
            }
        });
        Ok(())
    }

    /// A new descriptor for the sandbox's PID 1, if it started.
    pub(crate) fn init_pidfd(&self) -> Option<OwnedFd> {
        self.init.as_ref().and_then(|fd| fd.try_clone().ok())
    }

    pub(crate) fn has_init(&self) -> bool {
        self.init.is_some()
    }

    /// Kills whatever started and reaps the middle process (after a failed start).
    pub(crate) fn abandon(&mut self) {
        let _ = nix::sys::signal::kill(self.middle, Signal::SIGKILL);
        let _ = waitpid(self.middle, None);
        self.status = Some(ExitStatus::Signaled(libc::SIGKILL));
    }

    /// The ID mode the sandbox runs in.
    pub fn id_mode(&self) -> IdMode {
        self.maps.mode
    }

    /// The ID maps of the sandbox.
    pub fn id_maps(&self) -> &IdMaps {
        &self.maps
    }

    /// True when the root is a copied tree (the overlay fallback).
    pub fn uses_copy_fallback(&self) -> bool {
        matches!(self.state, RootState::Copy { .. })
    }

    /// The host pid of the sandbox's PID 1.
    pub fn init_pid(&self) -> i32 {
        self.init_pid
    }

    /// Sends `signal` to the sandbox: PID 1 forwards INT, TERM, HUP, QUIT, USR1, USR2
    /// and WINCH to the command; KILL ends every process of the sandbox at once.
    pub fn kill(&self, signal: i32) -> Result<(), RuntimeError> {
        if let Some(chroot) = &self.chroot {
            chroot.signal_group(signal);
        }
        let Some(fd) = &self.init else {
            return Ok(());
        };
        match sys::pidfd_send_signal(fd.as_fd(), signal) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(RuntimeError::io("signal the sandbox", e)),
        }
    }

    /// Waits up to `limit` for the sandbox to end: its status, or `None` while it still
    /// runs.
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<Option<ExitStatus>, RuntimeError> {
        if let (None, Some(init)) = (self.status, &self.init) {
            let ms = limit.as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(init.as_fd(), PollFlags::POLLIN)];
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            if let Ok(0) = poll(&mut fds, timeout) {
                return Ok(None);
            }
        }
        self.wait().map(Some)
    }

    /// Waits for the command to end, killing the whole sandbox if its timeout runs out.
    pub fn wait(&mut self) -> Result<ExitStatus, RuntimeError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        drop(self.stdin.take());
        // PID 1 ends once every process of the sandbox is gone; its status record is
        // then written. The middle process, whose exit tears the namespaces down (an
        // RCU grace period or two), is reaped in the background.
        if let Some(init) = &self.init {
            loop {
                let mut fds = [PollFd::new(init.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    _ => break,
                }
            }
            if !self.timed_out.load(Ordering::SeqCst) {
                if let Some(status) = self.read_status() {
                    let middle = self.middle;
                    std::thread::spawn(move || waitpid(middle, None));
                    self.status = Some(status);
                    return Ok(status);
                }
            }
        }
        let ws = loop {
            match waitpid(self.middle, None) {
                Ok(ws @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break ws,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(RuntimeError::io("wait for the sandbox", e.into())),
            }
        };
        let status = if self.timed_out.load(Ordering::SeqCst) {
            ExitStatus::TimedOut
        } else {
            self.read_status().unwrap_or(match ws {
                WaitStatus::Exited(_, c) => ExitStatus::Exited(c),
                WaitStatus::Signaled(_, s, _) => ExitStatus::Signaled(s as i32),
                _ => ExitStatus::Exited(1),
            })
        };
        self.status = Some(status);
        if let Some(chroot) = &mut self.chroot {
            chroot.finish();
        }
        Ok(status)
    }

    fn read_status(&self) -> Option<ExitStatus> {
        let _ = nix::fcntl::fcntl(
            self.status_r.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut file = File::from(self.status_r.try_clone().ok()?);
        let mut rec = [0u8; 8];
        file.read_exact(&mut rec).ok()?;
        let kind = i32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let value = i32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
        Some(if kind == 0 {
            ExitStatus::Exited(value)
        } else {
            ExitStatus::Signaled(value)
        })
    }

    /// The root filesystem changes made in the sandbox, sorted by path. Ownership comes
    /// from the file system (mapped back to sandbox IDs) in root and subuid modes, and
    /// is the sandbox's user in single mode. Mount-point stubs, `/etc/resolv.conf` and
    /// `/etc/hosts` are left out. Call after [`wait`](Self::wait).
    pub fn diff(&self, single_mode_owner: (u32, u32)) -> Result<Vec<DiffEntry>, RuntimeError> {
        let ownership = match self.maps.mode {
            IdMode::Single => Ownership::Fixed(single_mode_owner.0, single_mode_owner.1),
            _ => Ownership::Mapped(&self.maps),
        };
        let mut ignore: Vec<PathBuf> = self
            .stubs
            .iter()
            .map(|p| p.strip_prefix("/").unwrap_or(p).to_path_buf())
            .collect();
        ignore.push("etc/resolv.conf".into());
        ignore.push("etc/hosts".into());
        match &self.state {
            RootState::Dir => Err(RuntimeError::InvalidSpec(
                "a plain-directory root has no diff".into(),
            )),
            RootState::Overlay { upper, lowers } => {
                diff::from_upper(upper, lowers, &ignore, &ownership)
            }
            RootState::Copy {
                tree,
                snapshot,
                prune,
            } => diff::from_snapshot(tree, snapshot, &ignore, prune, &ownership),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.kill(libc::SIGKILL);
            let _ = waitpid(self.middle, None);
            if let Some(chroot) = &mut self.chroot {
                chroot.finish();
            }
        }
    }
}
