//! Image references with Docker's normalisation: `debian` is
//! `docker.io/library/debian:latest`, `host:port/repo:tag`, `repo@sha256:...`.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::Digest;

use super::error::{RegistryError, Result};
use crate::store::reference::{valid_path_component, valid_tag};

/// The registry that names without a host part refer to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// A fully qualified image reference: registry, repository and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference the way Docker does. A reference with neither
    /// tag nor digest gets the tag `latest`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: &str| RegistryError::InvalidReference {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(bad("empty reference"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let digest = Digest::from_str(digest)
                    .map_err(|e| bad(&format!("bad digest {digest:?}: {e}")))?;
                (rest, Some(digest))
            }
            None => (text, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| bad(&reason))?;
        }
        let (registry, repository) = split_registry(name);
        validate_registry(registry).map_err(|reason| bad(&reason))?;
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        validate_repository(&repository).map_err(|reason| bad(&reason))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(bad("name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Self {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// Registry host (with port when given), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Repository path inside the registry, e.g. `library/debian`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the manifests endpoint for: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The same reference in another registry and repository (tag and digest kept).
    pub fn with_name(&self, registry: &str, repository: &str) -> Self {
        Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }

    /// The same name with the given digest instead of tag and digest.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Splits `name` into registry and repository using Docker's rule: the first component is
/// a registry when it contains '.' or ':' or is `localhost` (and is lowercase).
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if (first.contains('.') || first.contains(':') || first == "localhost")
                && first.to_lowercase() == first =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) if !registry.ends_with(']') => (host, Some(port)),
        _ => (registry, None),
    };
    if let Some(port) = port {
        if port.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("bad port {port:?} in registry {registry:?}"));
        }
    }
    let ipv6 = host.starts_with('[') && host.ends_with(']');
    let ok = !host.is_empty()
        && (ipv6
            || host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }));
    if ok {
        Ok(())
    } else {
        Err(format!("bad registry host {registry:?}"))
    }
}

/// Repository components: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, separated by '/'.
fn validate_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("empty repository name".into());
    }
    for component in repository.split('/') {
        if !valid_path_component(component) {
            if component.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(format!("repository {repository:?} must be lowercase"));
            }
            return Err(format!("bad repository path component {component:?}"));
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    if valid_tag(tag) {
        Ok(())
    } else {
        Err(format!("bad tag {tag:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(full("debian"), "docker.io/library/debian:latest");
        assert_eq!(full("debian:bookworm"), "docker.io/library/debian:bookworm");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            full("index.docker.io/debian"),
            "docker.io/library/debian:latest"
        );
        assert_eq!(full("localhost/x"), "localhost/x:latest");
        assert_eq!(full("localhost:5000/a/b:1.0"), "localhost:5000/a/b:1.0");
        assert_eq!(
            full("127.0.0.1:5000/nodejs"),
            "127.0.0.1:5000/nodejs:latest"
        );
        assert_eq!(
            full("docker-registry.wikimedia.org/nodejs20-devel:0.1"),
            "docker-registry.wikimedia.org/nodejs20-devel:0.1"
        );
        assert_eq!(full("[::1]:5000/x:y"), "[::1]:5000/x:y");
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("debian@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/debian@{D}"));
        let r = Reference::parse(&format!("host:1/a:t@{D}")).unwrap();
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.manifest_reference(), D, "digest wins over tag");
    }

    #[test]
    fn errors_name_the_reference() {
        for bad in [
            "",
            "Debian",
            "a//b",
            "a/-b",
            "a:",
            "a:-x",
            "host:port/x",
            "x@sha256:abc",
            "x y",
            "a..b",
        ] {
            let err = Reference::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
    }

    #[test]
    fn uppercase_registry_is_a_repository() {
        let err = Reference::parse("Host.com/x").unwrap_err().to_string();
        assert!(err.contains("lowercase"), "{err}");
    }
}
