//! Blubber's own variable expansion (§5.9): Go's `os.Expand` over the build-state env.

/// What to do with a variable that the lookup does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// Replace it with the empty string, as Blubber does.
    Empty,
    /// Keep the reference verbatim (`$NAME`/`${NAME}`), because the value (a base image
    /// variable) is not known yet and the executor expands it later.
    Keep,
}

/// Expands `$NAME` and `${NAME}` in `s` exactly like Go's `os.Expand`: names are ASCII
/// alphanumerics and `_`; `$` followed by one of `*#$@!?-0123456789` is a one-character
/// special name; `$` followed by anything else (e.g. `$(`) is kept; a bad `${` or `${}`
/// is eaten. `lookup` returns `None` for unknown names, handled per `unknown`.
pub fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>, unknown: Unknown) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&s[i..j]);
            let (name, width) = shell_name(&s[j + 1..]);
            match name {
                None if width > 0 => {} // invalid syntax: eat the characters
                None => out.push('$'),
                Some(name) => match lookup(name) {
                    Some(value) => out.push_str(&value),
                    None if unknown == Unknown::Keep => out.push_str(&s[j..j + 1 + width]),
                    None => {}
                },
            }
            j += width;
            i = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[i.min(s.len())..]);
    out
}

fn is_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

fn is_alnum(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// Go's `getShellName`: the name after a `$` (or `None`) and how many bytes it used.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && is_special(b[1]) && b[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        for k in 1..b.len() {
            if b[k] == b'}' {
                if k == 1 {
                    return (None, 2);
                }
                return (Some(&s[1..k]), k + 1);
            }
        }
        return (None, 1);
    }
    if is_special(b[0]) {
        return (Some(&s[0..1]), 1);
    }
    let mut k = 0;
    while k < b.len() && is_alnum(b[k]) {
        k += 1;
    }
    if k == 0 {
        (None, 0)
    } else {
        (Some(&s[..k]), k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("/a".into()),
            "MAKE_TARGET" => Some("bar".into()),
            "HOME" => Some("/home/somebody".into()),
            _ => None,
        }
    }

    fn x(s: &str) -> String {
        expand(s, env, Unknown::Empty)
    }

    #[test]
    fn expands_like_go_os_expand() {
        assert_eq!(x("make ${MAKE_TARGET}"), "make bar");
        assert_eq!(x("$A/b"), "/a/b");
        assert_eq!(
            x("for t in a b; do echo hello $t; done"),
            "for t in a b; do echo hello ; done"
        );
        assert_eq!(
            x("echo \"$HOME\" \"hello\""),
            "echo \"/home/somebody\" \"hello\""
        );
        assert_eq!(x("go build $(go list)"), "go build $(go list)");
        assert_eq!(x("a $$ b $1 c"), "a  b  c");
        assert_eq!(x("cost: 5$"), "cost: 5$");
        assert_eq!(x("${} x"), " x");
        assert_eq!(x("${A"), "A");
        assert_eq!(x("${A}${A}"), "/a/a");
        assert_eq!(x("no vars"), "no vars");
        assert_eq!(x("ü$A€"), "ü/a€");
    }

    #[test]
    fn keeps_unknown_references_when_asked() {
        let k = |s| expand(s, env, Unknown::Keep);
        assert_eq!(k("/opt/lib/venv/bin:$PATH"), "/opt/lib/venv/bin:$PATH");
        assert_eq!(k("${GOPATH}/pkg and $A"), "${GOPATH}/pkg and /a");
    }
}
