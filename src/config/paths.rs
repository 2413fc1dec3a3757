//! Slash-path helpers with Go's `path` package semantics (Blubber uses them for
//! validation and requirement normalisation).

/// Go's `path.Clean`: the shortest equivalent path; `""` becomes `"."`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Dir`: everything but the last element, cleaned.
pub fn dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean(&p[..=i]),
        None => ".".to_string(),
    }
}

/// Go's `path.Base`: the last element (`"."` for an empty path).
pub fn base(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return if p.is_empty() { ".".into() } else { "/".into() };
    }
    match trimmed.rfind('/') {
        Some(i) => trimmed[i + 1..].to_string(),
        None => trimmed.to_string(),
    }
}

/// Go's `path.Join`: joins non-empty elements with `/` and cleans the result.
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean(b),
        (false, true) => clean(a),
        (false, false) => clean(&format!("{a}/{b}")),
    }
}

/// Blubber's `abspath` rule: absolute and not `/` after cleaning.
pub fn is_abs_non_root(p: &str) -> bool {
    p.starts_with('/') && clean(p) != "/"
}

/// Blubber's `relativelocal` rule, inverted: absolute, or starting with `..` after
/// cleaning (so a file named `..foo` is refused too, like upstream).
pub fn escapes_context(p: &str) -> bool {
    p.starts_with('/') || clean(p).starts_with("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./", "."),
            ("a/b/", "a/b"),
            ("/foo/..", "/"),
            ("./funny/../../business", "../business"),
            ("/../a", "/a"),
            ("a//b/./c/..", "a/b"),
            ("../../x", "../../x"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
        assert_eq!(dir("docs/requirements.txt"), "docs");
        assert_eq!(dir("package.json"), ".");
        assert_eq!(base("docs/requirements.txt"), "requirements.txt");
        assert!(!is_abs_non_root("/foo/.."));
        assert!(!is_abs_non_root("foo/bar"));
        assert!(is_abs_non_root("/srv/app"));
        assert!(escapes_context("./funny/../../business"));
        assert!(escapes_context("/bad/path"));
        assert!(!escapes_context("a/../b"));
    }
}
