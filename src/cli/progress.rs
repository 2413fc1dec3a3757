//! How long phases of work ([`flense::activity`]) are shown: indicatif bars and
//! spinners on stderr when it is a terminal, else one plain line for each phase that
//! took a second or more; nothing with `--quiet` or `--json`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use flense::activity::{set_reporter, Phase, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shows the activities of this process on stderr, unless `quiet`.
pub fn install(quiet: bool) {
    if quiet {
        return;
    }
    if std::io::stderr().is_terminal() {
        set_reporter(Box::new(Bars(MultiProgress::with_draw_target(
            ProgressDrawTarget::stderr(),
        ))));
    } else {
        set_reporter(Box::new(Lines));
    }
}

/// Bars (known size) and spinners (unknown) on a terminal.
struct Bars(MultiProgress);

/// A bar or spinner, cleared when the phase ends.
struct Bar(ProgressBar);

impl Reporter for Bars {
    fn begin(&self, what: &str, total: Option<u64>) -> Box<dyn Phase> {
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::new(total),
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({elapsed})",
            ),
            None => (ProgressBar::no_length(), "{spinner} {msg} ({elapsed})"),
        };
        let bar = self.0.add(bar);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar.tick();
        Box::new(Bar(bar))
    }
}

impl Phase for Bar {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Plain lines for logs: a phase that took a second or more, once it ends.
struct Lines;

/// A phase's name and start.
struct Line(String, Instant);

impl Reporter for Lines {
    fn begin(&self, what: &str, _total: Option<u64>) -> Box<dyn Phase> {
        Box::new(Line(what.to_string(), Instant::now()))
    }
}

impl Phase for Line {
    fn advance(&self, _bytes: u64) {}
}

impl Drop for Line {
    fn drop(&mut self) {
        let took = self.1.elapsed();
        if took >= Duration::from_secs(1) {
            eprintln!("{}: {:.1}s", self.0, took.as_secs_f64());
        }
    }
}
