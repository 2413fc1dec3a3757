//! `.dockerignore` and copy `exclude` patterns with Docker's semantics (moby
//! `patternmatcher`): `*` and `?` stay within one path component, `**` spans any number
//! of components, `!` re-includes, a leading `/` and a trailing `/` are dropped, the last
//! matching pattern wins, and a pattern that matches a parent directory matches
//! everything below it.

use regex::Regex;

/// Errors in patterns.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// `!` with nothing after it.
    #[error("illegal exclusion pattern: \"!\"")]
    LoneBang,
    /// A pattern that cannot be compiled (e.g. an unclosed `[`).
    #[error("bad pattern {pattern:?}: {reason}")]
    Bad {
        /// The pattern as written.
        pattern: String,
        /// Why it is bad.
        reason: String,
    },
}

/// One compiled pattern.
#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    cleaned: String,
    regex: Regex,
}

/// An ordered list of patterns.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
}

/// `path.Clean` for slash-separated paths.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|c| *c != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Compiles one pattern (or one path component of a wildcard source) to an anchored
/// regex, the way moby's patternmatcher does.
pub fn compile(pattern: &str) -> Result<Regex, IgnoreError> {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if in_class {
            match ch {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '\\' => {
                    re.push('\\');
                    if i < chars.len() {
                        re.push(chars[i]);
                        i += 1;
                    }
                }
                '[' => re.push_str("\\["),
                c => re.push(c),
            }
            continue;
        }
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                in_class = true;
                re.push('[');
                if chars.get(i) == Some(&'^') {
                    re.push('^');
                    i += 1;
                }
            }
            '\\' => {
                if i < chars.len() {
                    re.push_str(&regex::escape(&chars[i].to_string()));
                    i += 1;
                } else {
                    re.push_str("\\\\");
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    if in_class {
        return Err(IgnoreError::Bad {
            pattern: pattern.to_string(),
            reason: "unclosed character class".into(),
        });
    }
    re.push('$');
    Regex::new(&re).map_err(|e| IgnoreError::Bad {
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })
}

impl PatternMatcher {
    /// Compiles patterns as written in a copy's `exclude` list.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let (exclusion, body) = match p.strip_prefix('!') {
                Some("") => return Err(IgnoreError::LoneBang),
                Some(rest) => (true, rest),
                None => (false, p),
            };
            let mut cleaned = clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let regex = compile(&cleaned)?;
            out.push(Pattern {
                exclusion,
                cleaned,
                regex,
            });
        }
        Ok(Self { patterns: out })
    }

    /// Parses a `.dockerignore` file: one pattern per line, `#` comments, blank lines
    /// ignored, surrounding whitespace trimmed.
    pub fn from_dockerignore(text: &str) -> Result<Self, IgnoreError> {
        let mut lines = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim().to_string();
            if p.is_empty() {
                continue;
            }
            let invert = p.starts_with('!');
            if invert {
                p = p[1..].trim().to_string();
            }
            if !p.is_empty() {
                p = clean(&p);
                if p.len() > 1 && p.starts_with('/') {
                    p.remove(0);
                }
            }
            lines.push(if invert { format!("!{p}") } else { p });
        }
        Self::new(&lines)
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern starts with `!` (so an excluded directory may still have
    /// included contents).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative, `/`-separated) is excluded: the last pattern matching it
    /// or one of its parent directories decides.
    pub fn matches(&self, path: &str) -> bool {
        let path = clean(path);
        let parent_dirs: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.regex.is_match(&path);
            if !hit {
                for i in 0..parent_dirs.len() {
                    if p.regex.is_match(&parent_dirs[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether some `!` pattern could match a path below the directory `dir`, so an
    /// excluded directory must still be walked.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean(dir);
        let dir_parts: Vec<&str> = dir.split('/').collect();
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            let parts: Vec<&str> = p.cleaned.split('/').collect();
            for (i, d) in dir_parts.iter().enumerate() {
                let Some(pp) = parts.get(i) else {
                    return false; // the pattern is shorter: it matches the dir itself or above
                };
                if pp.contains("**") {
                    return true;
                }
                match compile(pp) {
                    Ok(re) if re.is_match(d) => {}
                    _ => return false,
                }
            }
            parts.len() > dir_parts.len()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str]) -> PatternMatcher {
        PatternMatcher::new(patterns).unwrap()
    }

    #[test]
    fn star_stays_in_one_component() {
        let pm = m(&["*.md"]);
        assert!(pm.matches("README.md"));
        assert!(!pm.matches("docs/README.md"));
        assert!(m(&["*/*.md"]).matches("docs/README.md"));
        assert!(m(&["doc?"]).matches("docs"));
        assert!(!m(&["doc?"]).matches("doc/s"));
    }

    #[test]
    fn double_star_spans_components() {
        let pm = m(&["**/*.log"]);
        assert!(pm.matches("a.log"));
        assert!(pm.matches("x/y/a.log"));
        assert!(m(&["node_modules/**"]).matches("node_modules/x/y"));
        assert!(m(&["**"]).matches("anything/at/all"));
        assert!(m(&["a/**/b"]).matches("a/b"));
        assert!(m(&["a/**/b"]).matches("a/x/y/b"));
    }

    #[test]
    fn parent_directory_match_excludes_children() {
        let pm = m(&["node_modules"]);
        assert!(pm.matches("node_modules"));
        assert!(pm.matches("node_modules/express/index.js"));
        assert!(!pm.matches("src/node_modules_notes.txt"));
    }

    #[test]
    fn exceptions_reinclude_and_last_match_wins() {
        let pm = m(&["*.md", "!README.md"]);
        assert!(pm.matches("CHANGES.md"));
        assert!(!pm.matches("README.md"));
        let pm = m(&["!README.md", "*.md"]);
        assert!(pm.matches("README.md"));
        let pm = m(&["docs", "!docs/keep.txt"]);
        assert!(pm.matches("docs/other.txt"));
        assert!(!pm.matches("docs/keep.txt"));
        assert!(pm.may_include_below("docs"));
        assert!(!pm.may_include_below("src"));
    }

    #[test]
    fn dockerignore_syntax() {
        let pm =
            PatternMatcher::from_dockerignore("# comment\n\n  /build/  \n!build/keep\n./tmp//x\n")
                .unwrap();
        assert!(pm.matches("build/out.o"));
        assert!(!pm.matches("build/keep"));
        assert!(pm.matches("tmp/x"));
        assert!(!pm.matches("# comment"));
    }

    #[test]
    fn character_classes_and_escapes() {
        assert!(m(&["file[0-9].txt"]).matches("file3.txt"));
        assert!(!m(&["file[0-9].txt"]).matches("filex.txt"));
        assert!(m(&["file[^0-9].txt"]).matches("filex.txt"));
        assert!(m(&["a\\*b"]).matches("a*b"));
        assert!(!m(&["a\\*b"]).matches("axb"));
        assert!(m(&["a.b"]).matches("a.b") && !m(&["a.b"]).matches("axb"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(matches!(
            PatternMatcher::new(&["!"]),
            Err(IgnoreError::LoneBang)
        ));
        assert!(PatternMatcher::new(&["[abc"]).is_err());
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("../a"), "../a");
    }
}
