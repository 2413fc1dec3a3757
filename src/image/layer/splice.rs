//! Rewriting a layer from an earlier one. A copy of a large build context changes a
//! few files between builds, yet its layer holds them all; writing it afresh reads
//! every file and compresses every byte again. Given the earlier layer's blob and
//! [`LayerIndex`], an entry whose metadata records and content (by sha256, as the
//! caller knows it without reading the file) are unchanged is copied from the earlier
//! stream instead, and a gzip block of the new stream that equals one of the earlier
//! stream's is not compressed again (when the same compressor made it).
//!
//! The output is byte for byte what [`super::write_layer`] writes for the same
//! entries: the stream is the same records in the same order, and the blocks have the
//! same bytes. Every byte copied is checked on the way — the records against the new
//! entry's, the content against the sha256 the caller gave — and on a mismatch the
//! layer is written afresh into a new output (the report says why).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::index::{identity, IndexedEntry, LayerIndex};
use super::records::{empty_sha256, padding, RecordWriter, END_OF_ARCHIVE};
use super::{order_entries, LayerDigests, LayerError, LayerOptions};
use crate::image::digest::HashingWriter;
use crate::image::entry::{Content, EntryKind, LayerEntry};
use crate::image::gzip::{
    compressor_id, inflate_block, Block, ParallelGzipWriter, BLOCK_SIZE, HEADER_LEN,
};

/// The layer a new one may be rewritten from.
#[derive(Debug, Clone)]
pub struct EarlierLayer {
    /// Its compressed blob.
    pub blob: PathBuf,
    /// Its index.
    pub index: LayerIndex,
}

/// The size and sha256 of a host file's content, when the caller knows them without
/// reading the file (a stat cache); `None` makes the entry be read.
pub type KnownContent<'a> = &'a mut dyn FnMut(&Path) -> Option<(u64, [u8; 32])>;

/// How much of a layer came from the earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpliceReport {
    /// Entries written.
    pub entries: usize,
    /// Entries copied from the earlier layer.
    pub reused_entries: usize,
    /// gzip blocks written.
    pub blocks: usize,
    /// gzip blocks taken from the earlier layer.
    pub reused_blocks: usize,
    /// Why the earlier layer could not be used after all (the layer was then written
    /// afresh): it does not hold what its index says.
    pub fallback: Option<String>,
}

/// A written layer with its index.
#[derive(Debug)]
pub struct IndexedLayer<W> {
    /// The output.
    pub out: W,
    /// Its digests.
    pub digests: LayerDigests,
    /// Its index, for rewriting it later.
    pub index: LayerIndex,
    /// What came from the earlier layer.
    pub report: SpliceReport,
}

type TarOut<W> = HashingWriter<ParallelGzipWriter<HashingWriter<W>>>;

/// Writes `entries` as [`super::write_layer`] does, with an index, into an output made
/// by `new_out`; entries unchanged since `earlier` are copied from it (see the module
/// documentation). When the earlier layer turns out not to hold what its index says,
/// the partly written output is dropped and the layer written afresh into a new one.
pub fn write_layer_indexed<W: Write>(
    entries: Vec<LayerEntry>,
    mut new_out: impl FnMut() -> io::Result<W>,
    opts: &LayerOptions,
    earlier: Option<&EarlierLayer>,
    known: KnownContent<'_>,
) -> Result<IndexedLayer<W>, LayerError> {
    let ordered = order_entries(entries)?;
    let mut fallback = None;
    if let Some(earlier) = earlier {
        match write_ordered(&ordered, new_out()?, opts, Some(earlier), known) {
            Err(e @ LayerError::Splice { .. }) => fallback = Some(e.to_string()),
            done => return done,
        }
    }
    let mut layer = write_ordered(&ordered, new_out()?, opts, None, known)?;
    layer.report.fallback = fallback;
    Ok(layer)
}

