//! How a sandbox is isolated: namespaces (user, mount, pid, uts, ipc, net) or, where a
//! container's seccomp profile or missing capabilities refuse namespace creation, a
//! `chroot` into a copied root filesystem (root only). Whether namespaces can be
//! created is probed once per process, and a refusal is explained: which kernel or
//! security setting was detected and what an administrator can change.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::OnceLock;

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};

use crate::error::RuntimeError;
use crate::sys;

/// The isolation of a sandbox, as asked (`--isolation`, `$FLENSE_ISOLATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Namespaces when the kernel and the container allow them; chroot for root when
    /// they are refused; an error explaining the refusal otherwise.
    #[default]
    Auto,
    /// User, mount, pid, uts and ipc namespaces on an overlay (or copied) root.
    Namespace,
    /// `chroot` into a copied root filesystem, as root, without namespaces: no own
    /// /proc, /sys, pid, host name, IPC or network isolation (like buildah's
    /// `--isolation chroot` in a container, or kaniko).
    Chroot,
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Auto => "auto",
            Isolation::Namespace => "namespace",
            Isolation::Chroot => "chroot",
        })
    }
}

impl FromStr for Isolation {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" | "" => Ok(Isolation::Auto),
            "namespace" | "namespaces" | "oci" => Ok(Isolation::Namespace),
            "chroot" => Ok(Isolation::Chroot),
            other => Err(RuntimeError::InvalidSpec(format!(
                "unknown isolation {other:?} (expected auto, namespace or chroot)"
            ))),
        }
    }
}

impl Isolation {
    /// The isolation a sandbox started now gets: `Auto` becomes `Namespace` or (for
    /// root, when namespaces are refused) `Chroot`. Fails with the detected cause when
    /// the asked isolation cannot work here.
    pub fn resolve(self) -> Result<Isolation, RuntimeError> {
        let root = nix::unistd::geteuid().is_root();
        match self {
            Isolation::Chroot if !root => Err(RuntimeError::IdMode(
                "chroot isolation needs root (it calls chroot(2) and sets the step's user \
                 IDs without a user namespace)"
                    .into(),
            )),
            Isolation::Chroot => {
                static ONCE: OnceLock<()> = OnceLock::new();
                ONCE.get_or_init(|| {
                    tracing::info!(
                        "isolation: chroot (asked for): commands run chrooted into a copied \
                         root filesystem, without pid, mount, network or IPC isolation"
                    )
                });
                Ok(Isolation::Chroot)
            }
            Isolation::Namespace => namespaces_allowed().map(|()| Isolation::Namespace),
            Isolation::Auto => match namespaces_allowed() {
                Ok(()) => Ok(Isolation::Namespace),
                Err(e) if root => {
                    announce_chroot(&e);
                    Ok(Isolation::Chroot)
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// Says once per process that chroot isolation was chosen, and why.
fn announce_chroot(refusal: &RuntimeError) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let cause = match refusal {
            RuntimeError::Namespaces { cause, .. } => cause.clone(),
            other => other.to_string(),
        };
        tracing::info!(
            "isolation: chroot, because namespace creation is refused here ({cause}): \
             commands run chrooted into a copied root filesystem, without pid, mount, \
             network or IPC isolation (--isolation namespace makes this an error)"
        );
    });
}

/// Ok when this process may create the namespaces a sandbox needs (probed once, in a
/// short-lived child); the refusal, with its detected cause, otherwise.
pub fn namespaces_allowed() -> Result<(), RuntimeError> {
    static PROBE: OnceLock<Option<i32>> = OnceLock::new();
    match *PROBE.get_or_init(probe) {
        None => Ok(()),
        Some(errno) => Err(refusal(errno)),
    }
}

/// Forks a child that unshares the sandbox's namespaces; `None` when it could, else
/// the errno it got.
fn probe() -> Option<i32> {
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    // SAFETY: the child only calls unshare(2) and `_exit`: no allocation, no lock.
    let pid = match unsafe { sys::fork() } {
        Ok(0) => match nix::sched::unshare(flags) {
            Ok(()) => sys::exit(0),
            Err(e) => sys::exit((e as i32).clamp(1, 255)),
        },
        Ok(pid) => nix::unistd::Pid::from_raw(pid),
        Err(e) => return Some(e.raw_os_error().unwrap_or(libc::EPERM)),
    };
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, 0)) => return None,
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Ok(WaitStatus::Signaled(..)) => return Some(libc::EPERM),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Some(e as i32),
        }
    }
}

