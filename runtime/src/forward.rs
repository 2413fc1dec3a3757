//! Forwarding the caller's termination signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT) to a
//! sandbox, so that Ctrl-C or `kill` on `flense run` reaches the command as it would
//! reach a process started directly.
//!
//! A signal the terminal sent (Ctrl-C, Ctrl-\, hang-up) went to the whole foreground
//! process group, which the sandbox shares with the caller: the sandbox got it already,
//! so it is not sent a second time (see [`from_terminal`]).

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::child::Child;
use crate::error::RuntimeError;
use crate::sys;

/// Forwards signals while it lives; dropping it stops forwarding and restores the
/// calling thread's signal mask.
#[derive(Debug)]
pub struct SignalForwarder {
    stop: Arc<AtomicBool>,
    wake: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    old_mask: SigSet,
}

fn forwarded() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(sig);
    }
    set
}

impl SignalForwarder {
    /// Blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT in the calling thread, so that they
    /// stay pending until [`forward_to`](Self::forward_to) passes them on. Call it
    /// before spawning (a signal that arrives in between is then not lost), from the
    /// thread that waits, in a program whose other threads block them too.
    pub fn block() -> Result<SignalForwarder, RuntimeError> {
        let mut old_mask = SigSet::empty();
        nix::sys::signal::pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&forwarded()),
            Some(&mut old_mask),
        )
        .map_err(|e| RuntimeError::io("block signals", e.into()))?;
        Ok(SignalForwarder {
            stop: Arc::new(AtomicBool::new(false)),
            wake: None,
            thread: None,
            old_mask,
        })
    }

    /// Takes a blocked signal that is pending (not forwarded: nothing is being forwarded
    /// to yet), if any; e.g. to give up starting something when the user pressed Ctrl-C.
    pub fn take_pending(&self) -> Option<i32> {
        let sfd =
            SignalFd::with_flags(&forwarded(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
                .ok()?;
        let info = sfd.read_signal().ok()??;
        Some(info.ssi_signo as i32)
    }

    /// Starts forwarding the blocked signals to `child`'s sandbox (its PID 1 passes
    /// them to the command).
    pub fn forward_to(&mut self, child: &Child) -> Result<(), RuntimeError> {
        let init: OwnedFd = child
            .init_pidfd()
            .ok_or_else(|| RuntimeError::InvalidSpec("the sandbox has no init process".into()))?;
        let sfd =
            SignalFd::with_flags(&forwarded(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
                .map_err(|e| RuntimeError::io("signalfd", e.into()))?;
        let same_group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(child.init_pid())))
            .is_ok_and(|group| group == nix::unistd::getpgrp());
        let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| RuntimeError::io("create pipe", e.into()))?;
        self.wake = Some(stop_w);
        let flag = Arc::clone(&self.stop);
        self.thread = Some(std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let mut fds = [
                    PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                    PollFd::new(stop_r.as_fd(), PollFlags::POLLIN),
                ];
                if poll(&mut fds, PollTimeout::NONE).is_err() {
                    continue;
                }
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    break;
                }
                while let Ok(Some(info)) = sfd.read_signal() {
                    let sig = info.ssi_signo as i32;
                    if same_group && from_terminal(info.ssi_code) {
                        tracing::debug!("signal {sig} came from the terminal to the sandbox too");
                        continue;
                    }
                    tracing::debug!("forwarding signal {sig} to the sandbox");
                    let _ = sys::pidfd_send_signal(init.as_fd(), sig);
                }
            }
        }));
        Ok(())
    }
}

/// Whether a signal's `si_code` says the kernel sent it, as the terminal does to its
/// foreground process group (Ctrl-C, Ctrl-\, hang-up); `kill` and friends give
/// `SI_USER` or `SI_QUEUE`.
pub(crate) fn from_terminal(si_code: i32) -> bool {
    si_code == libc::SI_KERNEL
}

impl Drop for SignalForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(wake) = self.wake.take() {
            let _ = nix::unistd::write(&wake, b"x");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ =
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
    }
}
