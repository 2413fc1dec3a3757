//! Paths of values in a config (`variants.foo.copies[0].from`): building them, and
//! naming fields the way Blubber's validator does.

/// Joins a path and a key with a dot (no dot at the root).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The last element of a path, as Blubber's validator names fields (`from`,
/// `packages[default][1]`, `includes[2]`).
pub(crate) fn field_of(path: &str) -> String {
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    path[start..].to_string()
}

/// A JSON pointer for a dotted path (for schema-style messages).
pub(crate) fn pointer_of(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut seg = String::new();
    for c in path.chars() {
        match c {
            '[' => {
                if depth == 0 && !seg.is_empty() {
                    out.push('/');
                    out.push_str(&seg);
                    seg.clear();
                }
                depth += 1;
                if depth > 1 {
                    seg.push(c);
                }
            }
            ']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    out.push('/');
                    out.push_str(&seg);
                    seg.clear();
                } else {
                    seg.push(c);
                }
            }
            '.' if depth == 0 => {
                if !seg.is_empty() {
                    out.push('/');
                    out.push_str(&seg);
                    seg.clear();
                }
            }
            _ => seg.push(c),
        }
    }
    if !seg.is_empty() {
        out.push('/');
        out.push_str(&seg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_match_blubber() {
        assert_eq!(field_of("variants.foo.copies[0].from"), "from");
        assert_eq!(field_of("apt.packages[default][1]"), "packages[default][1]");
        assert_eq!(field_of("variants.foo.includes[2]"), "includes[2]");
        assert_eq!(field_of("apt.packages[a.b][0]"), "packages[a.b][0]");
        assert_eq!(
            pointer_of("variants.x.apt.sources[0].url"),
            "/variants/x/apt/sources/0/url"
        );
    }
}
