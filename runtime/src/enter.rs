//! Running a second command inside a running sandbox (like `nsenter`): it joins the
//! sandbox's user, mount, network and pid namespaces, so it sees the sandbox's files,
//! processes and sockets. Used for readiness checks of services.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::child::{Child, ExitStatus};
use crate::error::RuntimeError;
use crate::idmap::IdMode;
use crate::init::{self, InitPlan, RootMount};
use crate::spawn::ControlPipes;
use crate::spec::User;
use crate::sys;

/// The namespaces a command entering a sandbox joins, in this order.
const JOINED: [(&str, CloneFlags); 4] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
];

impl Child {
    /// Runs `args` (program looked up in `env`'s `PATH`) inside this running sandbox as
    /// `user`, in `/`, with its output to `output` (or `/dev/null`); kills it after
    /// `limit`. Returns how it ended ([`ExitStatus::TimedOut`] after the limit).
    pub fn run_inside(
        &self,
        args: &[String],
        env: &[(String, String)],
        user: &User,
        output: Option<File>,
        limit: Duration,
    ) -> Result<ExitStatus, RuntimeError> {
        if self.chroot.is_some() || !self.has_init() {
            return Err(RuntimeError::InvalidSpec(
                "a command can only enter a running sandbox with namespace isolation".into(),
            ));
        }
        if args.is_empty() {
            return Err(RuntimeError::InvalidSpec("no command to run".into()));
        }
        let mut namespaces = Vec::new();
        for (kind, flag) in JOINED {
            let path = format!("/proc/{}/ns/{kind}", self.init_pid());
            let file =
                File::open(&path).map_err(|e| RuntimeError::io(format!("open {path}"), e))?;
            namespaces.push((OwnedFd::from(file), flag));
        }
        let output = match output {
            Some(f) => f,
            None => File::options()
                .write(true)
                .open("/dev/null")
                .map_err(|e| RuntimeError::io("open /dev/null", e))?,
        };
        let plan = self.enter_plan(args, env, user);
        let pipes = ControlPipes::open().map_err(|f| f.into_error())?;
        let report = pipes.sandbox.report();
        // SAFETY: the child only joins namespaces, forks and execs (or `_exit`s), as the
        // middle process of a sandbox does.
        let entering = match unsafe { sys::fork() } {
            Ok(0) => enter(&plan, &namespaces, &output, report),
            Ok(pid) => Pid::from_raw(pid),
            Err(e) => return Err(RuntimeError::io("fork", e)),
        };
        drop(pipes.sandbox);
        let status = wait_limited(entering, limit);
        let mut record = Vec::new();
        let _ = File::from(pipes.caller.err).read_to_end(&mut record);
        if let Some(failure) = crate::spawn::decode_error_record(&record) {
            return Err(failure.into_error());
        }
        status
    }

    fn enter_plan(&self, args: &[String], env: &[(String, String)], user: &User) -> InitPlan {
        let cstr = |s: &str| CString::new(s).unwrap_or_default();
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(crate::spawn::DEFAULT_PATH);
        InitPlan {
            root: RootMount::Bind { writable: false },
            new_root: PathBuf::from("/"),
            mounts: Vec::new(),
            hostname: String::new(),
            network_none: false,
            argv: args.iter().map(|a| cstr(a)).collect(),
            envp: env.iter().map(|(k, v)| cstr(&format!("{k}={v}"))).collect(),
            path_dirs: path
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect(),
            cwd: PathBuf::from("/"),
            user: user.clone(),
            set_ids: self.maps.mode != IdMode::Single,
            rlimits: Vec::new(),
        }
    }
}

/// Waits for the entering process, killing it (and with it the command) after `limit`.
fn wait_limited(pid: Pid, limit: Duration) -> Result<ExitStatus, RuntimeError> {
    let pidfd = sys::pidfd_open(pid.as_raw()).map_err(|e| RuntimeError::io("pidfd_open", e))?;
    let ms = limit.as_millis().min(i32::MAX as u128) as i32;
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    let timed_out = matches!(
        poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        ),
        Ok(0)
    );
    if timed_out {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
    let ws = loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    Ok(match ws {
        _ if timed_out => ExitStatus::TimedOut,
        Ok(WaitStatus::Exited(_, code)) => ExitStatus::Exited(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => ExitStatus::Signaled(sig as i32),
        Ok(_) => ExitStatus::Exited(1),
        Err(e) => return Err(RuntimeError::io("wait for the command", e.into())),
    })
}

/// The entering process: joins the namespaces, forks the command (which is then in
/// the sandbox's pid namespace) and relays its end. Never returns.
fn enter(
    plan: &InitPlan,
    namespaces: &[(OwnedFd, CloneFlags)],
    output: &File,
    report: init::Report<'_>,
) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    for target in [1, 2] {
        if nix::unistd::dup2(output.as_raw_fd(), target).is_err() {
            sys::exit(1);
        }
    }
    let mut keep = vec![report.err, report.info, report.status];
    keep.extend(namespaces.iter().map(|(fd, _)| fd.as_fd()));
    sys::close_fds_except(&keep);
    for (fd, flag) in namespaces {
        if let Err(e) = nix::sched::setns(fd, *flag) {
            report.fail(init::TAG_SETUP, "join the sandbox's namespaces", e.into());
        }
    }
    // SAFETY: a forked single-threaded child; the command's process ends in exec or
    // `_exit`.
    let pid = match unsafe { sys::fork() } {
        Ok(0) => {
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            init::exec_command(plan, report)
        }
        Ok(pid) => Pid::from_raw(pid),
        Err(e) => report.fail(init::TAG_SETUP, "fork command", e),
    };
    let _ = nix::unistd::close(report.err.as_raw_fd());
    let _ = nix::unistd::close(report.info.as_raw_fd());
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => sys::exit(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => sys::exit(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => sys::exit(1),
        }
    }
}
