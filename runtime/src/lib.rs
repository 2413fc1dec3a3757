//! flense-runtime: the only crate with namespaces, mounts and `unsafe`.
//!
//! It spawns processes in sandboxes: user, mount, pid, uts and ipc namespaces (and a
//! network namespace for `Network::None`), on an overlay (or copied) root filesystem, and
//! captures what a step changed.
//!
//! ```no_run
//! use flense_runtime::{Overlay, RootFs, Sandbox};
//! let mut sandbox = Sandbox::new(
//!     RootFs::Overlay(Overlay::new(vec!["/layers/base".into()], "/tmp/step1")),
//!     ["sh", "-c", "echo hi > /greeting"],
//! )
//! .env("PATH", "/bin:/usr/bin");
//! let mut child = sandbox.spawn()?;
//! let status = child.wait()?;
//! let entries = child.diff((0, 0))?;
//! # Ok::<(), flense_runtime::RuntimeError>(())
//! ```

mod child;
mod chroot;
mod copy;
mod diff;
mod enter;
mod error;
mod forward;
mod group;
mod idmap;
mod init;
mod isolation;
pub mod malloc;
mod mounts;
mod remove;
mod root;
mod spawn;
mod spec;
mod sys;
mod xattr;

pub use child::{Child, ExitStatus};
pub use diff::{DiffEntry, DiffKind};
pub use error::RuntimeError;
pub use forward::SignalForwarder;
pub use group::NetworkGroup;
pub use idmap::{IdMaps, IdMode, IdRange};
pub use isolation::{namespaces_allowed, Isolation};
pub use remove::remove_tree;
pub use spec::{Mount, Network, Overlay, Rlimit, RootFs, Sandbox, Stdio, User};
