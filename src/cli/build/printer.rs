//! How `flense build` shows progress: one line per instruction on stderr, JSON lines on
//! stdout, or nothing.

use std::io::Write;

use flense::builder::events::{BuildEvent, EventSink, StepStatus};

/// How build events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One line per instruction on stderr.
    Human,
    /// Nothing but errors.
    Quiet,
    /// JSON lines on stdout.
    Json,
}

/// Prints build events in one of the [`Output`] forms.
pub struct Printer(pub Output);

impl EventSink for Printer {
    fn event(&self, event: &BuildEvent) {
        match self.0 {
            Output::Quiet => {}
            Output::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            Output::Human => match event {
                BuildEvent::Stage { variant, base } => {
                    eprintln!(
                        "==> variant {variant} (base {})",
                        base.as_deref().unwrap_or("scratch")
                    );
                }
                BuildEvent::Step {
                    variant,
                    index,
                    total,
                    instruction,
                    status,
                    seconds,
                } => {
                    let what = match status {
                        StepStatus::Cached => "cached",
                        StepStatus::CachedRemote => "cached (remote)",
                        StepStatus::Ran => "ran",
                        StepStatus::Applied => "",
                    };
                    let mut text = instruction.clone();
                    if text.chars().count() > 100 {
                        text = text.chars().take(97).collect::<String>() + "...";
                    }
                    if what.is_empty() {
                        eprintln!("[{variant} {index}/{total}] {text}");
                    } else {
                        eprintln!("[{variant} {index}/{total}] {text}  ({what}, {seconds:.2}s)");
                    }
                }
                // Already logged on stderr.
                BuildEvent::Warning { .. } => {}
                BuildEvent::Image {
                    digest, reference, ..
                } => {
                    eprintln!(
                        "==> image {}{digest}",
                        reference
                            .as_ref()
                            .map(|r| format!("{r} "))
                            .unwrap_or_default()
                    );
                }
            },
        }
    }
}
