//! YAML 1.1 resolution of plain scalars, as `gopkg.in/yaml.v2` does it.

use super::NodeKind;

/// Resolves a plain (unquoted) scalar the way `gopkg.in/yaml.v2` does.
pub fn resolve_plain(text: &str) -> NodeKind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return NodeKind::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return NodeKind::Bool(false)
        }
        ".nan" | ".NaN" | ".NAN" => return NodeKind::Float(f64::NAN, text.to_string()),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return NodeKind::Float(f64::INFINITY, text.to_string())
        }
        "-.inf" | "-.Inf" | "-.INF" => return NodeKind::Float(f64::NEG_INFINITY, text.to_string()),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return NodeKind::Str(text.to_string());
    }
    let plain = text.replace('_', "");
    if let Some(i) = parse_go_int(&plain) {
        return NodeKind::Int(i);
    }
    if is_yaml11_float(&plain) {
        if let Ok(f) = plain.parse::<f64>() {
            return NodeKind::Float(f, text.to_string());
        }
    }
    NodeKind::Str(text.to_string())
}

/// `strconv.ParseInt(s, 0, 64)`: optional sign, then `0x`/`0o`/`0b` prefixes or a
/// leading `0` for octal.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_string())
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(&body, radix).ok()?;
    let value = if neg { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// yaml.v2's float pattern: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml11_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if int_digits == 0 && i == frac_start {
            return false;
        }
    } else if int_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_scalars_resolve_like_yaml_v2() {
        assert_eq!(resolve_plain("yes"), NodeKind::Bool(true));
        assert_eq!(resolve_plain("Off"), NodeKind::Bool(false));
        assert_eq!(resolve_plain("n"), NodeKind::Bool(false));
        assert_eq!(resolve_plain("0755"), NodeKind::Int(493));
        assert_eq!(resolve_plain("0x1F"), NodeKind::Int(31));
        assert_eq!(resolve_plain("1_000"), NodeKind::Int(1000));
        assert_eq!(resolve_plain("-12"), NodeKind::Int(-12));
        assert!(matches!(resolve_plain("3.9"), NodeKind::Float(f, _) if f == 3.9));
        assert_eq!(resolve_plain("4.11.1"), NodeKind::Str("4.11.1".into()));
        assert_eq!(resolve_plain("~"), NodeKind::Null);
        assert_eq!(resolve_plain("09"), NodeKind::Float(9.0, "09".into()));
        assert_eq!(resolve_plain("python3"), NodeKind::Str("python3".into()));
    }
}
