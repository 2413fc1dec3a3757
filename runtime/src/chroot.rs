//! Chroot isolation: for root where namespace creation is refused (a container's default
//! seccomp profile, no CAP_SYS_ADMIN). No mount can be made there, so the root is a
//! copied tree prepared on the host side: device nodes in /dev (when mknod is allowed),
//! empty /proc and /sys, the host's /etc/resolv.conf and /etc/hosts, copies of bind
//! mounts (a writable one's contents copied back after the step), caches moved in for
//! the step and moved back after. The command runs chrooted, as its user, in a process
//! group of its own (unless it reads the caller's terminal), which is killed when the
//! command ends: the stand-in for the end of a pid namespace. The diff is the stat walk
//! of the copy fallback, leaving /dev, /proc, /sys and the mounts out.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::Pid;

use crate::child::{Child, RootState};
use crate::copy;
use crate::error::RuntimeError;
use crate::idmap::IdMaps;
use crate::init::{self, RootMount, TAG_SETUP};
use crate::mounts::mkdir_p;
use crate::root::absolute;
use crate::spec::{Mount, Network, RootFs, Sandbox};
use crate::sys;

/// Device nodes a chrooted command finds in /dev (copied from the host's).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// What a chroot sandbox has to undo when its command ends.
#[derive(Debug)]
pub(crate) struct ChrootState {
    /// The command's pid, which is also its process group's ID when `own_group`.
    pid: i32,
    own_group: bool,
    caches: Vec<GiveBack>,
    finished: bool,
}

/// A host path whose stand-in in the tree goes back to the host when the command ends.
#[derive(Debug)]
struct GiveBack {
    host: PathBuf,
    in_tree: PathBuf,
    how: Back,
}

/// How a stand-in goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Back {
    /// A cache directory moved into the tree: moved back.
    Rename,
    /// A cache directory copied (across file systems): replaces the host's.
    Replace,
    /// A writable bind mount's copy: what it holds is copied over the host's (nothing
    /// the command deleted is deleted on the host).
    Merge,
}

impl ChrootState {
    /// The state that gives `caches` back, before a command has started.
    fn undo(caches: Vec<GiveBack>) -> ChrootState {
        ChrootState {
            pid: 0,
            own_group: false,
            caches,
            finished: false,
        }
    }

    /// Sends `signal` to every process of the sandbox's group (to the command alone
    /// when it shares the caller's group).
    pub(crate) fn signal_group(&self, signal: i32) {
        if self.pid <= 0 {
            return;
        }
        let target = if self.own_group { -self.pid } else { self.pid };
        let _ = nix::sys::signal::kill(
            Pid::from_raw(target),
            nix::sys::signal::Signal::try_from(signal).ok(),
        );
    }

    /// Kills what the command left running and gives the caches back (once).
    pub(crate) fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if self.own_group && self.pid > 0 {
            self.signal_group(libc::SIGKILL);
        }
        for cache in &self.caches {
            if let Err(e) = cache.give_back() {
                tracing::warn!("cache {}: {e}", cache.host.display());
            }
        }
    }
}

impl GiveBack {
    fn give_back(&self) -> Result<(), RuntimeError> {
        if self.how == Back::Merge {
            if self.in_tree.is_dir() {
                return copy::copy_dir(&self.in_tree, &self.host);
            }
            return fs::copy(&self.in_tree, &self.host)
                .map(|_| ())
                .map_err(|e| RuntimeError::io(format!("copy back to {}", self.host.display()), e));
        }
        if self.how == Back::Rename {
            if self.host.symlink_metadata().is_ok() {
                crate::remove::remove_tree(&self.host, &root_maps())?;
            }
            // The diff runs after this: the parent in the tree keeps its times.
            let parent = self.in_tree.parent().map(|p| (p, fs::symlink_metadata(p)));
            fs::rename(&self.in_tree, &self.host).map_err(|e| {
                RuntimeError::io(format!("move the cache back to {}", self.host.display()), e)
            })?;
            if let Some((dir, Ok(meta))) = parent {
                let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
                let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
                let _ = utimensat(None, dir, &atime, &mtime, UtimensatFlags::NoFollowSymlink);
            }
            return Ok(());
        }
        crate::remove::remove_tree(&self.host, &root_maps())?;
        copy::copy_dir(&self.in_tree, &self.host)
    }
}

fn root_maps() -> IdMaps {
    IdMaps::resolve(crate::IdMode::Root, 0, 0).unwrap_or(IdMaps {
        mode: crate::IdMode::Root,
        uids: Vec::new(),
        gids: Vec::new(),
    })
}

/// Warns once per process that chroot isolation cannot give `--network none`.
fn warn_shared_network() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::warn!(
            "chroot isolation has no network namespace: the command shares the host's \
             network (network none is not possible here)"
        );
    });
}

/// The prepared root of a chroot sandbox.
struct ChrootRoot {
    tree: PathBuf,
    state: RootState,
    caches: Vec<GiveBack>,
}

