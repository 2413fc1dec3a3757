//! SLSA v1 provenance (<https://slsa.dev/spec/v1.0/provenance>) of a flense build.
//!
//! The recipe: `buildType` [`BUILD_TYPE`]; `externalParameters` hold the config file
//! (path in the context), the variant, the build arguments (values of secret-looking
//! names and URL passwords redacted), the platform and extra labels;
//! `internalParameters.steps` the step list as the build ran it; `resolvedDependencies`
//! the config file by sha256, the context's git commit when it is a git checkout, and
//! every image the build read (base images and `copies.from` images) by manifest
//! digest; `runDetails.builder.id` is [`builder_id`]. No registry credential is ever
//! part of it: image references are recorded as written in the config.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use crate::builder::events::{BuildEvent, EventSink};
use crate::builder::stage::ImageSource;
use crate::builder::BuildError;
use crate::image::digest::Digest;
use crate::store::StoredImage;

/// The `buildType` of flense's provenance.
pub const BUILD_TYPE: &str = "https://flense.dev/provenance/blubber/v1";

/// The builder id: `https://flense.dev/builder@<flense version>`.
pub fn builder_id() -> String {
    format!("https://flense.dev/builder@{}", env!("CARGO_PKG_VERSION"))
}

/// An image the build read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageInput {
    /// The reference as written in the config.
    pub reference: String,
    /// The manifest digest it resolved to.
    pub digest: Digest,
    /// `base` (a stage's `base`) or `copies` (a `copies.from` image).
    pub role: &'static str,
}

/// One step as the build ran it.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// The variant (stage).
    pub variant: String,
    /// The instruction as the Dockerfile rendering shows it.
    pub instruction: String,
    /// `ran`, `cached`, `cached-remote` or `applied`.
    pub status: crate::builder::events::StepStatus,
}

