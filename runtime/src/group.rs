//! A network shared by several sandboxes: one user and network namespace, created once
//! by a small holder process, that sandboxes then join instead of making their own.
//!
//! Joining a network namespace needs CAP_SYS_ADMIN in the user namespace that owns it.
//! The caller owns the holder's user namespace (it created it from its own user
//! namespace), so a sandbox's middle process may enter that user namespace first and
//! then the network namespace; it then unshares its own mount, pid, uts and ipc
//! namespaces inside it. Every sandbox of a group therefore uses the group's ID maps.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{pipe2, Pid};

use crate::error::RuntimeError;
use crate::idmap::{IdMaps, IdMode};
use crate::sys;

/// A private network (loopback only) that sandboxes join with
/// [`Sandbox::join`](crate::Sandbox::join). Dropping it ends the holder process; the
/// namespaces live on while a sandbox still uses them.
#[derive(Debug)]
pub struct NetworkGroup {
    holder: Pid,
    maps: IdMaps,
    user_ns: OwnedFd,
    net_ns: OwnedFd,
    /// Closing it tells the holder to exit.
    keep_alive: Option<OwnedFd>,
    /// The user-mode network process giving outbound access, when connected.
    pasta: Option<Pid>,
}

/// What a sandbox needs to join a group: the namespace descriptors and the ID maps.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) user_ns: OwnedFd,
    pub(crate) net_ns: OwnedFd,
    pub(crate) maps: IdMaps,
}

impl NetworkGroup {
    /// Creates the namespaces with the ID maps of `mode` for the in-sandbox user
    /// `uid:gid` (single mode maps only that user, so every sandbox of the group must
    /// run as it), and brings loopback up.
    pub fn new(mode: IdMode, uid: u32, gid: u32) -> Result<NetworkGroup, RuntimeError> {
        let maps = IdMaps::resolve(mode, uid, gid)?;
        let pipe =
            || pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::io("create pipe", e.into()));
        let (events_r, events_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let (keep_r, keep_w) = pipe()?;
        let parent = nix::unistd::getpid();
        // SAFETY: the child runs only `hold`: namespace and descriptor calls, no lock
        // another thread of the caller may hold; it ends with `_exit`.
        let holder = match unsafe { sys::fork() } {
            Ok(0) => hold(parent, events_w, go_r, keep_r),
            Ok(pid) => Pid::from_raw(pid),
            Err(e) => return Err(RuntimeError::io("fork the network holder", e)),
        };
        drop((events_w, go_r, keep_r));
        match handshake(holder, &maps, events_r, go_w) {
            Ok((user_ns, net_ns)) => Ok(NetworkGroup {
                holder,
                maps,
                user_ns,
                net_ns,
                keep_alive: Some(keep_w),
                pasta: None,
            }),
            Err(e) => {
                let _ = nix::sys::signal::kill(holder, Signal::SIGKILL);
                let _ = waitpid(holder, None);
                Err(e)
            }
        }
    }

