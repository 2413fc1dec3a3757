//! Thin wrappers over system calls that `nix` does not offer (or offers only as `unsafe`),
//! each `unsafe` block justified where it stands.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Closes every file descriptor from 3 up, except those in `keep`.
pub(crate) fn close_fds_except(keep: &[BorrowedFd<'_>]) {
    let mut keep: Vec<RawFd> = keep
        .iter()
        .map(|fd| fd.as_raw_fd())
        .filter(|fd| *fd >= 3)
        .collect();
    keep.sort_unstable();
    let mut first: u32 = 3;
    for fd in keep {
        let fd = fd as u32;
        if fd > first {
            close_range(first, fd - 1);
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes descriptors; none of the closed ones is used again
    // by this process (the caller keeps the ones it needs).
    unsafe {
        libc::syscall(libc::SYS_close_range, first, last, 0u32);
    }
}

/// A pidfd for `pid` (Linux >= 5.3).
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` to the process behind `pidfd` (race-free against pid reuse).
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal with a null siginfo behaves like kill(2) on the pidfd.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Forks the process. Returns 0 in the child and the child's pid in the parent.
///
/// # Safety
///
/// Only the calling thread exists in the child, and locks that other threads of a
/// multithreaded caller held stay locked there. The child must therefore do only
/// async-signal-safe work, plus allocation (glibc's atfork handlers keep malloc usable),
/// take no other lock that another thread may hold, and end with exec or [`exit`]: it
/// must never return or unwind into the caller's normal control flow.
pub(crate) unsafe fn fork() -> io::Result<i32> {
    // SAFETY: fork(2) itself has no preconditions; what the child may do afterwards is
    // the caller's contract (see `# Safety`).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// Restores the default action of every catchable signal (Rust ignores SIGPIPE) and
/// unblocks all signals, so the exec'd program starts like one run from a shell.
pub(crate) fn reset_signals() {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting a signal's action to SIG_DFL installs no handler code.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // SAFETY: an empty, initialised sigset_t is passed to sigprocmask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Sets a resource limit.
pub(crate) fn setrlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit that lives for the call.
    let rc = unsafe { libc::setrlimit(resource as _, &lim) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Brings the loopback interface up (in a fresh network namespace it starts down).
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket creation; the descriptor is owned by `sock` right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the flags member of the union was just filled by SIOCGIFFLAGS.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `pivot_root(2)`.
pub(crate) fn pivot_root(new_root: &CString, put_old: &CString) -> io::Result<()> {
    // SAFETY: both arguments are valid NUL-terminated strings that outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ends the process at once, without running destructors or atexit handlers (which
/// belong to the parent's state in a forked child).
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no user-space state.
    unsafe { libc::_exit(code) }
}
