//! Errors of the runtime crate. Messages say what failed; the OS error that caused it
//! is the `source`, so callers that print the chain show it once.

use std::io;

/// Why a sandbox could not be set up, run or captured.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The sandbox specification is unusable (e.g. an empty command, a relative path).
    #[error("invalid sandbox: {0}")]
    InvalidSpec(String),
    /// The user-namespace ID mode cannot be used.
    #[error("user namespace: {0}")]
    IdMode(String),
    /// Namespaces cannot be created here (seccomp, a sysctl, AppArmor, the kernel).
    #[error("cannot create user namespaces: {cause}; {remedy}")]
    Namespaces {
        /// The setting or policy that was detected.
        cause: String,
        /// What an administrator can do about it.
        remedy: String,
        /// The errno of the refused `unshare`.
        source: io::Error,
    },
    /// A host-side file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// A step of the sandbox set-up failed inside the new namespaces.
    #[error("sandbox set-up failed at {stage}")]
    Setup {
        /// The step (e.g. `mount overlay on /var/lib/...`).
        stage: String,
        /// The OS error.
        source: io::Error,
    },
    /// The program could not be started inside the sandbox.
    #[error("cannot execute {program:?} in the sandbox")]
    Exec {
        /// The program as given.
        program: String,
        /// The OS error (ENOENT: not found in PATH).
        source: io::Error,
    },
    /// A helper program (such as `pasta`) reported a failure.
    #[error("{program} failed: {message}")]
    Helper {
        /// The program.
        program: String,
        /// What it said.
        message: String,
    },
    /// The root filesystem diff could not be captured.
    #[error("capture diff at {path}: {reason}")]
    Capture {
        /// The host path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A path the step wrote is not readable by the calling user: in subuid mode, a
    /// directory a package made private to one of its own users (mode 0700 or 0750,
    /// owned by a subordinate ID), e.g. redis-server's `/etc/redis`.
    #[error(
        "capture diff at {path}: not readable by the calling user (it belongs to another \
         user ID of the sandbox)"
    )]
    CaptureDenied {
        /// The host path.
        path: String,
    },
}

impl RuntimeError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        RuntimeError::Io {
            what: what.into(),
            source,
        }
    }
}
