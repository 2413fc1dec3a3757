//! A small local parser for image references, normalised to the full string form the
//! store keys tags by: `[domain/]path[:tag]` with `localhost/` added when no domain is
//! given and `:latest` when neither tag nor digest is given (`busybox` ->
//! `localhost/busybox:latest`, `localhost:5000/x/y:tag` unchanged). A bare
//! `sha256:<hex>` or `@sha256:<hex>` names a manifest by digest.
//!
//! The same form is what skopeo (`oci:<store>:<ref>`) and umoci (`--image <store>:<ref>`)
//! match against the `org.opencontainers.image.ref.name` annotation, so both work on
//! the store with the names `flense images` prints.

use crate::image::digest::sha256_hex;

/// A reference the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRef {
    /// A named image: the full normalised form, e.g. `localhost/busybox:latest`
    /// (or `name@sha256:...` when pinned by digest).
    Named(String),
    /// A manifest digest, `sha256:<hex>`.
    Digest(String),
}

/// Why a reference was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ReferenceError {
    /// The reference as typed.
    pub reference: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses and normalises `input`.
pub fn parse_reference(input: &str) -> Result<LocalRef, ReferenceError> {
    let err = |reason| ReferenceError {
        reference: input.to_owned(),
        reason,
    };
    let bare = input.strip_prefix('@').unwrap_or(input);
    if bare.starts_with("sha256:") {
        return sha256_hex(bare)
            .map(|_| LocalRef::Digest(bare.to_owned()))
            .ok_or(err("malformed sha256 digest"));
    }
    let (name_tag, digest) = match input.split_once('@') {
        Some((n, d)) => {
            sha256_hex(d).ok_or(err("malformed sha256 digest"))?;
            (n, Some(d))
        }
        None => (input, None),
    };
    // A tag is what follows the last ':' when no '/' follows it (else it is a port).
    let (name, tag) = match name_tag.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (name_tag, None),
    };
    if name.is_empty() {
        return Err(err("empty name"));
    }
    let first = name.split('/').next().unwrap_or("");
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let (domain, path) = if has_domain {
        name.split_once('/').expect("has '/'")
    } else {
        ("localhost", name)
    };
    if !valid_domain(domain) {
        return Err(err("invalid registry host"));
    }
    if !path.split('/').all(valid_path_component) {
        return Err(err(
            "name components must be lowercase letters, digits and separators (. _ __ -)",
        ));
    }
    if let Some(tag) = tag {
        if !valid_tag(tag) {
            return Err(err("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(LocalRef::Named(out))
}

/// The full names a reference may mean, most preferred first. A name without a registry
/// host means a local image (`localhost/<name>`) first, then Docker Hub's
/// (`docker.io/library/<name>` or `docker.io/<org>/<name>`, the form `flense pull`
/// stores), like podman's short-name lookup.
pub fn candidate_names(input: &str) -> Result<Vec<String>, ReferenceError> {
    let LocalRef::Named(full) = parse_reference(input)? else {
        return Ok(Vec::new());
    };
    let first = input.split('/').next().unwrap_or("");
    let gave_domain =
        input.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if gave_domain {
        return Ok(vec![full]);
    }
    let path = full
        .strip_prefix("localhost/")
        .expect("short names get localhost/");
    let repository = path.split(['@', ':']).next().unwrap_or(path);
    let hub = if repository.contains('/') {
        format!("docker.io/{path}")
    } else {
        format!("docker.io/library/{path}")
    };
    Ok(vec![full.clone(), hub])
}

/// Parses a reference that must name an image (not a bare digest), e.g. a tag target.
pub fn parse_name(input: &str) -> Result<String, ReferenceError> {
    match parse_reference(input)? {
        LocalRef::Named(n) if !n.contains('@') => Ok(n),
        _ => Err(ReferenceError {
            reference: input.to_owned(),
            reason: "a name with an optional tag is needed here",
        }),
    }
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A repository path component: lowercase alphanumerics joined by `.`, `_`, `__` or
/// runs of `-`.
pub(crate) fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // Separators between alphanumerics: '.', '_', '__', or one or more '-'.
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

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> bool {
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
            LocalRef::Digest(d)
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
