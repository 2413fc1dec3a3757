//! Where a shared build cache lives: `oci:DIR[:TAG]`, an OCI image layout directory
//! (that can be carried into an air-gapped build farm), or `HOST[:PORT]/REPO[:TAG]`, a
//! repository of a registry. Without a tag the cache is [`DEFAULT_CACHE_TAG`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::reference::{valid_tag, Reference, ReferenceError};

/// The tag of a cache reference that gives none.
pub const DEFAULT_CACHE_TAG: &str = "buildcache";

/// A cache location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRef {
    /// A registry repository and tag (Docker's name normalisation applies).
    Registry(Reference),
    /// An OCI image layout directory and the tag (`org.opencontainers.image.ref.name`)
    /// of the cache manifest in it.
    OciDir {
        /// The layout directory.
        dir: PathBuf,
        /// The tag.
        tag: String,
    },
}

impl CacheRef {
    /// Parses `oci:DIR[:TAG]` or a registry reference (which must not pin a digest: a
    /// cache tag moves with every export).
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let bad = |reason: &str| ReferenceError {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, tag) = match rest.split_once(':') {
                Some((dir, tag)) => (dir, tag),
                None => (rest, DEFAULT_CACHE_TAG),
            };
            if dir.is_empty() {
                return Err(bad("oci: needs a directory"));
            }
            if !valid_tag(tag) {
                return Err(bad("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
            }
            return Ok(Self::OciDir {
                dir: PathBuf::from(dir),
                tag: tag.to_string(),
            });
        }
        let reference = Reference::parse(text)?;
        if reference.digest().is_some() {
            return Err(bad("a cache reference names a tag, not a digest"));
        }
        // The parser's rule: a tag follows a ':' in the last path component.
        let last = text.rsplit_once('/').map_or(text, |(_, last)| last);
        if last.contains(':') {
            return Ok(Self::Registry(reference));
        }
        Ok(Self::Registry(Reference::parse(&format!(
            "{text}:{DEFAULT_CACHE_TAG}"
        ))?))
    }
}

impl FromStr for CacheRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        Self::parse(s)
    }
}

impl fmt::Display for CacheRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Registry(reference) => write!(f, "{reference}"),
            Self::OciDir { dir, tag } => write!(f, "oci:{}:{tag}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> String {
        CacheRef::parse(text).unwrap().to_string()
    }

    #[test]
    fn registry_refs_get_the_cache_tag() {
        assert_eq!(
            parsed("127.0.0.1:5000/team/cache"),
            "127.0.0.1:5000/team/cache:buildcache"
        );
        assert_eq!(
            parsed("127.0.0.1:5000/team/cache:main"),
            "127.0.0.1:5000/team/cache:main"
        );
        assert_eq!(
            parsed("registry.example/cache:latest"),
            "registry.example/cache:latest"
        );
    }

    #[test]
    fn oci_dirs() {
        assert_eq!(
            CacheRef::parse("oci:/srv/cache").unwrap(),
            CacheRef::OciDir {
                dir: "/srv/cache".into(),
                tag: "buildcache".into()
            }
        );
        assert_eq!(parsed("oci:rel/dir:v2"), "oci:rel/dir:v2");
    }

    #[test]
    fn refusals_name_the_reference() {
        let digest = format!("reg.example/c@{}", crate::image::digest::sha256_digest(b""));
        for bad in [
            "oci:",
            "oci:/x:bad tag",
            "oci:/x:-x",
            "Reg/x",
            digest.as_str(),
        ] {
            let err = CacheRef::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
