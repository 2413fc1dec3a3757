//! Warnings about valid configs that probably do not do what their author meant
//! (Blubber quirks Q1 and Q25): they never fail validation.

use std::fmt;

use super::error::Pos;
use super::model::*;
use super::rules;

/// A warning about a valid config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file name as given by the caller.
    pub file: String,
    /// Where the value is, when known.
    pub pos: Option<Pos>,
    /// The variant concerned.
    pub variant: String,
    /// What looks wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(pos) = self.pos {
            write!(f, ":{pos}")?;
        }
        write!(
            f,
            ": warning: variant \"{}\": {}",
            self.variant, self.message
        )
    }
}

/// Levenshtein distance, for "did you mean" hints on short names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

impl Config {
    /// Warnings for every variant that expands without errors: a scratch variant (that
    /// no other variant includes) whose own config (or its includes') sets keys that
    /// Blubber ignores without a base (Q1), and a `from` that is not a variant but
    /// looks like a misspelt one, so it would be pulled as an image (Q25).
    pub fn warnings(&self) -> Vec<Warning> {
        let mut out = Vec::new();
        for name in self.variant_names() {
            let Ok(v) = self.expand(name) else {
                continue;
            };
            let warn = |path: String, message: String| Warning {
                file: self.file_name.clone(),
                pos: self.positions.get(&path).copied(),
                variant: name.to_string(),
                message,
            };
            // Variants that others include are often base-less mixins, not targets.
            let included = self
                .variants
                .iter()
                .any(|o| o.includes.iter().any(|i| i == name));
            if v.is_scratch() && !included {
                // Only what the variant itself (or what it includes) sets: top-level
                // settings meant for the other variants are not this variant's mistake.
                let mut own = CommonConfig::default();
                for inc in v.includes.iter().map(String::as_str).chain([name]) {
                    if let Some(raw) = self.variant(inc) {
                        own.merge(&raw.common);
                    }
                }
                let ignored = ignored_on_scratch(&own);
                if !ignored.is_empty() {
                    out.push(warn(
                        format!("variants.{name}#key"),
                        format!(
                            "it has no base image, so {} {} ignored (only copies and entrypoint apply)",
                            ignored.join(", "),
                            if ignored.len() == 1 { "is" } else { "are" }
                        ),
                    ));
                }
            }
            for from in super::expand::stage_references(&v) {
                if self.variant(&from).is_some() || from.contains(['/', ':', '@', '.']) {
                    continue;
                }
                let close = self
                    .variant_names()
                    .into_iter()
                    .filter(|n| distance(n, &from) <= 2 && rules::is_variant_name(n))
                    .min_by_key(|n| distance(n, &from));
                if let Some(close) = close {
                    out.push(warn(
                        format!("variants.{name}#key"),
                        format!(
                            "\"{from}\" is not a variant, so it will be pulled as an image; did you mean \"{close}\"?"
                        ),
                    ));
                }
            }
        }
        out
    }
}

/// The keys of a scratch variant that Blubber ignores (quirk Q1).
fn ignored_on_scratch(c: &CommonConfig) -> Vec<&'static str> {
    let unset = CommonConfig::default();
    let mut ignored = Vec::new();
    if !c.arguments.is_empty() {
        ignored.push("arguments");
    }
    if !c.apt.is_empty() {
        ignored.push("apt");
    }
    if c.builder.as_ref().is_some_and(|b| !b.is_empty()) || !c.builders.is_empty() {
        ignored.push("builders");
    }
    if !c.node.is_empty() || !c.php.is_empty() || !c.python.is_empty() {
        ignored.push("node/php/python");
    }
    if c.lives != unset.lives {
        ignored.push("lives");
    }
    if c.runs != unset.runs {
        ignored.push("runs");
    }
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance() {
        assert_eq!(distance("build", "biuld"), 2);
        assert_eq!(distance("build", "buid"), 1);
        assert_eq!(distance("build", "build"), 0);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn scratch_and_typo_warnings() {
        let cfg = crate::config::load_str(
            "version: v4\nvariants:\n  build:\n    base: debian\n  tiny:\n    apt: { packages: [curl] }\n    copies: [biuld]\n",
            "x.yaml",
        )
        .unwrap();
        let warnings: Vec<String> = cfg.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "x.yaml:5:3: warning: variant \"tiny\": it has no base image, so apt is ignored (only copies and entrypoint apply)",
                "x.yaml:5:3: warning: variant \"tiny\": \"biuld\" is not a variant, so it will be pulled as an image; did you mean \"build\"?",
            ]
        );
    }
}
