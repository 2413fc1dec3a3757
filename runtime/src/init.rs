//! Code that runs inside the new namespaces: the file-system set-up done by the
//! sandbox's PID 1 (mounts, `pivot_root`, /proc, /dev, /sys, host files), then the init
//! loop that reaps zombies and forwards signals, and the exec of the command.
//!
//! Everything here runs in forked children: errors are reported to the parent through
//! a pipe ([`Report`]) and the process ends with `_exit`.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};

use crate::spec::{Mount, Rlimit, User};
use crate::sys;

/// Where the host's root stays reachable while the sandbox's mounts are made.
const OLD_ROOT: &str = "/.flense-oldroot";

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

/// The pipes a sandbox child writes to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    /// Error records: tag, errno (i32 LE), message. Close-on-exec.
    pub err: RawFd,
    /// Lines `stub\t<path>` and `note\t<text>`.
    pub info: RawFd,
    /// The final status record: kind (0 exit, 1 signal) and value, i32 LE each.
    pub status: RawFd,
}

impl Report {
    /// Writes an error record and ends the process.
    pub fn fail(&self, tag: u8, what: &str, err: io::Error) -> ! {
        let mut rec = vec![tag];
        rec.extend_from_slice(&err.raw_os_error().unwrap_or(0).to_le_bytes());
        rec.extend_from_slice(what.as_bytes());
        write_all(self.err, &rec);
        sys::exit(127)
    }

    fn line(&self, kind: &str, text: &str) {
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

/// Writes all of `buf` to a raw descriptor we do not own.
pub(crate) fn write_all(fd: RawFd, buf: &[u8]) {
    // SAFETY: `fd` is one of our open pipe descriptors; ManuallyDrop keeps it open.
    let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut file = std::mem::ManuallyDrop::new(file);
    let _ = file.write_all(buf);
}

/// PID 1 of the sandbox: sets up the root, starts the command, then reaps and forwards
/// signals until the command ends. Never returns.
pub(crate) fn run(plan: &InitPlan, report: Report) -> ! {
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
        report.fail(TAG_SETUP, "sethostname", e.into());
    }
    for stub in &fs.stubs {
        report.line("stub", &stub.to_string_lossy());
    }

    let forwarded = forwarded_signals();
    let _ = forwarded.thread_block();
    let pid = match sys::fork() {
        Ok(0) => exec_command(plan, report),
        Ok(pid) => Pid::from_raw(pid),
        Err(e) => report.fail(TAG_SETUP, "fork command", e),
    };
    let _ = nix::unistd::close(report.err);
    let _ = nix::unistd::close(report.info);
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

/// Waits for signals: reaps every child on SIGCHLD, forwards the others to the command.
fn reap_until_exit(command: Pid, set: &SigSet, report: Report) -> ! {
    loop {
        let sig = match set.wait() {
            Ok(sig) => sig,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(command, sig);
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
fn exec_command(plan: &InitPlan, report: Report) -> ! {
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

/// File-system set-up state: records the mount-point stubs it had to create.
struct FsSetup {
    report: Report,
    stubs: Vec<PathBuf>,
}

impl FsSetup {
    fn try_or_fail<T>(&self, what: impl FnOnce() -> String, r: nix::Result<T>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => self.report.fail(TAG_SETUP, &what(), e.into()),
        }
    }

    fn setup_root(&mut self, plan: &InitPlan) {
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
        self.mount_sys();
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

    fn mount_proc(&mut self) {
        self.stub_dir(Path::new("/proc"));
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let none: Option<&str> = None;
        self.try_or_fail(
            || "mount /proc".into(),
            mount(Some("proc"), "/proc", Some("proc"), flags, none),
        );
    }

    fn mount_dev(&mut self) {
        self.stub_dir(Path::new("/dev"));
        let none: Option<&str> = None;
        self.try_or_fail(
            || "mount tmpfs on /dev".into(),
            mount(
                Some("tmpfs"),
                "/dev",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some("mode=755,size=65536k"),
            ),
        );
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
            Err(e) => self.report.line("note", &format!("no devpts: {e}")),
        }
        let _ = std::fs::create_dir("/dev/shm");
        if let Err(e) = mount(
            Some("shm"),
            "/dev/shm",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        ) {
            self.report.line("note", &format!("no /dev/shm: {e}"));
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

    fn mount_sys(&mut self) {
        self.stub_dir(Path::new("/sys"));
        let src = PathBuf::from(OLD_ROOT).join("sys");
        let none: Option<&str> = None;
        let res = mount(
            Some(&src),
            "/sys",
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .and_then(|_| remount_ro(Path::new("/sys")));
        if let Err(e) = res {
            self.report.line("note", &format!("/sys not mounted: {e}"));
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
fn mkdir_p(path: &Path, created: &mut Vec<PathBuf>) -> io::Result<()> {
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
