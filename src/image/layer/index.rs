//! A layer's index: where each entry's tar records lie in the uncompressed stream and
//! what they hold, and where each gzip block ends in the blob. Written beside a layer
//! that may be rewritten later ([`super::splice`]); the store keeps it by diff-ID.
//!
//! Format (integers little-endian):
//! ```text
//! "flense-layer-idx1"   17 bytes
//! compressor            32 bytes   crate::image::gzip::compressor_id of the blob
//! tar_size              u64
//! blocks                u64, then that many u64: end offset in the blob of each block
//! entries               u64, then that many: identity (32 bytes), offset u64, len u64
//! sha256                32 bytes   of everything before it
//! ```

use sha2::{Digest as _, Sha256};

const MAGIC: &[u8; 17] = b"flense-layer-idx1";

/// Why an index cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Not an index of this version, truncated, or its checksum does not match.
    #[error("layer index: {0}")]
    Malformed(&'static str),
}

/// One entry of a layer: its identity and where its records lie in the tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedEntry {
    /// [`identity`] of the entry's metadata records and content.
    pub identity: [u8; 32],
    /// Offset of its first record in the uncompressed stream.
    pub offset: u64,
    /// Length of its records, content and padding.
    pub len: u64,
}

/// The index of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerIndex {
    /// What compressed the blob ([`crate::image::gzip::compressor_id`]).
    pub compressor: [u8; 32],
    /// Length of the uncompressed stream.
    pub tar_size: u64,
    /// End offset in the blob of each gzip block, in order (the first block starts
    /// after the gzip header).
    pub block_ends: Vec<u64>,
    /// The entries, in stream order.
    pub entries: Vec<IndexedEntry>,
}

/// What identifies an entry's bytes in a stream: its metadata records (path, kind,
/// mode, owner, clamped mtime, size, link, xattrs) and the sha256 of its content.
pub fn identity(meta: &[u8], content_sha256: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((meta.len() as u64).to_le_bytes());
    h.update(meta);
    h.update(content_sha256);
    h.finalize().into()
}

impl LayerIndex {
    /// The index as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            MAGIC.len() + 32 + 24 + self.block_ends.len() * 8 + self.entries.len() * 48 + 32,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.compressor);
        out.extend_from_slice(&self.tar_size.to_le_bytes());
        out.extend_from_slice(&(self.block_ends.len() as u64).to_le_bytes());
        for end in &self.block_ends {
            out.extend_from_slice(&end.to_le_bytes());
        }
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.identity);
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.len.to_le_bytes());
        }
        let sum: [u8; 32] = Sha256::digest(&out).into();
        out.extend_from_slice(&sum);
        out
    }

    /// Reads an index written by [`Self::to_bytes`], checking its checksum and that its
    /// offsets are consistent.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IndexError> {
        let body_len = bytes
            .len()
            .checked_sub(32)
            .ok_or(IndexError::Malformed("truncated"))?;
        let (body, sum) = bytes.split_at(body_len);
        if Sha256::digest(body)[..] != *sum {
            return Err(IndexError::Malformed("checksum mismatch"));
        }
        let mut r = Reader(body);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(IndexError::Malformed("not a layer index of this version"));
        }
        let compressor = r.array()?;
        let tar_size = r.u64()?;
        let blocks = r.count(8)?;
        let block_ends = (0..blocks)
            .map(|_| r.u64())
            .collect::<Result<Vec<_>, _>>()?;
        let entries = r.count(48)?;
        let entries = (0..entries)
            .map(|_| {
                Ok(IndexedEntry {
                    identity: r.array()?,
                    offset: r.u64()?,
                    len: r.u64()?,
                })
            })
            .collect::<Result<Vec<_>, IndexError>>()?;
        if !r.0.is_empty() {
            return Err(IndexError::Malformed("trailing bytes"));
        }
        let index = LayerIndex {
            compressor,
            tar_size,
            block_ends,
            entries,
        };
        index.check()?;
        Ok(index)
    }

    /// Offsets within the stream and the blob only grow.
    fn check(&self) -> Result<(), IndexError> {
        let blocks_needed = self
            .tar_size
            .div_ceil(crate::image::gzip::BLOCK_SIZE as u64);
        if self.block_ends.len() as u64 != blocks_needed
            || self.block_ends.windows(2).any(|w| w[0] >= w[1])
            || self
                .block_ends
                .first()
                .is_some_and(|&e| e <= crate::image::gzip::HEADER_LEN)
        {
            return Err(IndexError::Malformed("inconsistent blocks"));
        }
        let mut at = 0;
        for e in &self.entries {
            let end = e.offset.checked_add(e.len);
            if e.offset < at || end.is_none_or(|end| end > self.tar_size) {
                return Err(IndexError::Malformed("inconsistent entries"));
            }
            at = e.offset + e.len;
        }
        Ok(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if self.0.len() < n {
            return Err(IndexError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array(&mut self) -> Result<[u8; 32], IndexError> {
        Ok(self.take(32)?.try_into().expect("32 bytes taken"))
    }

    fn u64(&mut self) -> Result<u64, IndexError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes taken"),
        ))
    }

    /// A count of items of `size` bytes each, no more than the bytes left can hold.
    fn count(&mut self, size: u64) -> Result<u64, IndexError> {
        let n = self.u64()?;
        if n > self.0.len() as u64 / size {
            return Err(IndexError::Malformed("truncated"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LayerIndex {
        LayerIndex {
            compressor: [7; 32],
            tar_size: 3 * 1024 * 1024 + 5,
            block_ends: vec![100, 200, 300, 301],
            entries: vec![
                IndexedEntry {
                    identity: [1; 32],
                    offset: 0,
                    len: 1024,
                },
                IndexedEntry {
                    identity: [2; 32],
                    offset: 1024,
                    len: 3 * 1024 * 1024 - 1024,
                },
            ],
        }
    }

    #[test]
    fn an_index_reads_back_as_written() {
        let index = sample();
        assert_eq!(LayerIndex::from_bytes(&index.to_bytes()).unwrap(), index);
    }

    #[test]
    fn damaged_or_inconsistent_indexes_are_refused() {
        let bytes = sample().to_bytes();
        for cut in [0, 10, 17, bytes.len() - 1] {
            assert!(
                LayerIndex::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(LayerIndex::from_bytes(&flipped).is_err());
        let mut overlapping = sample();
        overlapping.entries[1].offset = 512;
        assert!(LayerIndex::from_bytes(&overlapping.to_bytes()).is_err());
        let mut blocks = sample();
        blocks.block_ends.pop();
        assert!(LayerIndex::from_bytes(&blocks.to_bytes()).is_err());
        let mut huge = sample().to_bytes();
        let at = 17 + 32 + 8; // the block count
        huge[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let body = huge.len() - 32;
        let sum: [u8; 32] = Sha256::digest(&huge[..body]).into();
        huge[body..].copy_from_slice(&sum);
        assert!(LayerIndex::from_bytes(&huge).is_err());
    }
}
