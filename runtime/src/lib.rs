//! flense-runtime: the only crate with namespaces, mounts and `unsafe`.
//!
//! It spawns processes in sandboxes: user, mount, pid, uts and ipc namespaces, on an
//! overlay (or copied) root filesystem, and captures what a step changed.
