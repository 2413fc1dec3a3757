//! Live output: `[stage]`-prefixed lines (coloured on a terminal) or JSON events on
//! stdout, and one log file per stage.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::line_tail::LineTail;

/// How the live output is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// `[stage] line` with a coloured prefix.
    Color,
    /// `[stage] line`.
    Plain,
    /// One JSON object per line (`{"event": ...}`).
    Json,
    /// Nothing live (tests; the log files and reports are still written).
    Quiet,
}

impl OutputMode {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset, plain otherwise.
    pub fn detect(json: bool) -> OutputMode {
        if json {
            OutputMode::Json
        } else if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            OutputMode::Color
        } else {
            OutputMode::Plain
        }
    }
}

/// The shared live-output sink (one lock, so lines of parallel stages never interleave
/// mid-line).
#[derive(Debug)]
pub struct Output {
    mode: OutputMode,
    lock: Mutex<()>,
}

const COLOURS: [u8; 6] = [36, 33, 35, 32, 34, 31];

impl Output {
    /// A sink in `mode`.
    pub fn new(mode: OutputMode) -> Output {
        Output {
            mode,
            lock: Mutex::new(()),
        }
    }

    /// The mode.
    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    /// Prints one line of a stage.
    pub fn stage_line(&self, pipeline: &str, stage: &str, line: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = match self.mode {
            OutputMode::Quiet => Ok(()),
            OutputMode::Plain => writeln!(out, "[{stage}] {line}"),
            OutputMode::Color => {
                let c = COLOURS[stage.bytes().map(usize::from).sum::<usize>() % COLOURS.len()];
                writeln!(out, "\x1b[{c}m[{stage}]\x1b[0m {line}")
            }
            OutputMode::Json => writeln!(
                out,
                "{}",
                json!({"event": "log", "pipeline": pipeline, "stage": stage, "line": line})
            ),
        };
    }

    /// Emits a JSON event (JSON mode) or a plain line (other modes) for run-level news.
    pub fn event(&self, event: serde_json::Value, text: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = match self.mode {
            OutputMode::Quiet => Ok(()),
            OutputMode::Json => writeln!(out, "{event}"),
            _ => writeln!(out, "{text}"),
        };
    }
}

/// Number of trailing log lines kept for reports.
pub const KEPT_LINES: usize = 40;

/// The log of one stage: its file, the live sink and the last lines for reports.
#[derive(Debug)]
pub struct StageLog {
    pipeline: String,
    stage: String,
    path: Option<PathBuf>,
    file: Mutex<Option<File>>,
    output: Arc<Output>,
    tail: LineTail,
}

impl StageLog {
    /// Opens `<dir>/<pipeline>.<stage>.log` (truncating; characters outside
    /// `[A-Za-z0-9._-]` become `_`); `dir == None` keeps no file.
    pub fn open(
        dir: Option<&Path>,
        pipeline: &str,
        stage: &str,
        output: Arc<Output>,
    ) -> std::io::Result<StageLog> {
        let (path, file) = match dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                let safe = |s: &str| -> String {
                    s.chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect()
                };
                let p = d.join(format!("{}.{}.log", safe(pipeline), safe(stage)));
                let f = File::create(&p)?;
                (Some(p), Some(f))
            }
            None => (None, None),
        };
        Ok(StageLog {
            pipeline: pipeline.to_string(),
            stage: stage.to_string(),
            path,
            file: Mutex::new(file),
            output,
            tail: LineTail::new(KEPT_LINES),
        })
    }

    /// Logs one line (several if it contains newlines).
    pub fn line(&self, text: &str) {
        for l in text.lines() {
            if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                let _ = writeln!(f, "{l}");
            }
            // A service's lines (`[stage/service] text`) keep their own label.
            let service = l
                .strip_prefix('[')
                .filter(|rest| rest.starts_with(&format!("{}/", self.stage)))
                .and_then(|rest| rest.split_once("] "));
            match service {
                Some((label, text)) => self.output.stage_line(&self.pipeline, label, text),
                None => self.output.stage_line(&self.pipeline, &self.stage, l),
            }
            self.tail.push(l.to_string());
        }
    }

    /// The last lines logged.
    pub fn tail(&self) -> Vec<String> {
        self.tail.lines()
    }

    /// The log file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The stage name.
    pub fn stage(&self) -> &str {
        &self.stage
    }
}