/// What one build's provenance says.
#[derive(Debug, Clone)]
pub struct BuildRecord {
    /// The config file's path relative to the context (or as given).
    pub config_path: String,
    /// The config file's sha256.
    pub config_digest: Digest,
    /// The variant built.
    pub variant: String,
    /// `--build-arg` values (redacted by [`predicate`]).
    pub build_args: BTreeMap<String, String>,
    /// `--label` values.
    pub labels: BTreeMap<String, String>,
    /// The platform built for.
    pub platform: String,
    /// The context's git commit, when it is a git checkout.
    pub git_commit: Option<String>,
    /// Every image the build read.
    pub images: Vec<ImageInput>,
    /// The steps.
    pub steps: Vec<StepRecord>,
    /// Start and finish (RFC 3339).
    pub started: String,
    /// Finish time (RFC 3339).
    pub finished: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Predicate {
    build_definition: BuildDefinition,
    run_details: RunDetails,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition {
    build_type: &'static str,
    external_parameters: serde_json::Value,
    internal_parameters: serde_json::Value,
    resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceDescriptor {
    uri: String,
    digest: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunDetails {
    builder: serde_json::Value,
    metadata: serde_json::Value,
}

/// The SLSA v1 provenance predicate of `record`.
pub fn predicate(record: &BuildRecord) -> serde_json::Value {
    let build_args: BTreeMap<&String, String> = record
        .build_args
        .iter()
        .map(|(k, v)| (k, redact(k, v)))
        .collect();
    let mut deps = vec![ResourceDescriptor {
        uri: format!("file:{}", record.config_path),
        digest: BTreeMap::from([("sha256", record.config_digest.digest().to_owned())]),
        name: Some("blubber.yaml".into()),
        annotations: BTreeMap::new(),
    }];
    if let Some(commit) = &record.git_commit {
        deps.push(ResourceDescriptor {
            uri: "git+file:context".into(),
            digest: BTreeMap::from([("gitCommit", commit.clone())]),
            name: Some("context".into()),
            annotations: BTreeMap::new(),
        });
    }
    for image in &record.images {
        deps.push(ResourceDescriptor {
            uri: format!("docker://{}", image.reference),
            digest: BTreeMap::from([("sha256", image.digest.digest().to_owned())]),
            name: Some(image.reference.clone()),
            annotations: BTreeMap::from([("role", image.role.to_owned())]),
        });
    }
    let predicate = Predicate {
        build_definition: BuildDefinition {
            build_type: BUILD_TYPE,
            external_parameters: serde_json::json!({
                "configFile": record.config_path,
                "variant": record.variant,
                "buildArgs": build_args,
                "labels": record.labels,
                "platform": record.platform,
            }),
            internal_parameters: serde_json::json!({ "steps": record.steps }),
            resolved_dependencies: deps,
        },
        run_details: RunDetails {
            builder: serde_json::json!({
                "id": builder_id(),
                "version": { "flense": env!("CARGO_PKG_VERSION") },
            }),
            metadata: serde_json::json!({
                "startedOn": record.started,
                "finishedOn": record.finished,
            }),
        },
    };
    serde_json::to_value(predicate).unwrap_or_default()
}

/// Names of build arguments whose values never enter the provenance.
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    [
        "PASS",
        "SECRET",
        "TOKEN",
        "KEY",
        "CREDENTIAL",
        "AUTH",
        "COOKIE",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// `value` as the provenance records it: `<redacted>` for a secret-looking name, a
/// URL's user information (`http://user:pass@proxy`) dropped.
pub fn redact(name: &str, value: &str) -> String {
    if secret_name(name) {
        return "<redacted>".into();
    }
    match url::Url::parse(value) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => value.to_owned(),
    }
}

/// The git commit checked out in `dir` (`git rev-parse HEAD`), when it is a git
/// checkout and git is installed.
pub fn git_commit(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "-q", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && commit.len() >= 40 && commit.chars().all(|c| c.is_ascii_hexdigit()))
        .then_some(commit)
}

/// Passes build events on to `inner` and records the steps and stage bases.
pub struct RecordingEvents<'a> {
    inner: &'a dyn EventSink,
    steps: Mutex<Vec<StepRecord>>,
    bases: Mutex<Vec<String>>,
}

impl<'a> RecordingEvents<'a> {
    /// Records the events `inner` receives.
    pub fn new(inner: &'a dyn EventSink) -> Self {
        RecordingEvents {
            inner,
            steps: Mutex::new(Vec::new()),
            bases: Mutex::new(Vec::new()),
        }
    }

    /// The steps seen, in order.
    pub fn steps(&self) -> Vec<StepRecord> {
        self.steps.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The base images of the stages seen.
    pub fn bases(&self) -> Vec<String> {
        self.bases.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl EventSink for RecordingEvents<'_> {
    fn event(&self, event: &BuildEvent) {
        match event {
            BuildEvent::Stage {
                base: Some(base), ..
            } => {
                if let Ok(mut bases) = self.bases.lock() {
                    bases.push(base.clone());
                }
            }
            BuildEvent::Step {
                variant,
                instruction,
                status,
                ..
            } => {
                if let Ok(mut steps) = self.steps.lock() {
                    steps.push(StepRecord {
                        variant: variant.clone(),
                        instruction: instruction.clone(),
                        status: *status,
                    });
                }
            }
            _ => {}
        }
        self.inner.event(event);
    }
}

/// Resolves images through `inner` and records every reference with its digest.
pub struct RecordingImages<'a> {
    inner: &'a dyn ImageSource,
    seen: Mutex<BTreeMap<String, Digest>>,
}

impl<'a> RecordingImages<'a> {
    /// Records the images `inner` resolves.
    pub fn new(inner: &'a dyn ImageSource) -> Self {
        RecordingImages {
            inner,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every image resolved, with its role given the stages' `bases`.
    pub fn inputs(&self, bases: &[String]) -> Vec<ImageInput> {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        seen.into_iter()
            .map(|(reference, digest)| ImageInput {
                role: if bases.contains(&reference) {
                    "base"
                } else {
                    "copies"
                },
                reference,
                digest,
            })
            .collect()
    }
}

impl ImageSource for RecordingImages<'_> {
    fn image(&self, reference: &str) -> Result<StoredImage, BuildError> {
        let image = self.inner.image(reference)?;
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(reference.to_owned(), image.descriptor.digest().clone());
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact("NPM_TOKEN", "abc"), "<redacted>");
        assert_eq!(redact("db_password", "abc"), "<redacted>");
        assert_eq!(
            redact("HTTP_PROXY", "http://me:hunter2@proxy:3128/"),
            "http://proxy:3128/"
        );
        assert_eq!(redact("NODE_ENV", "production"), "production");
    }
}
