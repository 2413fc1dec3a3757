//! The sandbox's file-system set-up, done by its PID 1 inside the new mount namespace:
//! the root (overlay or bind), `pivot_root`, /proc, a minimal /dev, read-only /sys,
//! the host's /etc/resolv.conf and /etc/hosts, and the extra mounts. Mount points that
//! had to be created are recorded so the diff capture leaves them out.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::init::{InitPlan, Report, RootMount, TAG_OVERLAY, TAG_SETUP};
use crate::spec::Mount;
use crate::sys;

/// Where the host's root stays reachable while the sandbox's mounts are made.
const OLD_ROOT: &str = "/.flense-oldroot";

/// File-system set-up state: records the mount-point stubs it had to create.
pub(crate) struct FsSetup<'fd> {
    pub report: Report<'fd>,
    pub stubs: Vec<PathBuf>,
}

impl FsSetup<'_> {
    fn try_or_fail<T>(&self, what: impl FnOnce() -> String, r: nix::Result<T>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => self.report.fail(TAG_SETUP, &what(), e.into()),
        }
    }

    /// Mounts the root, pivots into it and makes /proc, /dev, /sys, host files and
    /// the extra mounts. Ends the process with an error record on failure.
    pub fn setup_root(&mut self, plan: &InitPlan) {
        let rep = self.report;
        let none: Option<&str> = None;
        self.try_or_fail(
            || "make / private".into(),
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none),
        );
        let root = &plan.new_root;
        match &plan.root {
            RootMount::Overlay { options, mount_cwd } => {
                if let Some(dir) = mount_cwd {
                    self.try_or_fail(
                        || format!("chdir {}", dir.display()),
                        nix::unistd::chdir(dir),
                    );
                }
                if let Err(e) = mount(
                    Some("overlay"),
                    root,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(options.as_str()),
                ) {
                    rep.fail(TAG_OVERLAY, &format!("mount overlay ({options})"), e.into());
                }
            }
            RootMount::Bind { .. } => self.try_or_fail(
                || format!("bind {}", root.display()),
                mount(
                    Some(root),
                    root,
                    none,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    none,
                ),
            ),
        }
        let old = root.join(&OLD_ROOT[1..]);
        let created_old = !old.exists();
        if created_old {
            if let Err(e) = std::fs::create_dir(&old) {
                rep.fail(TAG_SETUP, &format!("mkdir {}", old.display()), e);
            }
        }
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
        if let Err(e) = sys::pivot_root(&c(root), &c(&old)) {
            rep.fail(TAG_SETUP, &format!("pivot_root {}", root.display()), e);
        }
        self.try_or_fail(|| "chdir /".into(), nix::unistd::chdir("/"));

        self.mount_proc();
        self.mount_dev();
        self.mount_sys(plan.network_none);
        for file in ["/etc/resolv.conf", "/etc/hosts"] {
            self.bind_host_file(file);
        }
        for m in &plan.mounts {
            self.extra_mount(m);
        }
        if let Err(e) = mkdir_p(&plan.cwd, &mut Vec::new()) {
            rep.fail(
                TAG_SETUP,
                &format!("create workdir {}", plan.cwd.display()),
                e,
            );
        }
        self.try_or_fail(
            || "detach host root".into(),
            umount2(OLD_ROOT, MntFlags::MNT_DETACH),
        );
        if created_old {
            let _ = std::fs::remove_dir(OLD_ROOT);
        }
        if let RootMount::Bind { writable: false } = plan.root {
            self.try_or_fail(|| "remount / read-only".into(), remount_ro(Path::new("/")));
        }
    }

    /// A new /proc of the pid namespace; where that is refused (a container whose own
    /// /proc has masked or read-only parts, as podman and Kubernetes make it), the
    /// container's /proc bound instead, which shows the processes outside the sandbox.
    fn mount_proc(&mut self) {
        self.stub_dir(Path::new("/proc"));
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let none: Option<&str> = None;
        let Err(e) = mount(Some("proc"), "/proc", Some("proc"), flags, none) else {
            return;
        };
        let host = PathBuf::from(OLD_ROOT).join("proc");
        let bound = mount(
            Some(&host),
            "/proc",
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        );
        let what = match bound {
            Ok(()) => {
                "the container's /proc is bound instead (it shows processes outside the sandbox)"
            }
            Err(_) => "the sandbox has no /proc",
        };
        self.report.line(
            "warn",
            &format!("cannot mount a new /proc here ({e}, /proc is masked or read-only); {what}"),
        );
    }

    fn mount_dev(&mut self) {
        self.stub_dir(Path::new("/dev"));
        let none: Option<&str> = None;
        if let Err(e) = mount(
            Some("tmpfs"),
            "/dev",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=755,size=65536k"),
        ) {
            let host = PathBuf::from(OLD_ROOT).join("dev");
            self.try_or_fail(
                || format!("bind the container's /dev (a tmpfs on /dev is refused: {e})"),
                mount(
                    Some(&host),
                    "/dev",
                    none,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    none,
                ),
            );
            self.report.line(
                "warn",
                &format!("cannot mount a tmpfs on /dev here ({e}); the container's /dev is bound instead"),
            );
            return;
        }
        for name in ["null", "zero", "full", "random", "urandom", "tty"] {
            let dst = PathBuf::from("/dev").join(name);
            let src = PathBuf::from(OLD_ROOT).join("dev").join(name);
            let res = match std::fs::File::create(&dst) {
                Ok(_) => {
                    mount(Some(&src), &dst, none, MsFlags::MS_BIND, none).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = res {
                let _ = std::fs::remove_file(&dst);
                self.report.line("note", &format!("no /dev/{name}: {e}"));
            }
        }
        let _ = std::fs::create_dir("/dev/pts");
        match mount(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        ) {
            Ok(()) => {
                let _ = symlink("pts/ptmx", "/dev/ptmx");
            }
            Err(e) => self.report.line(
                "warn",
                &format!("cannot mount devpts here ({e}); no /dev/pts"),
            ),
        }
        let _ = std::fs::create_dir("/dev/shm");
        if let Err(e) = mount(
            Some("shm"),
            "/dev/shm",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        ) {
            self.report.line(
                "warn",
                &format!("cannot mount a tmpfs on /dev/shm here ({e})"),
            );
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            let _ = symlink(target, Path::new("/dev").join(link));
        }
    }

    /// /sys: a fresh read-only sysfs when the sandbox has its own network namespace (so
    /// `/sys/class/net` lists the sandbox's interfaces; the netns belongs to the sandbox's
    /// user namespace, which allows it), else the host's /sys bound read-only. Where the
    /// fresh mount is refused (a container with a masked /sys) the bind is the fallback.
    fn mount_sys(&mut self, own_network: bool) {
        self.stub_dir(Path::new("/sys"));
        let none: Option<&str> = None;
        let fresh_refused = if own_network {
            let flags =
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            match mount(Some("sysfs"), "/sys", Some("sysfs"), flags, none) {
                Ok(()) => return,
                Err(e) => Some(e),
            }
        } else {
            None
        };
        let src = PathBuf::from(OLD_ROOT).join("sys");
        let res = mount(
            Some(&src),
            "/sys",
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .and_then(|_| remount_ro(Path::new("/sys")));
        match (res, fresh_refused) {
            (Err(e), _) => self.report.line(
                "warn",
                &format!("cannot bind /sys read-only here ({e}); the sandbox has no /sys"),
            ),
            (Ok(()), Some(e)) => self.report.line(
                "warn",
                &format!(
                    "cannot mount a new sysfs here ({e}); the container's /sys is bound \
                     instead (/sys/class/net shows its interfaces, not the sandbox's)"
                ),
            ),
            (Ok(()), None) => {}
        }
    }

    fn bind_host_file(&mut self, file: &str) {
        let src = PathBuf::from(OLD_ROOT).join(&file[1..]);
        if !src.exists() {
            return;
        }
        let dst = Path::new(file);
        if dst
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            self.report.line(
                "note",
                &format!("{file} is a symlink in the image; not bound"),
            );
            return;
        }
        self.stub_file(dst);
        let none: Option<&str> = None;
        let res =
            mount(Some(&src), dst, none, MsFlags::MS_BIND, none).and_then(|_| remount_ro(dst));
        if let Err(e) = res {
            self.report.line("note", &format!("{file} not bound: {e}"));
        }
    }

    fn extra_mount(&mut self, m: &Mount) {
        let none: Option<&str> = None;
        let dst = m.dst();
        match m {
            Mount::Bind { src, .. } | Mount::Cache { src, .. } => {
                let host = PathBuf::from(OLD_ROOT).join(src.strip_prefix("/").unwrap_or(src));
                if host.is_dir() {
                    self.stub_dir(dst);
                } else {
                    self.stub_file(dst);
                }
                self.try_or_fail(
                    || format!("bind {} on {}", src.display(), dst.display()),
                    mount(
                        Some(&host),
                        dst,
                        none,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        none,
                    ),
                );
                if matches!(m, Mount::Bind { readonly: true, .. }) {
                    self.try_or_fail(
                        || format!("remount {} read-only", dst.display()),
                        remount_ro(dst),
                    );
                }
            }
            Mount::Tmpfs { size, .. } => {
                self.stub_dir(dst);
                let data = size.map(|s| format!("size={s}"));
                self.try_or_fail(
                    || format!("mount tmpfs on {}", dst.display()),
                    mount(
                        Some("tmpfs"),
                        dst,
                        Some("tmpfs"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                        data.as_deref(),
                    ),
                );
            }
        }
    }

    fn stub_dir(&mut self, path: &Path) {
        if let Err(e) = mkdir_p(path, &mut self.stubs) {
            self.report.fail(
                TAG_SETUP,
                &format!("create mount point {}", path.display()),
                e,
            );
        }
    }

    fn stub_file(&mut self, path: &Path) {
        if path.symlink_metadata().is_ok() {
            return;
        }
        if let Some(parent) = path.parent() {
            self.stub_dir(parent);
        }
        match std::fs::File::create(path) {
            Ok(_) => self.stubs.push(path.to_path_buf()),
            Err(e) => self.report.fail(
                TAG_SETUP,
                &format!("create mount point {}", path.display()),
                e,
            ),
        }
    }
}

/// Creates `path` and its missing parents, recording each directory it created.
pub(crate) fn mkdir_p(path: &Path, created: &mut Vec<PathBuf>) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        mkdir_p(parent, created)?;
    }
    match std::fs::create_dir(path) {
        Ok(()) => {
            created.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remounts a bind mount read-only, keeping the flags the kernel locks in a user
/// namespace (nosuid, nodev, noexec) so the remount is permitted.
fn remount_ro(path: &Path) -> nix::Result<()> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let st = statvfs(path)?;
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    let f = st.flags();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            flags |= ms;
        }
    }
    let none: Option<&str> = None;
    mount(none, path, none, flags, none)
}
