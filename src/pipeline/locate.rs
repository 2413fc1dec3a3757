//! Best-effort mapping of a document path (`pipelines.test.stages[0].run`) to a
//! line and column of block-style YAML, for error messages. Flow style and aliases
//! are not followed; then no position is given.

/// Splits `a.b[0].c` into segments; keys may contain dots only if nothing matches.
fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Segment::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                if let Ok(n) = rest[1..end].parse() {
                    out.push(Segment::Index(n));
                }
                rest = &rest[end + 1..];
            }
        } else if !rest.is_empty() {
            out.push(Segment::Key(rest.to_string()));
        }
    }
    out
}

enum Segment {
    Key(String),
    Index(usize),
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// (line, column), 1-based, of the node at `path`, or of its nearest ancestor that can be
/// found (flow-style collections are not entered).
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    Locator::new(text).locate(path)
}

/// A text split into lines once, for locating many nodes in it (each [`locate`] call
/// splits the text again).
pub struct Locator<'a> {
    lines: Vec<&'a str>,
    /// The items of each sequence looked into, by (first line, parent column): many
    /// errors about items of one long sequence must not scan it once each.
    sequences: std::cell::RefCell<SequenceItems>,
}

/// Item positions (line, content column) of sequences, by (first line, parent column).
type SequenceItems = std::collections::HashMap<(usize, Option<usize>), Vec<(usize, usize)>>;

impl<'a> Locator<'a> {
    /// The lines of `text`.
    pub fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().collect(),
            sequences: Default::default(),
        }
    }

    /// `message` prefixed with `file:line:col:` of the node at `doc_path` (see
    /// [`locate`]), or with `file:` alone when no ancestor of the node can be found.
    pub fn at_node(&self, file: &std::path::Path, doc_path: &str, message: &str) -> String {
        match self.locate(doc_path) {
            Some((line, col)) => format!("{}:{line}:{col}: {message}", file.display()),
            None => format!("{}: {message}", file.display()),
        }
    }

    /// See [`locate`].
    pub fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let lines = &self.lines;
        // The current node: its line and the column where its content starts.
        let mut line = 0usize;
        let mut min_col = 0usize;
        let mut found: Option<(usize, usize)> = None;
        let mut first = true;
        for seg in segments(path) {
            let start = if first { 0 } else { line + 1 };
            let parent_col = if first { None } else { Some(min_col) };
            first = false;
            let mut hit = None;
            match seg {
                Segment::Key(key) => {
                    let pats = [
                        format!("{key}:"),
                        format!("'{key}':"),
                        format!("\"{key}\":"),
                    ];
                    for (i, l) in lines.iter().enumerate().skip(start) {
                        let t = l.trim_start();
                        if t.is_empty() || t.starts_with('#') {
                            continue;
                        }
                        let col = indent(l);
                        let t2 = t.strip_prefix("- ").unwrap_or(t);
                        let col2 = col + (t.len() - t2.len());
                        if let Some(pc) = parent_col {
                            if col < pc && i > start {
                                break;
                            }
                        }
                        if pats.iter().any(|p| t2.starts_with(p.as_str()))
                            && parent_col.is_none_or(|pc| col2 >= pc)
                        {
                            hit = Some((i, col2));
                            break;
                        }
                    }
                }
                Segment::Index(n) => {
                    let mut sequences = self.sequences.borrow_mut();
                    let items = sequences
                        .entry((start, parent_col))
                        .or_insert_with(|| sequence_items(lines, start, parent_col));
                    hit = items.get(n).copied();
                }
            }
            // Not found (flow style, aliases): the nearest located ancestor contains it.
            let Some((l, c)) = hit else {
                return found;
            };
            line = l;
            min_col = c;
            found = Some((l + 1, c + 1));
        }
        found
    }
}

/// The items (line, content column) of the block sequence that starts at or after line
/// `start`, inside a parent whose content starts at `parent_col`.
fn sequence_items(lines: &[&str], start: usize, parent_col: Option<usize>) -> Vec<(usize, usize)> {
    let mut items = Vec::new();
    let mut item_col = None;
    for (i, l) in lines.iter().enumerate().skip(start) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let col = indent(l);
        if parent_col.is_some_and(|pc| col < pc) {
            break;
        }
        if t.starts_with("- ") || t == "-" {
            if item_col.is_none() {
                item_col = Some(col);
            }
            if Some(col) == item_col {
                items.push((i, col + 2));
            }
        } else if item_col.is_some_and(|ic| col <= ic) {
            break;
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::locate;

    #[test]
    fn finds_block_positions() {
        let text =
            "pipelines:\n  test:\n    stages:\n      - name: a\n      - name: b\n        run: x\n";
        assert_eq!(locate(text, "pipelines.test.stages[1].run"), Some((6, 9)));
        assert_eq!(locate(text, "pipelines.test.stages[0]"), Some((4, 9)));
        assert_eq!(locate(text, "pipelines.test"), Some((2, 3)));
        let flow = "pipelines:\n  p:\n    stages:\n      - {name: a, run: {arguments: [1]}}\n";
        assert_eq!(
            locate(flow, "pipelines.p.stages[0].run.arguments[0]"),
            Some((4, 9))
        );
        assert_eq!(locate("a: 1\n", "b"), None);
    }
}