impl Sandbox {
    /// Starts the command chrooted into a copied root (see the module doc).
    pub(crate) fn spawn_chroot(&mut self, maps: IdMaps) -> Result<Child, RuntimeError> {
        if self.network == Network::None {
            warn_shared_network();
        }
        let mut root = self.prepare_chroot()?;
        let mut undo = ChrootState::undo(std::mem::take(&mut root.caches));
        let plan = self.init_plan(RootMount::Bind { writable: true }, root.tree.clone(), &maps);
        let opened =
            crate::spawn::StdioFds::open(&mut self.stdin, &mut self.stdout, &mut self.stderr)
                .and_then(|stdio| Ok((stdio, crate::spawn::ControlPipes::open()?)));
        let (stdio, pipes) = match opened {
            Ok(opened) => opened,
            Err(failure) => {
                undo.finish();
                return Err(failure.into_error());
            }
        };
        let started = Instant::now();
        let ends = &pipes.sandbox;
        // A command reading the caller's terminal stays in its foreground process group
        // (a group of its own would be stopped by SIGTTIN); only then can processes it
        // leaves behind survive it.
        let own_group = stdio.child[0].is_some() || !nix::unistd::isatty(0).unwrap_or(false);
        // SAFETY: the child only changes its process group, descriptors, root, IDs and
        // limits and then execs (see `init::exec_command`), or ends with `_exit`; it
        // allocates but takes no lock another thread of the caller may hold.
        let pid = match unsafe { sys::fork() } {
            Ok(0) => {
                let report = ends.report();
                let keep = [report.err, report.info];
                chrooted_child(&plan, &stdio, own_group, &keep, report)
            }
            Ok(pid) => pid,
            Err(e) => {
                undo.finish();
                return Err(RuntimeError::io("fork", e));
            }
        };
        let crate::spawn::ControlPipes { sandbox, caller } = pipes;
        drop(sandbox);
        let mut child = Child::new(
            Pid::from_raw(pid),
            caller.status,
            maps,
            root.state,
            stdio.parent_ends,
            self.timeout,
            started,
        );
        child.set_init(pid);
        undo.pid = pid;
        undo.own_group = own_group;
        child.chroot = Some(undo);
        let ready = crate::spawn::read_setup_reports(&mut child, caller.info, caller.err)
            .map_err(crate::spawn::Failure::into_error)
            .and_then(|()| child.start_watchdog());
        if let Err(e) = ready {
            child.abandon();
            if let Some(chroot) = &mut child.chroot {
                chroot.finish();
            }
            return Err(e);
        }
        Ok(child)
    }

    /// Copies the layers into the tree and puts in what mounts would have provided.
    fn prepare_chroot(&self) -> Result<ChrootRoot, RuntimeError> {
        let RootFs::Overlay(ov) = &self.root else {
            return Err(RuntimeError::InvalidSpec(
                "chroot isolation needs an overlay root (a plain directory cannot be copied)"
                    .into(),
            ));
        };
        let lowers = ov
            .lowers
            .iter()
            .map(|l| absolute(l))
            .collect::<Result<Vec<_>, _>>()?;
        let tree = absolute(&ov.state_dir)?.join("copy");
        copy::copy_layers(&lowers, &tree)?;
        let mut prune: Vec<PathBuf> = ["dev", "proc", "sys"].iter().map(PathBuf::from).collect();
        populate_dev(&tree)?;
        for dir in ["proc", "sys"] {
            mkdir_in(&tree, Path::new(dir))?;
        }
        for file in ["etc/resolv.conf", "etc/hosts"] {
            copy_host_file(&tree, file);
        }
        let mut caches = Vec::new();
        let placed = self
            .place_mounts(&tree, &mut caches, &mut prune)
            .and_then(|()| copy::snapshot(&tree, &prune));
        let snapshot = match placed {
            Ok(snapshot) => snapshot,
            Err(e) => {
                ChrootState::undo(caches).finish();
                return Err(e);
            }
        };
        Ok(ChrootRoot {
            tree: tree.clone(),
            state: RootState::Copy {
                tree,
                snapshot,
                prune,
            },
            caches,
        })
    }

    /// Puts the stand-ins of the extra mounts into the tree; records what goes back to
    /// the host in `caches` and the mount points in `prune`.
    fn place_mounts(
        &self,
        tree: &Path,
        caches: &mut Vec<GiveBack>,
        prune: &mut Vec<PathBuf>,
    ) -> Result<(), RuntimeError> {
        for m in &self.mounts {
            let rel = m.dst().strip_prefix("/").unwrap_or(m.dst()).to_path_buf();
            let at = tree.join(&rel);
            match m {
                Mount::Bind { src, readonly, .. } => {
                    copy_in(src, tree, &rel)?;
                    if !readonly {
                        caches.push(GiveBack {
                            host: src.clone(),
                            in_tree: at,
                            how: Back::Merge,
                        });
                    }
                }
                Mount::Tmpfs { .. } => mkdir_in(tree, &rel)?,
                Mount::Cache { src, .. } => caches.push(move_cache_in(src, tree, &rel, at)?),
            }
            prune.push(rel);
        }
        Ok(())
    }
}

