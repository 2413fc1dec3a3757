//! The value rules of Blubber's validator (`config/validation.go`), with its exact
//! regular expressions.

use std::sync::LazyLock;

use regex::Regex;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static pattern compiles")
}

static VARIANT_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-zA-Z][a-zA-Z0-9\-\.]+[a-zA-Z0-9]$"));
static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z_][a-zA-Z0-9_]+$"));
static NODE_ENV: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9]+$"));
static DEBIAN_PACKAGE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^[a-z0-9][a-z0-9+.\-]+(?:=(?:[0-9]+:)?[0-9]+[a-zA-Z0-9\.\+\-~]*|/[a-zA-Z](?:[a-zA-Z0-9\-]*[a-zA-Z0-9]+)?)?$",
    )
});
// Unanchored upstream (quirk Q14): any value containing a match passes.
static DEBIAN_RELEASE: LazyLock<Regex> =
    LazyLock::new(|| re(r"[a-zA-Z](?:[a-zA-Z0-9\-]*[a-zA-Z0-9]+)?"));
static DEBIAN_COMPONENT: LazyLock<Regex> = LazyLock::new(|| re(r"[a-z0-9][a-z0-9+./\-]+"));
static PY_PKG_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    let op = r"(?:<|<=|!=|==|>=|>|~=)";
    let ver = r"[a-zA-Z0-9\-_\.\*\+!]+";
    re(&format!(r"^{op}{ver}(?:,{op}{ver})*$"))
});
/// `distribution/reference.ReferenceRegexp`.
static IMAGE_REF: LazyLock<Regex> = LazyLock::new(|| {
    let alnum = r"[a-z0-9]+";
    let sep = r"(?:[._]|__|[-]+)";
    let path_component = format!(r"{alnum}(?:{sep}{alnum})*");
    let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
    let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
    let host = format!(r"(?:{domain_name}|{ipv6})");
    let domain = format!(r"{host}(?::[0-9]+)?");
    let name = format!(r"(?:{domain}/)?{path_component}(?:/{path_component})*");
    // Go's `\w` is ASCII-only.
    let tag = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    re(&format!(r"^{name}(?::{tag})?(?:@{digest})?$"))
});

/// A variant name: at least 3 characters, starting with a letter, no `_`.
pub fn is_variant_name(s: &str) -> bool {
    VARIANT_NAME.is_match(s)
}

/// A user name for `lives.as` / `runs.as`: the variant-name pattern, and not `root`.
pub fn is_user_name(s: &str) -> bool {
    VARIANT_NAME.is_match(s) && s != "root"
}

/// An environment variable or build argument name (at least 2 characters).
pub fn is_env_name(s: &str) -> bool {
    ENV_NAME.is_match(s)
}

/// A `node.env` value.
pub fn is_node_env(s: &str) -> bool {
    NODE_ENV.is_match(s)
}

/// `name`, `name=version` or `name/release`.
pub fn is_debian_package(s: &str) -> bool {
    DEBIAN_PACKAGE.is_match(s)
}

/// A release name (unanchored, like upstream).
pub fn is_debian_release(s: &str) -> bool {
    DEBIAN_RELEASE.is_match(s)
}

/// A component name (unanchored, like upstream).
pub fn is_debian_component(s: &str) -> bool {
    DEBIAN_COMPONENT.is_match(s)
}

/// A Poetry version spec (an operator is required).
pub fn is_py_pkg_version(s: &str) -> bool {
    PY_PKG_VERSION.is_match(s)
}

/// An image reference (`name[:tag][@digest]`, lower-case path components).
pub fn is_image_ref(s: &str) -> bool {
    IMAGE_REF.is_match(s)
}

/// An http or https URL (Blubber only checks the scheme of what Go's `url.Parse`
/// accepts).
pub fn is_http_url(s: &str) -> bool {
    match url::Url::parse(s) {
        Ok(u) => matches!(u.scheme(), "http" | "https"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_variant_name("foo"));
        assert!(is_variant_name("a.b-c"));
        assert!(!is_variant_name("go"));
        assert!(!is_variant_name("foo_build"));
        assert!(!is_variant_name("build foo"));
        assert!(!is_user_name("root"));
        assert!(!is_user_name("fo"));
        assert!(is_env_name("CGO_ENABLED"));
        assert!(!is_env_name("A"));
        assert!(!is_env_name("1FOO"));
        assert!(!is_env_name("FOO-BAR"));
        assert!(is_node_env("production"));
        assert!(!is_node_env("foo bar"));
    }

    #[test]
    fn debian() {
        assert!(is_debian_package("libc6-dev"));
        assert!(is_debian_package("python3-venv=3.11.2-1+b1"));
        assert!(is_debian_package("curl=1:7.88.1-10"));
        assert!(is_debian_package("git/bookworm-backports"));
        assert!(!is_debian_package("foo fighter"));
        assert!(!is_debian_package("g"));
        assert!(is_debian_release("bullseye-wikimedia"));
        assert!(is_debian_release("1a"));
        assert!(!is_debian_release("123"));
        assert!(is_debian_component("thirdparty/amd-rocm54"));
        assert!(!is_debian_component("M"));
    }

    #[test]
    fn versions_urls_and_images() {
        assert!(is_py_pkg_version("==1.5.1"));
        assert!(is_py_pkg_version(">=1.0,<2"));
        assert!(!is_py_pkg_version("1.5.1"));
        assert!(is_http_url("https://apt.wikimedia.org/wikimedia"));
        assert!(!is_http_url("bad://proxy.example"));
        assert!(is_image_ref(
            "docker-registry.wikimedia.org/golang1.21:1.21-1-20240609"
        ));
        assert!(is_image_ref("localhost:5000/foo/bar:latest"));
        assert!(is_image_ref("foo"));
        assert!(is_image_ref(
            "debian@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
        assert!(!is_image_ref("foo fighter"));
        assert!(
            !is_image_ref("debian:bookwörm"),
            "tags are ASCII, as Go's \\w"
        );
        assert!(!is_image_ref("Foo"));
        assert!(is_image_ref("Registry.example/bar"));
    }
}
