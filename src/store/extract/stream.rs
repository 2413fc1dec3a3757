//! A layer blob decompressed and hashed on its own thread, handed to the tar parser in
//! big buffers through a bounded channel: gunzip (or zstd) and the two SHA-256s run on
//! one core while the extractor's file creation (system calls) keeps the other busy.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

use crate::image::digest::{finish_digest, Digest, HashingReader};

/// Size of the buffers passed to the parser.
const CHUNK: usize = 1 << 20;
/// Buffers in flight at most (bounds memory to about `(DEPTH + 2) * CHUNK`).
const DEPTH: usize = 4;

/// Digests of a blob read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamDigests {
    /// `sha256:` digest of the blob as stored.
    pub blob: Digest,
    /// `sha256:` digest of the uncompressed tar (the diff-ID).
    pub tar: Digest,
}

/// How a layer blob is compressed, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// An uncompressed tar.
    Plain,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

impl Compression {
    /// The compression of a blob starting with `head`.
    pub(crate) fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::Plain
        }
    }
}

/// The uncompressed bytes of a tar read through `reader`: gzip, zstd or plain, told by
/// its first bytes (layer blobs, archives, rootfs tarballs).
pub fn uncompressed<'a, R: BufRead + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match Compression::detect(reader.fill_buf()?) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        Compression::Plain => Box::new(reader),
    })
}

/// The uncompressed stream of a blob, produced by a background thread. Dropping it
/// early stops the thread at its next buffer.
pub(crate) struct BackgroundStream {
    chunks: Receiver<io::Result<Vec<u8>>>,
    spare: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    worker: JoinHandle<io::Result<StreamDigests>>,
}

/// Starts decompressing `source` (gzip, zstd or plain tar, told by its first bytes) and
/// hashing both it and its output on a new thread.
pub(crate) fn decompress_in_background<R: Read + Send + 'static>(
    source: R,
) -> io::Result<BackgroundStream> {
    let mut buffered = BufReader::with_capacity(CHUNK, HashingReader::new(source));
    let compression = Compression::detect(buffered.fill_buf()?);
    let (chunk_tx, chunks) = mpsc::sync_channel(DEPTH);
    // Emptied buffers come back for reuse (no page faults on fresh allocations).
    let (spare, spare_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 2);
    let worker = std::thread::Builder::new()
        .name("layer-decompress".into())
        .spawn(move || produce(buffered, compression, &chunk_tx, &spare_rx))?;
    Ok(BackgroundStream {
        chunks,
        spare,
        current: Vec::new(),
        pos: 0,
        worker,
    })
}

/// The thread's work: decompress, hash and send; then hash whatever follows the
/// compressed stream, so the blob digest covers every byte.
fn produce<R: Read>(
    mut buffered: BufReader<HashingReader<R>>,
    compression: Compression,
    chunks: &SyncSender<io::Result<Vec<u8>>>,
    spare: &Receiver<Vec<u8>>,
) -> io::Result<StreamDigests> {
    let mut tar_hash = Sha256::new();
    // Bytes still in the BufReader were hashed when read from the source.
    let bottom = match compression {
        Compression::Gzip => {
            let mut decoder = flate2::bufread::MultiGzDecoder::new(buffered);
            pump(&mut decoder, &mut tar_hash, chunks, spare)?;
            decoder.into_inner().into_inner()
        }
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(buffered)?;
            pump(&mut decoder, &mut tar_hash, chunks, spare)?;
            decoder.finish().into_inner()
        }
        Compression::Plain => {
            pump(&mut buffered, &mut tar_hash, chunks, spare)?;
            buffered.into_inner()
        }
    };
    let (blob, _) = bottom.drain()?;
    Ok(StreamDigests {
        blob,
        tar: finish_digest(tar_hash),
    })
}

/// Sends `reader`'s bytes in buffers of up to [`CHUNK`] until its end; a read error is
/// sent too (the parser reports it) and returned.
fn pump(
    reader: &mut dyn Read,
    hash: &mut Sha256,
    chunks: &SyncSender<io::Result<Vec<u8>>>,
    spare: &Receiver<Vec<u8>>,
) -> io::Result<()> {
    let stopped = || io::Error::other("the extraction stopped reading");
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        // Recycled buffers are already initialised: resizing them costs nothing.
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    chunks.send(Err(copy)).map_err(|_| stopped())?;
                    return Err(e);
                }
            }
        }
        if filled == 0 {
            return Ok(());
        }
        buf.truncate(filled);
        hash.update(&buf);
        chunks.send(Ok(buf)).map_err(|_| stopped())?;
    }
}

impl BackgroundStream {
    /// Reads the rest of the stream (the tar's padding after its end) and returns the
    /// digests of the blob and of the uncompressed tar.
    pub fn finish(mut self) -> io::Result<StreamDigests> {
        io::copy(&mut self, &mut io::sink())?;
        let BackgroundStream { chunks, worker, .. } = self;
        drop(chunks);
        worker
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the decompression thread panicked")))
    }
}

impl Read for BackgroundStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.current.len() {
            let used = std::mem::take(&mut self.current);
            if used.capacity() > 0 {
                let _ = self.spare.try_send(used);
            }
            self.pos = 0;
            match self.chunks.recv() {
                Ok(Ok(buf)) => self.current = buf,
                Ok(Err(e)) => return Err(e),
                // The sender is gone: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
