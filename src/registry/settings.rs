//! The registries config file: insecure (plain HTTP) registries and name rewrites for
//! mirrors and air-gapped use. Read from `--registries-config FILE`,
//! `$FLENSE_REGISTRIES_CONFIG`, or `$XDG_CONFIG_HOME/flense/config.toml`
//! (default `~/.config/flense/config.toml`).
//!
//! ```toml
//! insecure = ["registry.example:5000"]
//!
//! [[rewrite]]
//! from = "docker-registry.wikimedia.org"
//! to = "127.0.0.1:5000"
//!
//! [[rewrite]]                       # '*': every repository starting with the prefix
//! from = "docker-registry.wikimedia.org/nodejs*"
//! to = "127.0.0.1:5000/nodejs-devel"
//!
//! [[mirror]]                         # pulls only: mirrors first, then the registry
//! prefix = "docker.io"
//! mirrors = ["127.0.0.1:5001", "mirror.internal/dockerhub"]
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{RegistryError, Result};
use crate::image::reference::Reference;

/// Parsed registries config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    #[serde(default)]
    pub insecure: Vec<String>,
    /// Name rewrites, the longest matching `from` wins.
    #[serde(default, rename = "rewrite")]
    pub rewrites: Vec<Rewrite>,
    /// Pull mirrors, tried before the registry itself; the longest matching prefix wins.
    #[serde(default, rename = "mirror")]
    pub mirrors: Vec<Mirror>,
}

/// Pull mirrors for a registry or name prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// A registry or `registry/repository` prefix, as in [`Rewrite::from`].
    pub prefix: String,
    /// Replacements for the prefix (`host[:port][/path]`), tried in order; when all
    /// fail the original registry is used.
    pub mirrors: Vec<String>,
}

/// One rewrite rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// A registry, a `registry/repository` path prefix (whole components), or a prefix
    /// ending in `*` (any repository whose name starts with it).
    pub from: String,
    /// What the matched part is replaced by (`host[:port][/repository]`).
    pub to: String,
}

impl RegistrySettings {
    /// Loads the config: `explicit` (from the CLI) if given, else
    /// `$FLENSE_REGISTRIES_CONFIG`, else the XDG default. A missing default file is an
    /// empty config; a missing explicit file is an error.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        if let Some(path) = explicit {
            return Self::from_file(path);
        }
        if let Some(path) = std::env::var_os("FLENSE_REGISTRIES_CONFIG") {
            return Self::from_file(Path::new(&path));
        }
        match default_path() {
            Some(path) if path.exists() => Self::from_file(&path),
            _ => Ok(Self::default()),
        }
    }

    /// Reads and validates one config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|reason| RegistryError::Config {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses config text; the error says what and where.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let settings: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        let mirror_rules = settings.mirrors.iter().flat_map(|m| {
            m.mirrors.iter().map(move |to| Rewrite {
                from: m.prefix.clone(),
                to: to.clone(),
            })
        });
        let rules: Vec<Rewrite> = settings
            .rewrites
            .iter()
            .cloned()
            .chain(mirror_rules)
            .collect();
        for rule in &rules {
            let target = format!("{}:rewrite-check", rule.to.trim_end_matches('/'));
            let target = if rule.to.contains('/') {
                target
            } else {
                format!("{}/x:rewrite-check", rule.to)
            };
            let parsed =
                Reference::parse(&target).map_err(|e| format!("rewrite to {:?}: {e}", rule.to))?;
            if !rule.to.starts_with(parsed.registry()) {
                return Err(format!(
                    "rewrite to {:?} must start with a registry host",
                    rule.to
                ));
            }
            if rule.from.is_empty() || rule.from.trim_end_matches('*').contains('*') {
                return Err(format!("rewrite from {:?}: '*' only at the end", rule.from));
            }
        }
        Ok(settings)
    }

    /// Whether `registry` is spoken to over plain HTTP: loopback hosts always, others
    /// when listed as insecure.
    pub fn is_plain_http(&self, registry: &str) -> bool {
        is_loopback(registry) || self.insecure.iter().any(|r| r == registry)
    }

    /// Where `reference` is really fetched from or pushed to after rewrites.
    pub fn rewrite(&self, reference: &Reference) -> Reference {
        let name = reference.name();
        let best = self
            .rewrites
            .iter()
            .filter(|rule| rule_matches(&rule.from, &name))
            .max_by_key(|rule| rule.from.len());
        match best {
            Some(rule) => replace_prefix(reference, &rule.from, &rule.to),
            None => reference.clone(),
        }
    }

    /// Where a pull of `reference` is tried, in order: its mirrors, then the
    /// (rewritten) reference itself.
    pub fn pull_sources(&self, reference: &Reference) -> Vec<Reference> {
        let target = self.rewrite(reference);
        let name = target.name();
        let mut sources: Vec<Reference> = self
            .mirrors
            .iter()
            .filter(|m| rule_matches(&m.prefix, &name))
            .max_by_key(|m| m.prefix.len())
            .map(|m| {
                m.mirrors
                    .iter()
                    .map(|to| replace_prefix(&target, &m.prefix, to))
                    .collect()
            })
            .unwrap_or_default();
        sources.push(target);
        sources
    }
}