fn write_ordered<W: Write>(
    ordered: &[(PathBuf, LayerEntry)],
    out: W,
    opts: &LayerOptions,
    earlier: Option<&EarlierLayer>,
    known: KnownContent<'_>,
) -> Result<IndexedLayer<W>, LayerError> {
    let gzip = ParallelGzipWriter::new(HashingWriter::new(out), opts.level, opts.threads)?;
    let mut tar: TarOut<W> = HashingWriter::new(gzip);
    let mut records = RecordWriter::new(opts.epoch);
    let mut source = earlier
        .map(|e| EarlierStream::open(e, opts.level))
        .transpose()?;
    let mut indexed = Vec::with_capacity(ordered.len());
    let mut reused_entries = 0;
    for (name, entry) in ordered {
        let offset = tar.count();
        if let Some(source) = &mut source {
            if let Some(identity) =
                source.copy_if_unchanged(&mut tar, &mut records, name, entry, known)?
            {
                indexed.push(IndexedEntry {
                    identity,
                    offset,
                    len: tar.count() - offset,
                });
                reused_entries += 1;
                continue;
            }
        }
        let written = records.write(&mut tar, name, entry, true)?;
        let content = written.content_sha256.unwrap_or_else(empty_sha256);
        indexed.push(IndexedEntry {
            identity: identity(&written.meta, &content),
            offset,
            len: tar.count() - offset,
        });
    }
    tar.write_all(&END_OF_ARCHIVE)?;
    let (gzip, diff_id, tar_size) = tar.finish();
    let (compressed, blocks) = gzip.finish_with_blocks()?;
    let (out, digest, size) = compressed.finish();
    let block_ends = blocks
        .sizes
        .iter()
        .scan(HEADER_LEN, |end, len| {
            *end += len;
            Some(*end)
        })
        .collect();
    Ok(IndexedLayer {
        out,
        digests: LayerDigests {
            digest,
            size,
            diff_id,
            tar_size,
        },
        index: LayerIndex {
            compressor: compressor_id(opts.level),
            tar_size,
            block_ends,
            entries: indexed,
        },
        report: SpliceReport {
            entries: ordered.len(),
            reused_entries,
            blocks: blocks.sizes.len(),
            reused_blocks: blocks.reused as usize,
            fallback: None,
        },
    })
}

/// The earlier layer, read block by block: its entries by identity, and the last few
/// blocks inflated.
struct EarlierStream<'e> {
    layer: &'e EarlierLayer,
    file: File,
    /// Index in its entries by the first 8 bytes of the identity (small: a large
    /// context has hundreds of thousands); the full identity is compared on lookup.
    by_identity: HashMap<u64, u32>,
    /// Whether its blocks may be written into the new blob as they are.
    same_compressor: bool,
    /// Recently read blocks, by index.
    blocks: VecDeque<(u64, Block)>,
}

impl<'e> EarlierStream<'e> {
    fn open(layer: &'e EarlierLayer, level: u32) -> Result<Self, LayerError> {
        let file = File::open(&layer.blob).map_err(|e| LayerError::Splice {
            path: layer.blob.clone(),
            reason: format!("cannot open its blob: {e}"),
        })?;
        let by_identity = (layer.index.entries.iter().enumerate())
            .filter_map(|(i, e)| Some((short_identity(&e.identity), u32::try_from(i).ok()?)))
            .collect();
        Ok(Self {
            layer,
            file,
            by_identity,
            same_compressor: layer.index.compressor == compressor_id(level),
            blocks: VecDeque::new(),
        })
    }

    /// Copies `entry` from the earlier stream when its records and content are there
    /// unchanged (returning its identity); `None` when it must be written afresh.
    fn copy_if_unchanged<W: Write>(
        &mut self,
        out: &mut TarOut<W>,
        records: &mut RecordWriter,
        name: &Path,
        entry: &LayerEntry,
        known: KnownContent<'_>,
    ) -> Result<Option<[u8; 32]>, LayerError> {
        let (size, content) = match &entry.kind {
            EntryKind::File(Content::File(host)) => match known(host) {
                Some(k) => k,
                None => return Ok(None),
            },
            EntryKind::File(Content::Bytes(bytes)) => {
                (bytes.len() as u64, Sha256::digest(bytes).into())
            }
            _ => (0, empty_sha256()),
        };
        let meta = records.meta(name, entry, size)?;
        let id = identity(&meta, &content);
        let found = (self.by_identity.get(&short_identity(&id)))
            .map(|&i| self.layer.index.entries[i as usize])
            .filter(|e| e.identity == id);
        let Some(IndexedEntry { offset, len, .. }) = found else {
            return Ok(None);
        };
        let mut check = EntryCheck::new(name, &meta, size, content);
        if len != check.len() {
            return Err(check.mismatch("its length differs"));
        }
        self.copy_range(out, offset, len, &mut check)?;
        check.finish()?;
        Ok(Some(id))
    }

