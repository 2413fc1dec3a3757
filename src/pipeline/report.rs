//! End-of-run reports: the summary table and JUnit XML.

use std::path::PathBuf;
use std::time::Duration;

/// How a stage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageResult {
    /// Every step succeeded.
    Passed,
    /// A step failed (the message says which and why).
    Failed(String),
    /// Not started because an earlier frame (or a predecessor) failed.
    Skipped,
}

impl StageResult {
    /// `passed`, `FAILED` or `skipped`.
    pub fn label(&self) -> &'static str {
        match self {
            StageResult::Passed => "passed",
            StageResult::Failed(_) => "FAILED",
            StageResult::Skipped => "skipped",
        }
    }
}

/// The record of one stage.
#[derive(Debug, Clone)]
pub struct StageReport {
    /// The pipeline.
    pub pipeline: String,
    /// The stage.
    pub stage: String,
    /// How it ended.
    pub result: StageResult,
    /// Wall time.
    pub duration: Duration,
    /// The image it built or published, if any.
    pub image: Option<String>,
    /// The last lines of its log.
    pub log_tail: Vec<String>,
    /// Its log file.
    pub log_path: Option<PathBuf>,
}

/// The record of one pipeline run.
#[derive(Debug, Clone, Default)]
pub struct PipelineReport {
    /// The pipeline.
    pub name: String,
    /// User stages, in frame order.
    pub stages: Vec<StageReport>,
    /// The frames as run.
    pub frames: Vec<Vec<String>>,
    /// Set when the run was interrupted.
    pub interrupted: bool,
}

impl PipelineReport {
    /// True when no stage failed and the run was not interrupted.
    pub fn passed(&self) -> bool {
        !self.interrupted
            && self.stages.iter().all(|s| {
                s.result != StageResult::Skipped && !matches!(s.result, StageResult::Failed(_))
            })
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// An image for the table: a built image's ID as `sha256:` and 12 hex digits (like
/// `docker images`), a published reference as it is.
fn short_image(image: &str) -> String {
    match image.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 && !hex.contains(['/', ':']) => {
            format!("sha256:{}", &hex[..12])
        }
        _ => image.to_string(),
    }
}

/// The closing table: pipeline, stage, result, duration, image (IDs shortened).
pub fn summary_table(reports: &[PipelineReport]) -> String {
    let mut rows = vec![[
        "PIPELINE".to_string(),
        "STAGE".into(),
        "RESULT".into(),
        "DURATION".into(),
        "IMAGE".into(),
    ]];
    for p in reports {
        for s in &p.stages {
            rows.push([
                p.name.clone(),
                s.stage.clone(),
                s.result.label().to_string(),
                secs(s.duration),
                s.image.as_deref().map_or_else(|| "-".into(), short_image),
            ]);
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML: one testsuite per pipeline, one testcase per stage; a failure carries
/// the log tail.
pub fn junit(reports: &[PipelineReport]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for p in reports {
        let failures = p
            .stages
            .iter()
            .filter(|s| matches!(s.result, StageResult::Failed(_)))
            .count();
        let skipped = p
            .stages
            .iter()
            .filter(|s| s.result == StageResult::Skipped)
            .count();
        let time: f64 = p.stages.iter().map(|s| s.duration.as_secs_f64()).sum();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
            xml_escape(&p.name),
            p.stages.len()
        ));
        for s in &p.stages {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(&p.name),
                xml_escape(&s.stage),
                s.duration.as_secs_f64()
            ));
            match &s.result {
                StageResult::Passed => out.push_str("/>\n"),
                StageResult::Skipped => out.push_str(
                    ">\n      <skipped message=\"an earlier stage failed\"/>\n    </testcase>\n",
                ),
                StageResult::Failed(msg) => out.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml_escape(msg),
                    xml_escape(&s.log_tail.join("\n"))
                )),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
