//! Running images from the store in the sandbox (`flense run --image`, and `flense run
//! VARIANT` after building it): the image's entrypoint and cmd, env, user and working
//! directory, with the caller's overrides. The root is an overlay of the image's
//! unpacked layers with a throw-away upper directory. Builds run their steps through
//! [`crate::builder::run`] instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flense_runtime::{
    ExitStatus, IdMode, Isolation, Mount, Network, Overlay, RootFs, Sandbox, SignalForwarder,
};

use crate::store::{Store, StoreError, StoredImage};

mod services;

pub use services::{ServiceSpec, Services, DEFAULT_READY_TIMEOUT};

/// Why an image could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store could not give the image or its layers.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sandbox failed.
    #[error(transparent)]
    Runtime(#[from] flense_runtime::RuntimeError),
    /// The image has no entrypoint or cmd and no command was given.
    #[error("image {0} has no entrypoint or cmd; give a command after --")]
    NoCommand(String),
    /// A user or group name is not in the image's /etc/passwd or /etc/group.
    #[error("user {user:?}: {reason}")]
    User {
        /// The user spec (`name`, `uid`, `uid:gid`, `name:group`).
        user: String,
        /// What is wrong.
        reason: String,
    },
    /// A service failed to come up: it ended or never became ready.
    #[error("service `{name}` {reason}{}", tail_text(tail))]
    Service {
        /// The service's name.
        name: String,
        /// What happened.
        reason: String,
        /// Its last log lines.
        tail: Vec<String>,
    },
    /// A service could not be started.
    #[error("start service `{name}`")]
    ServiceSetup {
        /// The service's name.
        name: String,
        /// Why.
        source: Box<RunError>,
    },
    /// The pipe of a service's output could not be made.
    #[error("create the output pipe of a service")]
    ServicePipe(#[source] std::io::Error),
    /// A file of the services' set-up (their /etc/hosts, a log file) could not be written.
    #[error("write {}", path.display())]
    ServiceFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        return "; it logged nothing".into();
    }
    let lines: String = tail.iter().map(|l| format!("\n  | {l}")).collect();
    format!("; its last log lines:{lines}")
}

impl RunError {
    /// True when the error comes from the caller's input (unknown image, bad user, no
    /// command, bad reference or mount): the CLI exits with 2.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            RunError::NoCommand(_)
                | RunError::User { .. }
                | RunError::Store(StoreError::UnknownImage(_) | StoreError::Reference(_))
                | RunError::Runtime(flense_runtime::RuntimeError::InvalidSpec(_))
        )
    }
}

/// What the caller changes about how the image runs. `Default` runs it as configured.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    /// Replaces the image's cmd (the entrypoint stays), like `docker run IMAGE ARGS`.
    pub args: Vec<String>,
    /// Replaces the image's entrypoint (`Some(vec![])` clears it).
    pub entrypoint: Option<Vec<String>>,
    /// Variables added to (or replacing those of) the image's env.
    pub env: Vec<(String, String)>,
    /// Host network or none.
    pub network: Network,
    /// With `Network::None`: the run's own network gets outbound access through
    /// pasta (only loopback, with a warning, when pasta cannot give it). Ignored under
    /// chroot isolation, which has no network namespace.
    pub outbound: bool,
    /// Extra mounts.
    pub mounts: Vec<Mount>,
    /// Replaces the image's working directory.
    pub workdir: Option<PathBuf>,
    /// Replaces the image's user (`uid`, `uid:gid`, `name`, `name:group`).
    pub user: Option<String>,
    /// The user-namespace ID mode.
    pub userns: IdMode,
    /// Namespaces or chroot (`Auto`: chroot only for root where namespaces are refused).
    pub isolation: Isolation,
    /// The host name inside the sandbox.
    pub hostname: Option<String>,
    /// Kill the sandbox after this long.
    pub timeout: Option<Duration>,
    /// Forward SIGINT, SIGTERM, SIGHUP and SIGQUIT of this process to the command
    /// (for a command-line front end; blocks them in the calling thread meanwhile).
    pub forward_signals: bool,
    /// Services to run beside the command, in a network of their own (see
    /// [`Services`]); the `network` setting is then ignored.
    pub services: Services,
}

/// Runs the image `reference` from `store` with `overrides`, inheriting stdio, and
/// returns how its command ended.
pub fn run_image(
    store: &Store,
    reference: &str,
    overrides: &RunOverrides,
) -> Result<ExitStatus, RunError> {
    // Held while the command runs: prune and rmi wait rather than delete its layers.
    let _hold = store.hold_blobs()?;
    let image = store.image(reference)?;
    let layers: Vec<PathBuf> = store
        .unpack_image(&image)?
        .into_iter()
        .map(|l| l.diff)
        .collect();
    let state = store.scratch_dir("run-")?;
    let mut sandbox = sandbox_for(&image, reference, &layers, state.path(), overrides)?;
    if !overrides.services.specs.is_empty() || services::private_outbound(overrides) {
        return services::run_beside(store, sandbox, state.path(), overrides);
    }
    let mut forwarder = match overrides.forward_signals {
        true => Some(SignalForwarder::block()?),
        false => None,
    };
    let result = sandbox.spawn().and_then(|mut child| {
        if let Some(f) = forwarder.as_mut() {
            f.forward_to(&child)?;
        }
        let status = child.wait();
        drop(forwarder);
        let removed = flense_runtime::remove_tree(state.path(), child.id_maps());
        if let Err(e) = removed {
            tracing::warn!("leaving {}: {e}", state.path().display());
        }
        status
    });
    Ok(result?)
}