    /// Writes `len` bytes of the earlier stream from `offset` to `out`, through `check`.
    fn copy_range<W: Write>(
        &mut self,
        out: &mut TarOut<W>,
        offset: u64,
        len: u64,
        check: &mut EntryCheck,
    ) -> Result<(), LayerError> {
        let block_size = BLOCK_SIZE as u64;
        let (mut at, end) = (offset, offset + len);
        while at < end {
            let index = at / block_size;
            let block = self
                .block(index, out)
                .map_err(|e| check.mismatch(&e.to_string()))?;
            let from = (at - index * block_size) as usize;
            let to = ((end - index * block_size) as usize).min(block.len());
            if from >= to {
                return Err(check.mismatch("the earlier stream ends early"));
            }
            check.feed(&block[from..to])?;
            out.write_all(&block[from..to])?;
            at += (to - from) as u64;
        }
        Ok(())
    }

    /// Block `index` of the earlier stream, inflated; a newly read block is offered to
    /// the new stream's compressor when the same compressor made it.
    fn block<W: Write>(&mut self, index: u64, out: &mut TarOut<W>) -> io::Result<Arc<Vec<u8>>> {
        if let Some((_, block)) = self.blocks.iter().find(|(i, _)| *i == index) {
            return Ok(block.uncompressed.clone());
        }
        let ends = &self.layer.index.block_ends;
        let i = usize::try_from(index).map_err(io::Error::other)?;
        let end = *ends
            .get(i)
            .ok_or_else(|| io::Error::other("no such block"))?;
        let start = if i == 0 { HEADER_LEN } else { ends[i - 1] };
        let mut compressed = vec![0; usize::try_from(end - start).map_err(io::Error::other)?];
        self.file.read_exact_at(&mut compressed, start)?;
        let block_size = BLOCK_SIZE as u64;
        let len = (self.layer.index.tar_size - index * block_size).min(block_size);
        let block = Block {
            uncompressed: Arc::new(inflate_block(&compressed, len as usize)?),
            compressed: Arc::new(compressed),
        };
        if self.same_compressor {
            out.get_mut().offer(block.clone());
        }
        if self.blocks.len() == 2 {
            self.blocks.pop_front();
        }
        let bytes = block.uncompressed.clone();
        self.blocks.push_back((index, block));
        Ok(bytes)
    }
}

fn short_identity(identity: &[u8; 32]) -> u64 {
    u64::from_le_bytes(identity[..8].try_into().expect("8 of 32 bytes"))
}

/// Checks the bytes copied for an entry: its metadata records as the new entry's, then
/// content with the expected sha256, then zero padding.
struct EntryCheck<'m> {
    name: PathBuf,
    meta: &'m [u8],
    size: u64,
    content: [u8; 32],
    seen: u64,
    hasher: Sha256,
}

impl<'m> EntryCheck<'m> {
    fn new(name: &Path, meta: &'m [u8], size: u64, content: [u8; 32]) -> Self {
        Self {
            name: name.to_path_buf(),
            meta,
            size,
            content,
            seen: 0,
            hasher: Sha256::new(),
        }
    }

    /// Length of the entry's records, content and padding.
    fn len(&self) -> u64 {
        self.meta.len() as u64 + self.size + padding(self.size)
    }

    fn mismatch(&self, reason: &str) -> LayerError {
        LayerError::Splice {
            path: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), LayerError> {
        let meta_len = self.meta.len() as u64;
        if self.seen < meta_len {
            let n = bytes.len().min((meta_len - self.seen) as usize);
            let expected = &self.meta[self.seen as usize..self.seen as usize + n];
            if bytes[..n] != *expected {
                return Err(self.mismatch("its tar records differ"));
            }
            self.seen += n as u64;
            bytes = &bytes[n..];
        }
        let content_end = meta_len + self.size;
        if self.seen < content_end && !bytes.is_empty() {
            let n = bytes.len().min((content_end - self.seen) as usize);
            self.hasher.update(&bytes[..n]);
            self.seen += n as u64;
            bytes = &bytes[n..];
        }
        if bytes.iter().any(|&b| b != 0) {
            return Err(self.mismatch("its padding is not zeros"));
        }
        self.seen += bytes.len() as u64;
        Ok(())
    }

    fn finish(self) -> Result<(), LayerError> {
        if self.seen != self.len() {
            return Err(self.mismatch("its length differs"));
        }
        let sha: [u8; 32] = self.hasher.clone().finalize().into();
        if sha != self.content {
            return Err(self.mismatch("its content differs"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
