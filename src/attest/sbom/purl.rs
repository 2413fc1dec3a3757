//! Package URLs (<https://github.com/package-url/purl-spec>): percent-encoding of the
//! name, namespace and version, and the per-type name rules flense needs.

/// Percent-encodes `text` for a purl name, namespace segment or version: everything
/// but ASCII letters, digits and `.-_~` (and `:` in versions, as purl libraries do).
pub fn encode(text: &str, keep_colon: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'.' | b'-' | b'_' | b'~')
            || (keep_colon && b == b':');
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS` (qualifiers in the given order, which
/// must be sorted by key; empty values left out).
pub fn purl(
    kind: &str,
    namespace: &[&str],
    name: &str,
    version: &str,
    qualifiers: &[(&str, &str)],
) -> String {
    let mut out = format!("pkg:{kind}/");
    for segment in namespace {
        out.push_str(&encode(segment, false));
        out.push('/');
    }
    out.push_str(&encode(name, false));
    if !version.is_empty() {
        out.push('@');
        out.push_str(&encode(version, true));
    }
    let qualifiers: Vec<String> = qualifiers
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v, false)))
        .collect();
    if !qualifiers.is_empty() {
        out.push('?');
        out.push_str(&qualifiers.join("&"));
    }
    out
}

/// The purl of an npm package: lower-cased, a scope as the namespace (`%40scope`).
pub fn npm(name: &str, version: &str) -> String {
    let name = name.to_lowercase();
    match name.split_once('/') {
        Some((scope, bare)) if scope.starts_with('@') => purl("npm", &[scope], bare, version, &[]),
        _ => purl("npm", &[], &name, version, &[]),
    }
}

/// The purl of a Python distribution: the name normalised as PEP 503 does.
pub fn pypi(name: &str, version: &str) -> String {
    let mut normal = String::new();
    let mut last_dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_dash {
                normal.push('-');
            }
            last_dash = true;
        } else {
            normal.extend(c.to_lowercase());
            last_dash = false;
        }
    }
    purl("pypi", &[], &normal, version, &[])
}

/// The purl of a Composer package `vendor/name`.
pub fn composer(name: &str, version: &str) -> String {
    let name = name.to_lowercase();
    match name.split_once('/') {
        Some((vendor, bare)) => purl("composer", &[vendor], bare, version, &[]),
        None => purl("composer", &[], &name, version, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_follow_the_spec_examples() {
        assert_eq!(npm("@babel/core", "7.1.0"), "pkg:npm/%40babel/core@7.1.0");
        assert_eq!(npm("Express", "4.19.2"), "pkg:npm/express@4.19.2");
        assert_eq!(
            pypi("Django_Rest.framework", "3.1"),
            "pkg:pypi/django-rest-framework@3.1"
        );
        assert_eq!(
            composer("laravel/laravel", "5.5.0"),
            "pkg:composer/laravel/laravel@5.5.0"
        );
        assert_eq!(
            purl(
                "deb",
                &["debian"],
                "libc6",
                "2.36-9+deb12u4",
                &[("arch", "amd64"), ("distro", "debian-12")]
            ),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
    }
}
