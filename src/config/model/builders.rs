//! Builder sections of the model: `builder`, `builders`, `node`, `php`, `python`,
//! and builder mounts and caches.

use serde::Serialize;

use super::{Artifact, Flag};

/// A builder command: `[make, build]` (each argument quoted) or a shell string run
/// verbatim through `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Command {
    /// Array form.
    Exec(Vec<String>),
    /// String form.
    Shell(String),
}

impl Command {
    /// True for `[]` or `""`.
    pub fn is_empty(&self) -> bool {
        match self {
            Command::Exec(v) => v.is_empty(),
            Command::Shell(s) => s.is_empty(),
        }
    }
}

/// `builder:` and `builders[].custom`. `None` fields are absent (merge: replaced only
/// when present).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CustomBuilder {
    /// The command, when given.
    pub command: Option<Command>,
    /// An inline script, when given.
    pub script: Option<String>,
    /// Files copied in before the command.
    pub requirements: Option<Vec<Artifact>>,
    /// Source mounts for the run.
    pub mounts: Option<Vec<Mount>>,
    /// Persistent cache mounts for the run.
    pub caches: Option<Vec<Cache>>,
}

impl CustomBuilder {
    /// True when nothing at all is set.
    pub fn is_empty(&self) -> bool {
        self.command.as_ref().is_none_or(Command::is_empty)
            && self.script.as_deref().unwrap_or("").is_empty()
            && self.requirements.as_ref().is_none_or(Vec::is_empty)
            && self.mounts.as_ref().is_none_or(Vec::is_empty)
            && self.caches.as_ref().is_none_or(Vec::is_empty)
    }
}

/// One `builders[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderEntry {
    /// `custom:`.
    Custom(CustomBuilder),
    /// `node:`.
    Node(NodeConfig),
    /// `php:`.
    Php(PhpConfig),
    /// `python:`.
    Python(PythonConfig),
}

impl BuilderEntry {
    /// The entry's key: `custom`, `node`, `php` or `python`.
    pub fn kind(&self) -> &'static str {
        match self {
            BuilderEntry::Custom(_) => "custom",
            BuilderEntry::Node(_) => "node",
            BuilderEntry::Php(_) => "php",
            BuilderEntry::Python(_) => "python",
        }
    }
}

/// `node:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NodeConfig {
    /// `package.json` and friends; `Some(vec![])` clears inherited ones.
    pub requirements: Option<Vec<Artifact>>,
    /// `NODE_ENV`; empty = unset.
    pub env: String,
    /// `npm ci` instead of `npm install`.
    pub use_npm_ci: Flag,
    /// Tolerate `npm dedupe` failures.
    pub allow_dedupe_failure: Flag,
}

impl NodeConfig {
    /// True when nothing is given (not even `requirements: []`): the standalone
    /// `node` key then does not count as "declared" for the `builders` rule.
    pub fn is_empty(&self) -> bool {
        *self == NodeConfig::default()
    }
}

/// `php:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PhpConfig {
    /// `composer.json` and friends.
    pub requirements: Option<Vec<Artifact>>,
    /// `--no-dev`.
    pub production: Flag,
}

impl PhpConfig {
    /// True when nothing is given (not even `requirements: []`).
    pub fn is_empty(&self) -> bool {
        *self == PhpConfig::default()
    }
}

/// `python.poetry:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PoetryConfig {
    /// Version spec with an operator (`==1.5.1`); non-empty enables Poetry.
    pub version: String,
    /// Install dev dependencies (Poetry 1.x).
    pub devel: Flag,
    /// `--only` (Poetry 2.x).
    pub only: String,
    /// `--without` (Poetry 2.x).
    pub without: String,
}

/// `python:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PythonConfig {
    /// The Python executable; required to enable the builder.
    pub version: String,
    /// `-r` files or Poetry's files; `Some(vec![])` counts as present.
    pub requirements: Option<Vec<Artifact>>,
    /// `--system-site-packages`.
    pub use_system_site_packages: Flag,
    /// `pip install --no-deps` plus `pip check`.
    pub no_deps: Flag,
    /// Poetry settings.
    pub poetry: PoetryConfig,
    /// venv path; empty = `/opt/lib/venv`.
    pub venv: String,
    /// pip version spec; empty = default.
    pub pip_version: String,
    /// setuptools version spec; empty = default.
    pub setuptools_version: String,
    /// tox version spec; empty = default.
    pub tox_version: String,
    /// wheel version spec; empty = default.
    pub wheel_version: String,
}

impl PythonConfig {
    /// The default venv path.
    pub const DEFAULT_VENV: &'static str = "/opt/lib/venv";

    /// The builder runs only with a version and a `requirements` key (even `[]`).
    pub fn is_enabled(&self) -> bool {
        !self.version.is_empty() && self.requirements.is_some()
    }

    /// The venv path, defaulted.
    pub fn venv_path(&self) -> &str {
        if self.venv.is_empty() {
            Self::DEFAULT_VENV
        } else {
            &self.venv
        }
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == PythonConfig::default()
    }
}

/// A `builder.mounts[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Mount {
    /// `local`, a variant name or an image reference.
    pub from: String,
    /// Mount point; empty = `.` (the working directory).
    pub destination: String,
    /// Sub-path of the `from` filesystem; empty = its root.
    pub source: String,
}

/// Sharing mode of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheAccess {
    /// Concurrent use allowed (the default).
    #[default]
    Shared,
    /// One user at a time.
    Locked,
    /// A fresh cache per concurrent user.
    Private,
}

/// A `builder.caches[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Cache {
    /// Mount point (env-expanded at build time).
    pub destination: String,
    /// Cache id; empty = the expanded destination.
    pub id: String,
    /// Sharing mode.
    pub access: CacheAccess,
}