    /// Gives the group outbound network access through `pasta` (Debian's `passt`
    /// package), a user-mode network stack like rootless podman's: a `tap` interface
    /// with the host's addresses and routes, its DNS forwarded; no port of the host
    /// is forwarded in. Returns once the interface is configured.
    pub fn connect_outbound(&mut self) -> Result<(), RuntimeError> {
        let dir = tempfile_dir()?;
        let pid_file = dir.join("pasta.pid");
        let mut cmd = std::process::Command::new("pasta");
        cmd.args(["--config-net", "--quiet"])
            .args(["-t", "none", "-u", "none", "-T", "none", "-U", "none"])
            .arg("--pid")
            .arg(&pid_file)
            .stdin(std::process::Stdio::null());
        if nix::unistd::geteuid().is_root() {
            // pasta otherwise drops to `nobody`, who may not enter root's namespaces.
            cmd.args(["--runas", "0"]);
        }
        cmd.arg(self.holder.as_raw().to_string());
        let out = cmd.output();
        let pid = std::fs::read_to_string(&pid_file);
        let _ = std::fs::remove_dir_all(&dir);
        let out = out.map_err(|e| {
            RuntimeError::io(
                "run pasta (install Debian's passt package) for outbound network",
                e,
            )
        })?;
        if !out.status.success() {
            return Err(RuntimeError::Helper {
                program: "pasta (outbound network)".into(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        self.pasta = pid
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .map(Pid::from_raw);
        Ok(())
    }

    /// The ID maps every sandbox of the group uses.
    pub fn id_maps(&self) -> &IdMaps {
        &self.maps
    }

    pub(crate) fn joined(&self) -> Result<Joined, RuntimeError> {
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| RuntimeError::io("dup", e));
        Ok(Joined {
            user_ns: dup(&self.user_ns)?,
            net_ns: dup(&self.net_ns)?,
            maps: self.maps.clone(),
        })
    }
}

/// The caller's side of the holder's start: ID maps, then the namespace descriptors.
fn handshake(
    holder: Pid,
    maps: &IdMaps,
    events: OwnedFd,
    go: OwnedFd,
) -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    let mut events = File::from(events);
    let mut byte = [0u8; 1];
    let setup = |what: &str, errno: i32| RuntimeError::Setup {
        stage: format!("create the shared network: {what}"),
        source: std::io::Error::from_raw_os_error(errno),
    };
    if events.read_exact(&mut byte).is_err() || byte[0] != b'U' {
        return Err(setup(
            "unshare user and network namespaces",
            errno_of(&mut events),
        ));
    }
    maps.apply(holder.as_raw())?;
    let _ = File::from(go).write_all(b"G");
    if events.read_exact(&mut byte).is_err() || byte[0] != b'R' {
        return Err(setup("bring up lo", errno_of(&mut events)));
    }
    let ns = |kind: &str| {
        let path = format!("/proc/{}/ns/{kind}", holder.as_raw());
        File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| RuntimeError::io(format!("open {path}"), e))
    };
    Ok((ns("user")?, ns("net")?))
}

/// The errno the holder wrote after a failure byte (0 when none).
fn errno_of(events: &mut File) -> i32 {
    let mut errno = [0u8; 4];
    match events.read_exact(&mut errno) {
        Ok(()) => i32::from_le_bytes(errno),
        Err(_) => libc::ECHILD,
    }
}

/// A fresh private directory for pasta's pid file.
fn tempfile_dir() -> Result<std::path::PathBuf, RuntimeError> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = base.join(format!("flense-pasta-{}-{attempt}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(RuntimeError::io(format!("create {}", dir.display()), e)),
        }
    }
    Err(RuntimeError::io(
        "create a directory for pasta",
        std::io::Error::from_raw_os_error(libc::EEXIST),
    ))
}

impl Drop for NetworkGroup {
    fn drop(&mut self) {
        if let Some(pasta) = self.pasta.take() {
            // Not our child (it daemonised): no reaping.
            let _ = nix::sys::signal::kill(pasta, Signal::SIGTERM);
        }
        drop(self.keep_alive.take());
        let _ = nix::sys::signal::kill(self.holder, Signal::SIGKILL);
        let _ = waitpid(self.holder, None);
    }
}

/// The holder process: unshares user and network namespaces, waits for its ID maps,
/// brings loopback up, then sleeps until the caller closes `keep` (or dies).
fn hold(parent: Pid, events: OwnedFd, go: OwnedFd, keep: OwnedFd) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        sys::exit(1);
    }
    sys::close_fds_except(&[events.as_fd(), go.as_fd(), keep.as_fd()]);
    let fail = |step: u8, errno: i32| -> ! {
        let mut rec = vec![step];
        rec.extend_from_slice(&errno.to_le_bytes());
        crate::init::write_all(events.as_fd(), &rec);
        sys::exit(1)
    };
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET) {
        fail(b'u', e as i32);
    }
    crate::init::write_all(events.as_fd(), b"U");
    let mut byte = [0u8; 1];
    if nix::unistd::read(go.as_raw_fd(), &mut byte) != Ok(1) {
        sys::exit(1);
    }
    if let Err(e) = sys::loopback_up() {
        fail(b'l', e.raw_os_error().unwrap_or(0));
    }
    crate::init::write_all(events.as_fd(), b"R");
    loop {
        match nix::unistd::read(keep.as_raw_fd(), &mut byte) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => sys::exit(0),
        }
    }
}
