//! Go's `strconv.Quote`, which Blubber uses for shell arguments and Dockerfile strings.

/// Quotes `s` the way Go's `strconv.Quote` does: `"..."` with `\"` and `\\` escaped,
/// `\a \b \f \n \r \t \v` for those control characters, `\xNN` for other ASCII control
/// bytes and `\uNNNN`/`\UNNNNNNNN` for non-printable Unicode. Printable Unicode is kept.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_non_printable(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Non-printable by Go's `strconv.IsPrint`, approximated without Unicode tables: control
/// characters, space separators other than the ASCII space, the common format
/// characters (category Cf) and the private-use area. Unassigned code points are kept.
fn is_non_printable(c: char) -> bool {
    const RANGES: [(char, char); 12] = [
        ('\u{00a0}', '\u{00a0}'),
        ('\u{00ad}', '\u{00ad}'),
        ('\u{0600}', '\u{0605}'),
        ('\u{061c}', '\u{061c}'),
        ('\u{1680}', '\u{1680}'),
        ('\u{180e}', '\u{180e}'),
        ('\u{2000}', '\u{200f}'),
        ('\u{2028}', '\u{202f}'),
        ('\u{205f}', '\u{206f}'),
        ('\u{3000}', '\u{3000}'),
        ('\u{e000}', '\u{f8ff}'),
        ('\u{fff9}', '\u{fffb}'),
    ];
    c.is_control()
        || c == '\u{feff}'
        || ('\u{e0000}'..='\u{e007f}').contains(&c)
        || RANGES.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
}

/// A shell line in Blubber's `build.Run` form: `command` followed by each argument
/// Go-quoted, separated by single spaces (`npm install "--only=production"`).
///
/// Unlike Blubber, `command` is never used as a format string (quirk Q6): the internal
/// templates that need arguments in the middle build their text themselves.
pub fn shell_line(command: &str, args: &[String]) -> String {
    let mut line = command.to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&go_quote(arg));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("abc"), r#""abc""#);
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("a\nb\tc\u{1}"), r#""a\nb\tc\x01""#);
        assert_eq!(go_quote("héllo ünïcode"), "\"héllo ünïcode\"");
        assert_eq!(go_quote(""), r#""""#);
        assert_eq!(go_quote("\u{7f}"), r#""\x7f""#);
        assert_eq!(go_quote("\u{200b}"), r#""\u200b""#);
        assert_eq!(
            go_quote("a\u{a0}b\u{3000}\u{feff}"),
            r#""a\u00a0b\u3000\ufeff""#
        );
    }

    #[test]
    fn shell_line_quotes_each_argument() {
        assert_eq!(
            shell_line("make", &["build".into(), "a b".into()]),
            r#"make "build" "a b""#
        );
        assert_eq!(shell_line("date +%Y", &[]), "date +%Y");
    }
}
