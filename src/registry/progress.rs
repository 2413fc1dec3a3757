//! Progress on stderr: indicatif bars when stderr is a terminal, plain lines otherwise;
//! or blob transfers as [`crate::activity`] phases ([`ActivityProgress`]), for pulls
//! inside a build.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_spec::image::Digest;

use super::blobs::{BlobOutcome, Progress};

/// Reports blob transfers on stderr.
pub struct StderrProgress {
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
}

impl StderrProgress {
    /// Bars when stderr is a terminal, else one line per event.
    pub fn new() -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(HashMap::new()),
            )
        });
        Self { bars }
    }
}

impl Default for StderrProgress {
    fn default() -> Self {
        Self::new()
    }
}

fn short(digest: &Digest) -> String {
    digest.digest().chars().take(12).collect()
}

fn outcome_word(outcome: BlobOutcome) -> &'static str {
    match outcome {
        BlobOutcome::Cached => "already in the store",
        BlobOutcome::Downloaded => "downloaded",
        BlobOutcome::Exists => "already in the registry",
        BlobOutcome::Mounted => "mounted",
        BlobOutcome::Uploaded => "uploaded",
    }
}

impl Progress for StderrProgress {
    fn blob_started(&self, digest: &Digest, size: u64) {
        match &self.bars {
            Some((multi, bars)) => {
                let bar = multi.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(short(digest));
                bars.lock()
                    .expect("bars lock")
                    .insert(digest.to_string(), bar);
            }
            None => eprintln!("blob {}: {} bytes", short(digest), size),
        }
    }

    fn blob_advanced(&self, digest: &Digest, bytes: u64) {
        if let Some((_, bars)) = &self.bars {
            if let Some(bar) = bars.lock().expect("bars lock").get(&digest.to_string()) {
                bar.inc(bytes);
            }
        }
    }

    fn blob_restarted(&self, digest: &Digest, offset: u64) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.lock().expect("bars lock").get(&digest.to_string()) {
                    bar.set_position(offset);
                }
            }
            None => eprintln!("blob {}: resuming at byte {offset}", short(digest)),
        }
    }

    fn blob_finished(&self, digest: &Digest, outcome: BlobOutcome) {
        match &self.bars {
            Some((multi, bars)) => {
                if let Some(bar) = bars.lock().expect("bars lock").remove(&digest.to_string()) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(format!("blob {}: {}", short(digest), outcome_word(outcome)));
            }
            None => eprintln!("blob {}: {}", short(digest), outcome_word(outcome)),
        }
    }
}

/// Reports each blob transfer as an [`crate::activity`] phase (a build's base image
/// pulls: bars on a terminal like `flense pull`'s, nothing without a reporter).
#[derive(Default)]
pub struct ActivityProgress {
    transfers: Mutex<HashMap<String, crate::activity::Activity>>,
}

impl Progress for ActivityProgress {
    fn blob_started(&self, digest: &Digest, size: u64) {
        let activity = crate::activity::begin(|| format!("blob {}", short(digest)), Some(size));
        self.transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.to_string(), activity);
    }

    fn blob_advanced(&self, digest: &Digest, bytes: u64) {
        if let Some(a) = self
            .transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest.to_string())
        {
            a.advance(bytes);
        }
    }

    fn blob_finished(&self, digest: &Digest, _outcome: BlobOutcome) {
        self.transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&digest.to_string());
    }
}