/// The error for a refused `unshare`, naming the setting that explains it.
fn refusal(errno: i32) -> RuntimeError {
    let root = nix::unistd::geteuid().is_root();
    let (cause, remedy) = diagnose(errno, root, &read_setting);
    RuntimeError::Namespaces {
        cause,
        remedy,
        source: io::Error::from_raw_os_error(errno),
    }
}

fn read_setting(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

const MAX_USERNS: &str = "/proc/sys/user/max_user_namespaces";
const APPARMOR_USERNS: &str = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";
const DEBIAN_USERNS: &str = "/proc/sys/kernel/unprivileged_userns_clone";

/// The detected cause and the administrator's remedy for `unshare` failing with
/// `errno` (for root or not), from the kernel settings `read` returns (by /proc/sys
/// path).
fn diagnose(errno: i32, root: bool, read: &dyn Fn(&str) -> Option<String>) -> (String, String) {
    let also_root = if root {
        ""
    } else {
        " (or run flense as root in the container: it then uses --isolation chroot)"
    };
    if read(MAX_USERNS).as_deref() == Some("0") {
        return (
            "user namespaces are disabled: user.max_user_namespaces is 0".into(),
            format!(
                "an administrator can enable them with `sysctl -w user.max_user_namespaces=15000` \
                 (and in /etc/sysctl.d/ to keep it){also_root}"
            ),
        );
    }
    if read(DEBIAN_USERNS).as_deref() == Some("0") && !root {
        return (
            "unprivileged user namespaces are disabled: kernel.unprivileged_userns_clone is 0"
                .into(),
            "an administrator can enable them with `sysctl -w kernel.unprivileged_userns_clone=1` \
             (and in /etc/sysctl.d/ to keep it)"
                .into(),
        );
    }
    if read(APPARMOR_USERNS).as_deref() == Some("1") && !root && errno == libc::EPERM {
        return (
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns is 1)"
                .into(),
            "an administrator can allow them for flense with an AppArmor profile granting \
             `userns,` (e.g. /etc/apparmor.d/flense: `profile flense /usr/local/bin/flense \
             flags=(unconfined) { userns, }`), or turn the restriction off with \
             `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
                .into(),
        );
    }
    match errno {
        libc::ENOSPC => (
            "the limit of user namespaces is reached (user.max_user_namespaces, or the \
             container's own limit)"
                .into(),
            format!("an administrator can raise user.max_user_namespaces with sysctl{also_root}"),
        ),
        libc::EINVAL => (
            "this kernel has no user namespace support (CONFIG_USER_NS)".into(),
            format!("an administrator can use a kernel built with CONFIG_USER_NS=y{also_root}"),
        ),
        _ => (
            "a seccomp filter or missing capability refuses unshare(2) of user namespaces \
             (e.g. the default seccomp profile of Docker or of Kubernetes' RuntimeDefault, \
             which allow it only with CAP_SYS_ADMIN)"
                .into(),
            format!(
                "an administrator can run the container with a seccomp profile that allows \
                 unshare and clone with namespace flags (podman's default does; Docker: \
                 `--security-opt seccomp=unconfined` or a custom profile; Kubernetes: \
                 `securityContext.seccompProfile` of type Unconfined or Localhost){also_root}"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_parses_and_prints() {
        for s in ["auto", "namespace", "chroot"] {
            assert_eq!(s.parse::<Isolation>().unwrap().to_string(), s);
        }
        assert!("vm".parse::<Isolation>().is_err());
    }

    #[test]
    fn the_detected_setting_is_named() {
        let settings = |max: &'static str, apparmor: &'static str| {
            move |path: &str| match path {
                MAX_USERNS => Some(max.to_string()),
                APPARMOR_USERNS => Some(apparmor.to_string()),
                _ => None,
            }
        };
        let (cause, remedy) = diagnose(libc::ENOSPC, false, &settings("0", "0"));
        assert!(cause.contains("max_user_namespaces is 0"), "{cause}");
        assert!(
            remedy.contains("sysctl -w user.max_user_namespaces"),
            "{remedy}"
        );
        let (cause, remedy) = diagnose(libc::EPERM, false, &settings("1000", "0"));
        assert!(cause.contains("seccomp"), "{cause}");
        assert!(remedy.contains("run flense as root"), "{remedy}");
        let (cause, _) = diagnose(libc::EPERM, false, &settings("1000", "1"));
        assert!(cause.contains("AppArmor"), "{cause}");
        // Root is not subject to AppArmor's restriction of unprivileged namespaces.
        let (cause, remedy) = diagnose(libc::EPERM, true, &settings("1000", "1"));
        assert!(cause.contains("seccomp"), "{cause}");
        assert!(!remedy.contains("run flense as root"), "{remedy}");
    }
}
