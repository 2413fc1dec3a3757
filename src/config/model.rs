//! The typed model of a Blubber v4 config (`.pipeline/blubber.yaml`).
//!
//! Field semantics follow Blubber v1.8.0 (Go zero values): an empty string or a zero
//! uid/gid means "unset" for merging; flags are tri-state (`None` = not given).

use std::collections::BTreeMap;

use serde::Serialize;

mod builders;

pub use builders::*;

/// A tri-state flag: `None` when the key is absent, so that an explicit `false` can
/// override an inherited `true` when merging.
pub type Flag = Option<bool>;

/// Whether a tri-state flag is explicitly true.
pub fn is_true(flag: Flag) -> bool {
    flag == Some(true)
}

/// The keyword for the build context in `from`.
pub const LOCAL: &str = "local";

/// A whole config file: the top-level common config (with Blubber's defaults applied)
/// and the raw (unmerged) variants, in file order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Always `v4` once validated.
    pub version: String,
    /// Top-level common config, defaults for `lives` and `runs` included.
    pub common: CommonConfig,
    /// The variants as written, in file order.
    pub variants: Vec<Variant>,
    /// The name the file was loaded as (used in error messages).
    #[serde(skip)]
    pub file_name: String,
    /// Positions of every value, by full path (`variants.foo.copies[0].from`).
    #[serde(skip)]
    pub(crate) positions: super::decode::Positions,
}

/// One `variants.<name>` entry as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    /// The variant's name.
    pub name: String,
    /// Variants whose config is merged in before this one, in the order written.
    pub includes: Vec<String>,
    /// Files copied from the context, other variants or images (as written).
    pub copies: Vec<Artifact>,
    /// Everything else.
    pub common: CommonConfig,
}

/// A variant with includes merged, defaults applied and copies expanded: what the
/// planner compiles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantConfig {
    /// The variant's name.
    pub name: String,
    /// The merged common config. `lives` and `runs` are always complete.
    pub common: CommonConfig,
    /// The copies after merging, as written (before expansion).
    pub copies: Vec<Artifact>,
    /// The copies expanded with this variant's `lives.in` (§2.8): every entry has a
    /// `source` and a `destination`.
    pub expanded_copies: Vec<Artifact>,
    /// The includes closure, in merge order (leaves first).
    pub includes: Vec<String>,
}

impl VariantConfig {
    /// True when the variant has no base image: all common config except `copies` and
    /// `entrypoint` is then ignored (Blubber quirk Q1).
    pub fn is_scratch(&self) -> bool {
        self.common.base.as_deref().unwrap_or("").is_empty()
    }
}

/// The keys allowed both at the top level and in variants.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CommonConfig {
    /// Base image reference; `None` or `""` means scratch.
    pub base: Option<String>,
    /// Build arguments and their defaults.
    pub arguments: BTreeMap<String, String>,
    /// Debian packages, sources and proxies.
    pub apt: AptConfig,
    /// A single custom builder (`builder:`), when given.
    pub builder: Option<CustomBuilder>,
    /// Ordered builders (`builders:`).
    pub builders: Vec<BuilderEntry>,
    /// The standalone Node builder.
    pub node: NodeConfig,
    /// The standalone PHP builder.
    pub php: PhpConfig,
    /// The standalone Python builder.
    pub python: PythonConfig,
    /// Who owns the application files and where they live.
    pub lives: LivesConfig,
    /// Who runs the application and with what environment.
    pub runs: RunsConfig,
    /// The image entrypoint (exec form); `Some(vec![])` keeps the base image's.
    pub entrypoint: Option<Vec<String>>,
}

/// `apt:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AptConfig {
    /// Packages by target release; the list form is stored under `default`.
    pub packages: BTreeMap<String, Vec<String>>,
    /// Extra apt sources.
    pub sources: Vec<AptSource>,
    /// Proxies.
    pub proxies: Vec<AptProxy>,
}

impl AptConfig {
    /// True when there is nothing to install or configure.
    pub fn is_empty(&self) -> bool {
        self.packages.values().all(Vec::is_empty)
            && self.sources.is_empty()
            && self.proxies.is_empty()
    }
}

/// One `apt.sources[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AptSource {
    /// Repository URL (http or https).
    pub url: String,
    /// Distribution (release) name.
    pub distribution: String,
    /// Components.
    pub components: Vec<String>,
    /// ASCII-armoured key(s), written verbatim to a keyring file; empty when unset.
    pub signed_by: String,
}

/// One `apt.proxies[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AptProxy {
    /// Proxy URL.
    pub url: String,
    /// The one source this proxy is for (long form only); `None` = all sources of the
    /// proxy URL's scheme.
    pub source: Option<String>,
}

/// A user (`lives` or `runs`); empty name / zero id = unset in variants.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct UserConfig {
    /// User name.
    #[serde(rename = "as")]
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Numeric group id.
    pub gid: u32,
}

/// `lives:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LivesConfig {
    /// Application directory.
    #[serde(rename = "in")]
    pub dir: String,
    /// Owner of the application files.
    #[serde(flatten)]
    pub user: UserConfig,
}

/// `runs:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RunsConfig {
    /// Runtime working directory; empty = `lives.in`.
    #[serde(rename = "in")]
    pub dir: String,
    /// Runtime user.
    #[serde(flatten)]
    pub user: UserConfig,
    /// Environment for build steps after the privilege drop and for the image.
    pub environment: BTreeMap<String, String>,
    /// Stay the lives user at runtime.
    pub insecurely: Flag,
}

/// A copy source (`copies[]`, `requirements[]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Artifact {
    /// `local`, a variant name or an image reference.
    pub from: String,
    /// Path in the source; empty = unset.
    pub source: String,
    /// Path in the target; empty = unset.
    pub destination: String,
    /// Exclude patterns relative to the source.
    pub exclude: Vec<String>,
}