/// The sandbox that runs `image` on `layers` (bottom first) with `overrides`.
pub fn sandbox_for(
    image: &StoredImage,
    reference: &str,
    layers: &[PathBuf],
    state_dir: &Path,
    overrides: &RunOverrides,
) -> Result<Sandbox, RunError> {
    let config = image.config.config().clone().unwrap_or_default();
    let entrypoint = match &overrides.entrypoint {
        Some(e) => e.clone(),
        None => config.entrypoint().clone().unwrap_or_default(),
    };
    let cmd = if overrides.args.is_empty() && overrides.entrypoint.is_none() {
        config.cmd().clone().unwrap_or_default()
    } else {
        overrides.args.clone()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(RunError::NoCommand(reference.to_string()));
    }
    let user_spec = overrides
        .user
        .clone()
        .or_else(|| config.user().clone())
        .unwrap_or_default();
    let user = resolve_user(&user_spec, layers)?;

    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let image_env = config.env().clone().unwrap_or_default();
    let pairs = image_env
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .chain(overrides.env.iter().cloned());
    for (k, v) in pairs {
        if env.insert(k.clone(), v).is_none() {
            order.push(k);
        }
    }
    for (k, v) in [
        ("PATH", crate::image::oci::DEFAULT_PATH),
        ("HOME", user.home.as_str()),
    ] {
        if !env.contains_key(k) {
            env.insert(k.to_string(), v.to_string());
            order.push(k.to_string());
        }
    }
    let workdir = overrides
        .workdir
        .clone()
        .or_else(|| config.working_dir().clone().map(PathBuf::from))
        .filter(|w| !w.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/"));

    let mut sandbox = Sandbox::new(
        RootFs::Overlay(Overlay::new(layers.to_vec(), state_dir)),
        argv,
    )
    .cwd(workdir)
    .user(user.uid, user.gid)
    .groups(user.groups)
    .network(overrides.network)
    .id_mode(overrides.userns)
    .isolation(overrides.isolation);
    for k in order {
        let v = env[&k].clone();
        sandbox = sandbox.env(k, v);
    }
    if let Some(h) = &overrides.hostname {
        sandbox = sandbox.hostname(h.clone());
    }
    if let Some(t) = overrides.timeout {
        sandbox = sandbox.timeout(t);
    }
    for m in &overrides.mounts {
        sandbox = sandbox.mount(m.clone());
    }
    Ok(sandbox)
}

/// A resolved user: IDs, supplementary groups and home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary groups from the image's /etc/group.
    pub groups: Vec<u32>,
    /// Home directory from /etc/passwd, or `/`.
    pub home: String,
}

/// Resolves an OCI `User` value (`""`, `uid`, `uid:gid`, `name`, `name:group`) against
/// the image's /etc/passwd and /etc/group (the topmost layer that has them).
pub fn resolve_user(spec: &str, layers: &[PathBuf]) -> Result<ResolvedUser, RunError> {
    let passwd = read_from_layers(layers, "etc/passwd");
    let group = read_from_layers(layers, "etc/group");
    let bad = |reason: String| RunError::User {
        user: spec.to_string(),
        reason,
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let matches = f[0] == user_part || f[2] == user_part;
        matches.then(|| {
            (
                f[0].to_string(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
                f[5].to_string(),
            )
        })
    });
    let (name, uid, passwd_gid, home) = match (user_part.parse::<u32>(), entry) {
        (_, Some((name, Some(uid), gid, home))) => (Some(name), uid, gid, home),
        (Ok(uid), _) => (None, uid, None, "/".to_string()),
        (Err(_), _) => return Err(bad("no such user in the image's /etc/passwd".into())),
    };
    let gid = match group_part {
        Some(g) if !g.is_empty() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .lines()
                .find_map(|line| {
                    let f: Vec<&str> = line.split(':').collect();
                    (f.len() >= 3 && f[0] == g)
                        .then(|| f[2].parse::<u32>().ok())
                        .flatten()
                })
                .ok_or_else(|| bad(format!("no group {g:?} in the image's /etc/group")))?,
        },
        _ => passwd_gid.unwrap_or(0),
    };
    let mut groups = Vec::new();
    if let (Some(name), None) = (&name, group_part) {
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !groups.contains(&g) {
                        groups.push(g);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// The text of `rel` from the topmost layer that has it (empty when none has).
fn read_from_layers(layers: &[PathBuf], rel: &str) -> String {
    layers
        .iter()
        .rev()
        .find_map(|l| {
            let p = l.join(rel);
            p.symlink_metadata()
                .ok()
                .filter(|m| m.is_file())
                .and_then(|_| std::fs::read_to_string(p).ok())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let top = dir.path().join("top");
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(base.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(
            top.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nsomebody:x:65533:65533::/srv/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            base.join("etc/group"),
            "root:x:0:\nsomebody:x:65533:\nwww:x:33:somebody\n",
        )
        .unwrap();
        (dir, vec![base, top])
    }

    #[test]
    fn users_resolve_by_name_number_and_group() {
        let (_d, layers) = layers();
        let r = resolve_user("", &layers).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let r = resolve_user("somebody", &layers).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.groups.clone(), r.home.as_str()),
            (65533, 65533, vec![33], "/srv/app")
        );
        let r = resolve_user("1234:55", &layers).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (1234, 55, "/"));
        let r = resolve_user("somebody:www", &layers).unwrap();
        assert_eq!((r.uid, r.gid), (65533, 33));
        assert!(resolve_user("nobody-here", &layers).is_err());
        assert!(resolve_user("0:nogroup", &layers).is_err());
    }
}
