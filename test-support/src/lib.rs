//! Helpers shared by the integration tests of `flense` and `flense-runtime`: the
//! unprivileged test user ([`users`]) and running a test's body again as that user on a
//! busybox root filesystem ([`rerun`]). Only ever a dev-dependency.

pub mod rerun;
pub mod users;
