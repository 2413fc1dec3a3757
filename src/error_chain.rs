//! Rendering an error with its causes on one line, for the places that log or store an
//! error as text instead of returning it (the CLI returns errors and lets `main` print
//! the chain with anyhow's `{:#}`, which reads the same).
//!
//! Error types of this crate keep their cause out of their own message and chain it as
//! `source()`, so `ErrorChain(&e)` prints each cause once: `context: cause: deeper cause`.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, separated by `": "`.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}")]
    struct Outer {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_once_in_order() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let outer = Outer {
            path: "/x",
            source: inner,
        };
        assert_eq!(ErrorChain(&outer).to_string(), "reading /x: gone");
    }
}
