//! Test hook: pause points in the middle of store operations, so the crash-consistency
//! tests (`tests/store_check.rs`) can `kill -9` flense exactly there instead of guessing
//! a moment.
//!
//! With `FLENSE_TEST_PAUSE_AT=<point>` in its environment, a flense process that reaches
//! that point (the first time) prints `flense: test pause at <point>` on stderr and
//! sleeps until it is killed. Without the variable every point is a no-op (one cached
//! environment lookup), so release builds behave exactly as before. This is an
//! environment variable rather than a cargo feature because the tests drive the one
//! `flense` binary `cargo test` builds, and a feature would change that binary for every
//! other test file.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable naming the point to pause at.
pub const PAUSE_AT_VAR: &str = "FLENSE_TEST_PAUSE_AT";

/// A place in the middle of a store operation where a test may stop flense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// Unpacking a layer blob: the first regular file is extracted into the staging
    /// directory under `tmp/`, the rest of the tar is not.
    Unpack,
    /// Writing a new layer blob: its first compressed bytes are in the temp file under
    /// `tmp/`, the rest are not.
    LayerWrite,
    /// Committing an image: its config and manifest blobs are stored, its name is not
    /// set yet.
    Commit,
    /// `flense prune`: the unreachable blobs are deleted, their diff-ID records and
    /// unpacked layers not yet.
    PruneDelete,
}

impl PausePoint {
    /// The value of [`PAUSE_AT_VAR`] that selects this point.
    pub fn name(self) -> &'static str {
        match self {
            PausePoint::Unpack => "unpack",
            PausePoint::LayerWrite => "layer-write",
            PausePoint::Commit => "commit",
            PausePoint::PruneDelete => "prune-delete",
        }
    }
}

/// Pauses this process for good when [`PAUSE_AT_VAR`] names `point` and no point has
/// paused it yet (see the module docs); otherwise returns at once.
pub fn pause_at(point: PausePoint) {
    static PAUSED: AtomicBool = AtomicBool::new(false);
    if !is_selected(point) || PAUSED.swap(true, Ordering::SeqCst) {
        return;
    }
    let _ = writeln!(io::stderr(), "flense: test pause at {}", point.name());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Whether [`PAUSE_AT_VAR`] names `point`.
fn is_selected(point: PausePoint) -> bool {
    static SELECTED: OnceLock<Option<String>> = OnceLock::new();
    let selected = SELECTED.get_or_init(|| std::env::var(PAUSE_AT_VAR).ok());
    selected.as_deref() == Some(point.name())
}

/// A writer that passes everything to `W` and, after the first write, flushes `W` and
/// reaches `point` (see [`pause_at`]): the bytes written so far are on disk. Unless the
/// point is selected it only passes the writes on.
pub(crate) struct PauseAfterFirstWrite<W> {
    inner: W,
    point: Option<PausePoint>,
}

impl<W: Write> PauseAfterFirstWrite<W> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: W, point: PausePoint) -> Self {
        Self {
            inner,
            point: Some(point),
        }
    }

    /// The wrapped writer.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for PauseAfterFirstWrite<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if n > 0 {
            if let Some(point) = self.point.take().filter(|p| is_selected(*p)) {
                self.inner.flush()?;
                pause_at(point);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
