//! The store's reading of image references (parsed by [`crate::image::reference`]),
//! normalised to the full string form the store keys tags by: `[domain/]path[:tag]`
//! with `localhost/` added when no domain is given and `:latest` when neither tag nor
//! digest is given (`busybox` -> `localhost/busybox:latest`, `localhost:5000/x/y:tag`
//! unchanged). A bare `sha256:<hex>` or `@sha256:<hex>` names a manifest by digest.
//!
//! The same form is what skopeo (`oci:<store>:<ref>`) and umoci (`--image <store>:<ref>`)
//! match against the `org.opencontainers.image.ref.name` annotation, so both work on
//! the store with the names `flense images` prints.

use crate::image::digest::{parse_sha256, AsDigest, Digest};
use crate::image::reference::{names_registry, NameDefaults, Reference, ReferenceError};

/// A reference the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRef {
    /// A named image: the full normalised form, e.g. `localhost/busybox:latest`
    /// (or `name@sha256:...` when pinned by digest).
    Named(String),
    /// A manifest digest, `sha256:<hex>`.
    Digest(Digest),
}

fn refused(input: &str, reason: &str) -> ReferenceError {
    ReferenceError {
        reference: input.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Parses and normalises `input` with the store's defaults ([`NameDefaults::LOCAL`]).
pub fn parse_reference(input: &str) -> Result<LocalRef, ReferenceError> {
    let bare = input.strip_prefix('@').unwrap_or(input);
    if bare.starts_with("sha256:") {
        return parse_sha256(bare)
            .map(LocalRef::Digest)
            .ok_or_else(|| refused(input, "malformed sha256 digest"));
    }
    let reference = Reference::parse_with(input, &NameDefaults::LOCAL)?;
    if reference.digest().is_some_and(|d| d.sha256_hex().is_none()) {
        return Err(refused(input, "the store holds sha256 digests only"));
    }
    Ok(LocalRef::Named(reference.to_string()))
}

/// The full names a reference may mean, most preferred first. A name without a registry
/// host means a local image (`localhost/<name>`) first, then Docker Hub's
/// (`docker.io/library/<name>` or `docker.io/<org>/<name>`, the form `flense pull`
/// stores), like podman's short-name lookup.
pub fn candidate_names(input: &str) -> Result<Vec<String>, ReferenceError> {
    let LocalRef::Named(full) = parse_reference(input)? else {
        return Ok(Vec::new());
    };
    if names_registry(input) {
        return Ok(vec![full]);
    }
    let hub = Reference::parse_with(input, &NameDefaults::DOCKER_HUB)?;
    Ok(vec![full, hub.to_string()])
}

/// Parses a reference that must name an image (not a bare digest), e.g. a tag target.
pub fn parse_name(input: &str) -> Result<String, ReferenceError> {
    match parse_reference(input)? {
        LocalRef::Named(n) if !n.contains('@') => Ok(n),
        _ => Err(refused(input, "a name with an optional tag is needed here")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(s: &str) -> String {
        match parse_reference(s).unwrap() {
            LocalRef::Named(n) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_names_get_localhost_and_latest() {
        assert_eq!(named("busybox"), "localhost/busybox:latest");
        assert_eq!(named("busybox:1.36"), "localhost/busybox:1.36");
        assert_eq!(named("wmf/node"), "localhost/wmf/node:latest");
        assert_eq!(named("localhost:5000/x/y:tag"), "localhost:5000/x/y:tag");
        assert_eq!(
            named("docker-registry.wikimedia.org/nodejs20-slim"),
            "docker-registry.wikimedia.org/nodejs20-slim:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(named(&format!("x@{d}")), format!("localhost/x@{d}"));
        assert_eq!(
            parse_reference(&format!("@{d}")).unwrap(),
            LocalRef::Digest(d.parse().unwrap())
        );
    }

    #[test]
    fn short_names_also_mean_docker_hub_images() {
        assert_eq!(
            candidate_names("busybox").unwrap(),
            vec![
                "localhost/busybox:latest",
                "docker.io/library/busybox:latest"
            ]
        );
        assert_eq!(
            candidate_names("wmf/node:20").unwrap(),
            vec!["localhost/wmf/node:20", "docker.io/wmf/node:20"]
        );
        assert_eq!(
            candidate_names("localhost:5000/x:y").unwrap(),
            vec!["localhost:5000/x:y"]
        );
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "x:bad tag",
            "x@sha256:123",
            "-x",
            "a..b",
            "host:port/x",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad:?} accepted");
        }
    }
}
