//! [`SortedPaths`]: values by path for large path sets (a record per file of a large
//! context), compact: every path's bytes once in one arena, the records in a vector
//! sorted by path bytes and found by binary search.

/// Values by path bytes; a later value of a path replaces an earlier one.
#[derive(Debug, Clone)]
pub struct SortedPaths<V> {
    /// The bytes of every record's path.
    paths: Vec<u8>,
    /// (start in `paths`, length, value), sorted by path once [`Self::sort`] ran.
    records: Vec<(usize, u32, V)>,
}

impl<V> Default for SortedPaths<V> {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            records: Vec::new(),
        }
    }
}

impl<V: Copy> SortedPaths<V> {
    /// Adds a record (found only after the next [`Self::sort`]).
    pub fn push(&mut self, path: &[u8], value: V) {
        self.records
            .push((self.paths.len(), path.len() as u32, value));
        self.paths.extend_from_slice(path);
    }

    /// Sorts the records by path, keeping the last one pushed of each path, and gives
    /// back the room the vectors grew beyond what they hold.
    pub fn sort(&mut self) {
        let paths = &self.paths;
        let key = |r: &(usize, u32, V)| &paths[r.0..r.0 + r.1 as usize];
        self.records.sort_by(|a, b| key(a).cmp(key(b)));
        let mut kept = 0;
        for i in 0..self.records.len() {
            let r = self.records[i];
            if kept > 0 && key(&self.records[kept - 1]) == key(&r) {
                self.records[kept - 1] = r;
            } else {
                self.records[kept] = r;
                kept += 1;
            }
        }
        self.records.truncate(kept);
        self.records.shrink_to_fit();
        self.paths.shrink_to_fit();
    }

    /// The index of the record of `path`; `guess` is tried first (a caller asking for
    /// paths in order passes the index after its last hit).
    pub fn find(&self, path: &[u8], guess: usize) -> Option<usize> {
        if guess < self.records.len() && self.path(guess) == path {
            return Some(guess);
        }
        (self.records)
            .binary_search_by(|r| self.bytes(r).cmp(path))
            .ok()
    }

    /// The value of record `i`.
    pub fn value(&self, i: usize) -> V {
        self.records[i].2
    }

    /// The path of record `i`.
    pub fn path(&self, i: usize) -> &[u8] {
        self.bytes(&self.records[i])
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there is no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, by path once sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], V)> {
        self.records.iter().map(|r| (self.bytes(r), r.2))
    }

    fn bytes(&self, r: &(usize, u32, V)) -> &[u8] {
        &self.paths[r.0..r.0 + r.1 as usize]
    }
}

impl<V: Copy> FromIterator<(Vec<u8>, V)> for SortedPaths<V> {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, V)>>(records: I) -> Self {
        let mut sorted = SortedPaths::default();
        for (path, value) in records {
            sorted.push(&path, value);
        }
        sorted.sort();
        sorted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_value_of_a_path_wins_and_lookups_are_exact() {
        let mut s = SortedPaths::default();
        for (p, v) in [("b", 1), ("a/b", 2), ("a", 3), ("b", 4), ("a-b", 5)] {
            s.push(p.as_bytes(), v);
        }
        s.sort();
        let paths: Vec<_> = s.iter().map(|(p, v)| (p.to_vec(), v)).collect();
        let want = [("a", 3), ("a-b", 5), ("a/b", 2), ("b", 4)];
        assert_eq!(paths, want.map(|(p, v)| (p.as_bytes().to_vec(), v)));
        for guess in [0, 1, 2, 3, 99] {
            assert_eq!(s.find(b"a/b", guess).map(|i| s.value(i)), Some(2));
            assert_eq!(s.find(b"a/", guess), None);
        }
        assert_eq!(s.len(), 4);
    }
}
