//! Image references (`[domain/]path[:tag][@digest]`): one parser with the grammar of
//! distribution/reference, used by the store and the registry client alike. Only what
//! a name without a registry host means differs, so that is a parameter
//! ([`NameDefaults`]): the registry client completes `debian` to Docker Hub's
//! `docker.io/library/debian:latest` ([`NameDefaults::DOCKER_HUB`]), the store to its
//! own `localhost/debian:latest` ([`NameDefaults::LOCAL`], podman's convention).

use std::fmt;
use std::str::FromStr;

use oci_spec::image::Digest;

/// The registry that names without a host part refer to (Docker's default).
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// How a reference without a registry host is completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameDefaults {
    /// The registry host of names that give none.
    pub domain: &'static str,
    /// Whether Docker Hub's rules apply: `index.docker.io` means `docker.io`, and a
    /// one-component name there lives under `library/` (`debian` is `library/debian`).
    pub docker_hub: bool,
}

impl NameDefaults {
    /// Docker's normalisation: `debian` is `docker.io/library/debian`.
    pub const DOCKER_HUB: Self = Self {
        domain: DEFAULT_REGISTRY,
        docker_hub: true,
    };
    /// The local store's: `debian` is `localhost/debian`, other names are kept as given.
    pub const LOCAL: Self = Self {
        domain: "localhost",
        docker_hub: false,
    };
}

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ReferenceError {
    /// The reference as typed.
    pub reference: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A fully qualified image reference: registry, repository and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference the way Docker does
    /// ([`NameDefaults::DOCKER_HUB`]). A reference with neither tag nor digest gets the
    /// tag `latest`.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        Self::parse_with(text, &NameDefaults::DOCKER_HUB)
    }

    /// Parses `text`, completing a name without registry host with `defaults`. A
    /// reference with neither tag nor digest gets the tag `latest`.
    pub fn parse_with(text: &str, defaults: &NameDefaults) -> Result<Self, ReferenceError> {
        let bad = |reason: String| ReferenceError {
            reference: text.to_string(),
            reason,
        };
        if text.is_empty() {
            return Err(bad("empty reference".into()));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters".into()));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let digest = Digest::from_str(digest)
                    .map_err(|e| bad(format!("bad digest {digest:?}: {e}")))?;
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
        if let Some(tag) = tag.filter(|t| !valid_tag(t)) {
            return Err(bad(format!(
                "tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
            )));
        }
        let (registry, repository) = split_domain(name).unwrap_or((defaults.domain, name));
        validate_domain(registry).map_err(bad)?;
        let (registry, repository) = if defaults.docker_hub {
            docker_hub_name(registry, repository)
        } else {
            (registry, repository.to_string())
        };
        validate_repository(&repository).map_err(bad)?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(bad("name longer than 255 characters".into()));
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
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        Self::parse(s)
    }
}

/// Whether `text` names its registry host (`quay.io/x`, `localhost:5000/x`) rather than
/// leaving it to the [`NameDefaults`].
pub fn names_registry(text: &str) -> bool {
    split_domain(text).is_some()
}

/// Splits `name` into registry host and repository with Docker's rule: the first
/// component is a host when it contains '.' or ':' or is `localhost` (and is lowercase).
fn split_domain(name: &str) -> Option<(&str, &str)> {
    name.split_once('/').filter(|(first, _)| {
        (first.contains('.') || first.contains(':') || *first == "localhost")
            && first.to_lowercase() == *first
    })
}

/// Docker Hub's aliases: `index.docker.io` is `docker.io`, and one-component names
/// there are official images under `library/`.
fn docker_hub_name<'a>(registry: &'a str, repository: &str) -> (&'a str, String) {
    let registry = if registry == "index.docker.io" {
        DEFAULT_REGISTRY
    } else {
        registry
    };
    if registry == DEFAULT_REGISTRY && !repository.contains('/') {
        (registry, format!("library/{repository}"))
    } else {
        (registry, repository.to_string())
    }
}

/// A registry host: DNS labels (alphanumerics and inner '-') or a bracketed IPv6
/// address, optionally with a port.
fn validate_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if !domain.ends_with(']') => (host, Some(port)),
        _ => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("bad port {port:?} in registry {domain:?}"));
        }
    }
    let ipv6 = host.len() > 2
        && host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1]
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':');
    let dns = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ipv6 || dns {
        Ok(())
    } else {
        Err(format!("bad registry host {domain:?}"))
    }
}

/// Repository components: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, separated by '/'.
fn validate_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("empty repository name".into());
    }
    match repository.split('/').find(|c| !valid_path_component(c)) {
        None => Ok(()),
        Some(component) => Err(format!(
            "repository path component {component:?} must be lowercase letters and digits \
             joined by '.', '_', '__' or '-'"
        )),
    }
}

/// A repository path component: lowercase alphanumerics joined by `.`, `_`, `__` or
/// runs of `-`.
fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Whether `tag` is a valid tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    fn local(s: &str) -> String {
        Reference::parse_with(s, &NameDefaults::LOCAL)
            .unwrap()
            .to_string()
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
    fn local_normalisation_keeps_names_as_given() {
        assert_eq!(local("busybox"), "localhost/busybox:latest");
        assert_eq!(local("wmf/node:20"), "localhost/wmf/node:20");
        assert_eq!(local("docker.io/busybox"), "docker.io/busybox:latest");
        assert_eq!(local(&format!("x@{D}")), format!("localhost/x@{D}"));
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
            "-x",
            "a:",
            "a:-x",
            "host:port/x",
            "host:99999/x",
            "-host.com/x",
            "x@sha256:abc",
            "x y",
            "a..b",
        ] {
            for defaults in [NameDefaults::DOCKER_HUB, NameDefaults::LOCAL] {
                let err = Reference::parse_with(bad, &defaults)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(&format!("{bad:?}")), "{err}");
            }
        }
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
    }

    #[test]
    fn uppercase_registry_is_a_repository() {
        let err = Reference::parse("Host.com/x").unwrap_err().to_string();
        assert!(err.contains("lowercase"), "{err}");
        assert!(!names_registry("Host.com/x"));
        assert!(names_registry("localhost/x"));
        assert!(!names_registry("wmf/node"));
    }
}
