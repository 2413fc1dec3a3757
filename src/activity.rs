//! Long phases of work — unpacking a layer, writing one, waiting for a step another
//! build is running — announced to whatever shows progress (the CLI: bars on a
//! terminal, plain lines otherwise). Like `tracing`'s dispatcher, the reporter is one
//! per process, set once by the program ([`set_reporter`]); library code only calls
//! [`begin`], which costs nothing when no reporter is set (tests, `--quiet`, `--json`).

use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

/// Shows phases of work.
pub trait Reporter: Send + Sync {
    /// A phase starts: `what` in words ("unpacking layer 1a2b3c4d5e6f"), `total` its
    /// size in bytes when known. The phase ends when the returned value is dropped.
    fn begin(&self, what: &str, total: Option<u64>) -> Box<dyn Phase>;
}

/// One phase in progress, as the [`Reporter`] shows it; dropping it ends the phase.
pub trait Phase: Send + Sync {
    /// `bytes` more of the phase's total are done.
    fn advance(&self, bytes: u64);
}

static REPORTER: OnceLock<Box<dyn Reporter>> = OnceLock::new();

/// Sets the process's reporter; only the first call has an effect.
pub fn set_reporter(reporter: Box<dyn Reporter>) {
    let _ = REPORTER.set(reporter);
}

/// Starts a phase (see [`Reporter::begin`]); it ends when the [`Activity`] is dropped.
pub fn begin(what: impl FnOnce() -> String, total: Option<u64>) -> Activity {
    Activity(REPORTER.get().map(|r| r.begin(&what(), total)))
}

/// A phase of work in progress (nothing when no reporter is set).
pub struct Activity(Option<Box<dyn Phase>>);

impl Activity {
    /// `bytes` more of the phase's total are done.
    pub fn advance(&self, bytes: u64) {
        if let Some(phase) = &self.0 {
            phase.advance(bytes);
        }
    }
}

/// A reader that advances an [`Activity`] by the bytes read through it.
pub struct CountingReader<R> {
    inner: R,
    activity: Arc<Activity>,
}

impl<R> CountingReader<R> {
    /// Reads `inner`, advancing `activity`.
    pub fn new(inner: R, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.activity.advance(n as u64);
        Ok(n)
    }
}