/// Replaces the part of `reference`'s name matched by `from` (see [`Rewrite::from`])
/// with `to`, keeping tag and digest.
fn replace_prefix(reference: &Reference, from: &str, to: &str) -> Reference {
    let name = reference.name();
    let new_name = if from.ends_with('*') {
        to.to_string()
    } else {
        format!(
            "{}{}",
            to.trim_end_matches('/'),
            &name[from.len().min(name.len())..]
        )
    };
    let (registry, repository) = match new_name.split_once('/') {
        Some((registry, repository)) => (registry.to_string(), repository.to_string()),
        None => (new_name, reference.repository().to_string()),
    };
    reference.with_name(&registry, &repository)
}

fn rule_matches(from: &str, name: &str) -> bool {
    if let Some(prefix) = from.strip_suffix('*') {
        return name.starts_with(prefix);
    }
    name == from || (name.starts_with(from) && name.as_bytes().get(from.len()) == Some(&b'/'))
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("flense").join("config.toml"))
}

/// `localhost`, 127.0.0.0/8 and `[::1]`, with or without a port.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RegistrySettings {
        RegistrySettings::from_toml(
            r#"
insecure = ["reg.internal:5000"]
[[rewrite]]
from = "docker-registry.wikimedia.org"
to = "127.0.0.1:5000"
[[rewrite]]
from = "docker-registry.wikimedia.org/nodejs*"
to = "127.0.0.1:5000/nodejs-devel"
[[rewrite]]
from = "docker.io/library"
to = "mirror.local/dockerhub"
"#,
        )
        .unwrap()
    }

    fn rw(s: &str) -> String {
        settings()
            .rewrite(&Reference::parse(s).unwrap())
            .to_string()
    }

    #[test]
    fn rewrites() {
        assert_eq!(
            rw("docker-registry.wikimedia.org/python3-build-bookworm:1"),
            "127.0.0.1:5000/python3-build-bookworm:1"
        );
        assert_eq!(
            rw("docker-registry.wikimedia.org/nodejs20-devel:0.1"),
            "127.0.0.1:5000/nodejs-devel:0.1"
        );
        assert_eq!(
            rw("debian:bookworm"),
            "mirror.local/dockerhub/debian:bookworm"
        );
        assert_eq!(rw("quay.io/a/b"), "quay.io/a/b:latest");
        // A prefix matches whole components only.
        assert_eq!(rw("docker.io/libraryx/b"), "docker.io/libraryx/b:latest");
    }

    #[test]
    fn mirrors_come_first_then_the_registry() {
        let s = RegistrySettings::from_toml(
            r#"
[[mirror]]
prefix = "docker.io"
mirrors = ["127.0.0.1:5001", "mirror.local/hub"]
"#,
        )
        .unwrap();
        let sources: Vec<String> = s
            .pull_sources(&Reference::parse("debian:12").unwrap())
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            sources,
            [
                "127.0.0.1:5001/library/debian:12",
                "mirror.local/hub/library/debian:12",
                "docker.io/library/debian:12"
            ]
        );
        assert_eq!(
            s.pull_sources(&Reference::parse("quay.io/a:1").unwrap())
                .len(),
            1
        );
        let err =
            RegistrySettings::from_toml("[[mirror]]\nprefix='docker.io'\nmirrors=['Bad Host']")
                .unwrap_err();
        assert!(err.contains("Bad Host"), "{err}");
    }

    #[test]
    fn plain_http() {
        let s = settings();
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.4.5.6",
            "[::1]:80",
        ] {
            assert!(s.is_plain_http(r), "{r}");
        }
        assert!(s.is_plain_http("reg.internal:5000"));
        assert!(!s.is_plain_http("reg.internal"));
        assert!(!s.is_plain_http("docker.io"));
    }

    #[test]
    fn bad_config_is_explained() {
        let err = RegistrySettings::from_toml("insecure = 3").unwrap_err();
        assert!(err.contains("insecure"), "{err}");
        let err = RegistrySettings::from_toml("[[rewrite]]\nfrom='a*b'\nto='x.io'").unwrap_err();
        assert!(err.contains("a*b"), "{err}");
        let err = RegistrySettings::from_toml("[[rewrite]]\nfrom='a'\nto='Bad Host'").unwrap_err();
        assert!(err.contains("Bad Host"), "{err}");
    }
}
