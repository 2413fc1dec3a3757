//! The `${...}` lexer: literals and variables with an optional `|default`.

use super::error::{PipelineError, Result};

/// One piece of an interpolated string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Text copied as is.
    Literal(String),
    /// `${name}` or `${name|default}`.
    Variable {
        /// `[A-Za-z0-9._-]+`.
        name: String,
        /// Text after the first `|`, up to the first `}`.
        default: Option<String>,
        /// The source text of the whole expression (`${...}`).
        source: String,
    },
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
}

/// Splits `input` into literals and variables; a `${` that does not start a valid
/// variable is an [`PipelineError::InvalidVariable`] error.
pub fn lex(input: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        literal.push_str(&rest[..start]);
        let expr = &rest[start..];
        let body = &expr[2..];
        let name_len = body
            .char_indices()
            .find(|(_, c)| !is_name_char(*c))
            .map(|(i, _)| i)
            .unwrap_or(body.len());
        let invalid = || PipelineError::InvalidVariable(expr.to_string());
        if name_len == 0 {
            return Err(invalid());
        }
        let name = &body[..name_len];
        let after = &body[name_len..];
        let (default, consumed) = match after.chars().next() {
            Some('}') => (None, name_len + 1),
            Some('|') => {
                let close = after.find('}').ok_or_else(invalid)?;
                (Some(after[1..close].to_string()), name_len + close + 1)
            }
            _ => return Err(invalid()),
        };
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(&mut literal)));
        }
        tokens.push(Token::Variable {
            name: name.to_string(),
            default,
            source: expr[..2 + consumed].to_string(),
        });
        rest = &body[consumed..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, default: Option<&str>, source: &str) -> Token {
        Token::Variable {
            name: name.into(),
            default: default.map(Into::into),
            source: source.into(),
        }
    }

    #[test]
    fn variable_and_default_lengths() {
        let t = lex("${foo.bar} extra").unwrap();
        assert_eq!(t[0], var("foo.bar", None, "${foo.bar}"));
        assert_eq!(t[1], Token::Literal(" extra".into()));
        let t = lex("${foo.bar|hi} extra").unwrap();
        assert_eq!(t[0], var("foo.bar", Some("hi"), "${foo.bar|hi}"));
        assert_eq!("${foo.bar|hi}".len(), 13);
    }

    #[test]
    fn plain_string_is_one_literal() {
        assert_eq!(
            lex("a\nb $x").unwrap(),
            vec![Token::Literal("a\nb $x".into())]
        );
    }

    #[test]
    fn five_tokens() {
        let t = lex("A string with ${a.variable} and another ${.variable|some default}.").unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(
            t[3],
            var(
                ".variable",
                Some("some default"),
                "${.variable|some default}"
            )
        );
        assert_eq!(t[4], Token::Literal(".".into()));
        assert_eq!(
            lex("${.stage}").unwrap(),
            vec![var(".stage", None, "${.stage}")]
        );
    }

    #[test]
    fn invalid_forms() {
        for bad in [
            "${not.a.variable",
            "${invalid.variable&name}",
            "${}",
            "${FOO:-x}",
            "${ foo}",
        ] {
            let err = lex(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid variable expression ("),
                "{bad}: {err}"
            );
        }
    }
}
