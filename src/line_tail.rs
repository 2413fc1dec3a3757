//! The last lines of a log, kept for error messages and reports while the log is
//! still being written (by a logger thread, say).

use std::collections::VecDeque;
use std::sync::Mutex;

/// The last `capacity` lines pushed; safe to share between the writer and readers.
#[derive(Debug)]
pub struct LineTail {
    capacity: usize,
    lines: Mutex<VecDeque<String>>,
}

impl LineTail {
    /// An empty tail that keeps at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lines: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Adds `line`, dropping the oldest one when full.
    pub fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::LineTail;

    #[test]
    fn keeps_the_last_lines_in_order() {
        let tail = LineTail::new(2);
        for line in ["a", "b", "c"] {
            tail.push(line.into());
        }
        assert_eq!(tail.lines(), ["b", "c"]);
    }
}