/// The forked child: own process group, stdio, chroot, working directory, then the
/// command (as `init::exec_command` does in a namespace sandbox). Never returns.
fn chrooted_child(
    plan: &init::InitPlan,
    stdio: &crate::spawn::StdioFds,
    own_group: bool,
    keep: &[std::os::fd::BorrowedFd<'_>],
    report: init::Report<'_>,
) -> ! {
    if own_group {
        let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    }
    for (i, fd) in stdio.child.iter().enumerate() {
        if let Some(fd) = fd {
            if nix::unistd::dup2(fd.as_fd().as_raw_fd(), i as RawFd).is_err() {
                sys::exit(1);
            }
        }
    }
    sys::close_fds_except(keep);
    if let Err(e) = nix::unistd::chroot(&plan.new_root) {
        report.fail(
            TAG_SETUP,
            &format!("chroot {}", plan.new_root.display()),
            e.into(),
        );
    }
    if let Err(e) = nix::unistd::chdir("/") {
        report.fail(TAG_SETUP, "chdir /", e.into());
    }
    if let Err(e) = mkdir_p(&plan.cwd, &mut Vec::new()) {
        let what = format!("create workdir {}", plan.cwd.display());
        report.fail(TAG_SETUP, &what, e);
    }
    init::exec_command(plan, report)
}

fn mkdir_in(tree: &Path, rel: &Path) -> Result<(), RuntimeError> {
    let path = tree.join(rel);
    mkdir_p(&path, &mut Vec::new())
        .map_err(|e| RuntimeError::io(format!("create {}", path.display()), e))
}

/// /dev with the host's device nodes (where mknod is permitted: a missing node is
/// reported once) and the usual links.
fn populate_dev(tree: &Path) -> Result<(), RuntimeError> {
    mkdir_in(tree, Path::new("dev"))?;
    let dev = tree.join("dev");
    for name in DEVICES {
        let dst = dev.join(name);
        if dst.symlink_metadata().is_ok() {
            continue;
        }
        let Ok(host) = fs::metadata(Path::new("/dev").join(name)) else {
            continue;
        };
        if !host.file_type().is_char_device() {
            continue;
        }
        let perm = nix::sys::stat::Mode::from_bits_truncate(host.mode() & 0o7777);
        if let Err(e) =
            nix::sys::stat::mknod(&dst, nix::sys::stat::SFlag::S_IFCHR, perm, host.rdev())
        {
            warn_once_no_devices(e);
            return Ok(());
        }
        let _ = nix::unistd::chown(&dst, Some(host.uid().into()), Some(host.gid().into()));
        // mknod applied the umask.
        let _ = fs::set_permissions(&dst, fs::Permissions::from_mode(host.mode() & 0o7777));
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(link));
    }
    Ok(())
}

fn warn_once_no_devices(e: nix::errno::Errno) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::warn!(
            "chroot isolation: cannot create device nodes in /dev ({e}); commands find no \
             /dev/null there"
        );
    });
}

/// The host's copy of `rel` (e.g. `etc/resolv.conf`), unless the image has a symlink
/// there. The diff leaves these files out.
fn copy_host_file(tree: &Path, rel: &str) {
    let dst = tree.join(rel);
    if dst
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return;
    }
    let Ok(text) = fs::read(Path::new("/").join(rel)) else {
        return;
    };
    if let Some(parent) = dst.parent() {
        let _ = mkdir_p(parent, &mut Vec::new());
    }
    let _ = fs::write(&dst, text);
}

/// A copy of the host path `src` at `rel` in the tree (a bind mount's stand-in: its
/// changes are discarded, and read-only cannot be enforced).
fn copy_in(src: &Path, tree: &Path, rel: &Path) -> Result<(), RuntimeError> {
    let dst = tree.join(rel);
    let meta =
        fs::metadata(src).map_err(|e| RuntimeError::io(format!("stat {}", src.display()), e))?;
    if meta.is_dir() {
        return copy::copy_dir(src, &dst);
    }
    if let Some(parent) = rel.parent() {
        mkdir_in(tree, parent)?;
    }
    if dst.is_dir() {
        let _ = fs::remove_dir(&dst);
    }
    fs::copy(src, &dst)
        .map(|_| ())
        .map_err(|e| RuntimeError::io(format!("copy {} into the chroot", src.display()), e))
}

/// Moves the cache directory `src` to `rel` in the tree (copies it across file
/// systems); it goes back when the command ends.
fn move_cache_in(
    src: &Path,
    tree: &Path,
    rel: &Path,
    at: PathBuf,
) -> Result<GiveBack, RuntimeError> {
    fs::create_dir_all(src)
        .map_err(|e| RuntimeError::io(format!("create {}", src.display()), e))?;
    if let Some(parent) = rel.parent() {
        mkdir_in(tree, parent)?;
    }
    if at.is_dir() {
        // An empty directory of the image: rename replaces it.
        let _ = fs::remove_dir(&at);
    }
    let renamed = fs::rename(src, &at).is_ok();
    if !renamed {
        copy::copy_dir(src, &at)?;
    }
    Ok(GiveBack {
        host: src.to_path_buf(),
        in_tree: at,
        how: if renamed { Back::Rename } else { Back::Replace },
    })
}
