//! One blob upload session: the blob is streamed from the store in PATCH requests
//! (`Content-Range` from the offset the registry holds), resumed after a failure from
//! the `Range` the registry reports, and completed with PUT.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_spec::image::{Descriptor, Digest};
use reqwest::blocking::{Body, Response};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::StatusCode;
use url::Url;

use super::blobs::{BlobStore, Progress};
use super::client::Repository;
use super::client::SHORT_REQUEST;
use super::error::{RegistryError, Result};
use super::retry::RetryPolicy;

/// How an upload session ended.
pub(super) enum Upload {
    /// The registry has the blob.
    Done,
    /// The registry lost or spoilt the upload session; start a new one.
    Lost(String),
}

/// The `Location` of an upload answer, resolved against the registry.
pub(super) fn location(repo: &Repository<'_>, resp: &Response) -> Result<Url> {
    let value = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| repo.bad("upload answer without Location".into()))?;
    repo.resolve(value)
}

/// The store's blob reader with its position, shared with the request body.
type Cursor = Arc<Mutex<(Box<dyn Read + Send>, u64)>>;

/// A request body reading `remaining` bytes from the shared cursor, which must stand at
/// `start` (a body built twice, e.g. after a 401, fails instead of sending wrong bytes).
struct ChunkBody {
    cursor: Cursor,
    start: u64,
    remaining: u64,
    sent: Arc<AtomicU64>,
}

impl Read for ChunkBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let mut guard = self.cursor.lock().expect("cursor lock");
        let (reader, pos) = &mut *guard;
        if *pos != self.start + self.sent.load(Ordering::SeqCst) {
            return Err(io::Error::other("blob reader moved under this request"));
        }
        let max = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = reader.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob in the store is shorter than its descriptor",
            ));
        }
        *pos += n as u64;
        self.remaining -= n as u64;
        self.sent.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

/// Streams the blob to `location` in chunks of at most `chunk_size` bytes, resuming
/// after failures from the offset the registry reports, then completes it with PUT.
pub(super) fn upload(
    repo: &Repository<'_>,
    blob: &Descriptor,
    mut location: Url,
    store: &dyn BlobStore,
    chunk_size: u64,
    progress: &dyn Progress,
) -> Result<Upload> {
    let digest = blob.digest();
    let size = blob.size();
    let policy = repo.retry_policy();
    let open = || -> Result<(Box<dyn Read + Send>, u64)> {
        store
            .open_blob(digest)
            .map_err(|e| RegistryError::io(format!("reading blob {digest} from the store"), e))
    };
    let (reader, stored_size) = open()?;
    if stored_size != size {
        return Err(super::push::local_error(format!(
            "blob {digest} has {stored_size} bytes in the store, the manifest says {size}"
        )));
    }
    let cursor: Cursor = Arc::new(Mutex::new((reader, 0)));
    let mut offset = 0u64; // bytes the registry holds
    let mut failures = 0;
    while offset < size {
        seek_cursor(&cursor, offset, &open, digest)?;
        let len = chunk_size.clamp(1, size - offset);
        match send_chunk(repo, &location, &cursor, offset, len, digest, progress) {
            Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                location = self::location(repo, &resp)?;
                offset += len;
                continue;
            }
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                return Ok(Upload::Lost("upload session not found".into()))
            }
            Ok(resp) if !RetryPolicy::retryable_status(resp.status()) => {
                return Err(repo.status_error(&format!("upload {digest}"), resp))
            }
            Ok(resp) => tracing::debug!("upload {digest}: HTTP {}", resp.status()),
            Err(e @ RegistryError::Transport { .. }) => tracing::debug!("upload {digest}: {e}"),
            Err(e) => return Err(e),
        }
        failures += 1;
        if !policy.should_retry(failures) {
            return Err(repo.bad(format!("upload of {digest} kept failing at byte {offset}")));
        }
        std::thread::sleep(policy.delay(failures, None));
        match upload_status(repo, &location)? {
            Some((held, next)) if held <= size => {
                tracing::debug!("upload {digest}: registry holds {held} bytes, resuming");
                progress.blob_restarted(digest, held);
                offset = held;
                location = next;
            }
            _ => return Ok(Upload::Lost("registry dropped the upload".into())),
        }
    }
    complete(repo, digest, location)
}

/// Puts the cursor at `offset`, reopening the blob when it stands elsewhere.
fn seek_cursor(
    cursor: &Cursor,
    offset: u64,
    open: &dyn Fn() -> Result<(Box<dyn Read + Send>, u64)>,
    digest: &Digest,
) -> Result<()> {
    let mut guard = cursor.lock().expect("cursor lock");
    if guard.1 == offset {
        return Ok(());
    }
    if guard.1 > offset {
        *guard = (open()?.0, 0);
    }
    let skip = offset - guard.1;
    let skipped = io::copy(&mut (&mut guard.0).take(skip), &mut io::sink())
        .map_err(|e| RegistryError::io(format!("reading blob {digest} from the store"), e))?;
    guard.1 += skipped;
    if skipped != skip {
        return Err(super::push::local_error(format!(
            "blob {digest} in the store is truncated"
        )));
    }
    Ok(())
}

/// Sends one PATCH of `len` bytes from `start`, reporting progress while it runs.
fn send_chunk(
    repo: &Repository<'_>,
    location: &Url,
    cursor: &Cursor,
    start: u64,
    len: u64,
    digest: &Digest,
    progress: &dyn Progress,
) -> Result<Response> {
    let sent = Arc::new(AtomicU64::new(0));
    let content_range = format!("{}-{}", start, start + len - 1);
    let operation = format!("upload {digest}");
    std::thread::scope(|scope| {
        let request = scope.spawn(|| {
            repo.send_once(&operation, &|http| {
                let body = ChunkBody {
                    cursor: cursor.clone(),
                    start,
                    remaining: len,
                    sent: sent.clone(),
                };
                http.patch(location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header("Content-Range", content_range.clone())
                    .body(Body::sized(body, len))
            })
        });
        let mut reported = 0;
        loop {
            let finished = request.is_finished();
            let now = sent.load(Ordering::SeqCst);
            if now > reported {
                progress.blob_advanced(digest, now - reported);
                reported = now;
            }
            if finished {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        request.join().expect("upload request thread")
    })
}

/// Completes the upload with PUT `?digest=`.
fn complete(repo: &Repository<'_>, digest: &Digest, location: Url) -> Result<Upload> {
    let mut put_url = location;
    put_url
        .query_pairs_mut()
        .append_pair("digest", digest.as_ref());
    let operation = format!("finish upload of {digest}");
    let resp = repo.send(&operation, &|http| {
        http.put(put_url.clone())
            .timeout(SHORT_REQUEST)
            .header(CONTENT_LENGTH, 0)
    })?;
    if resp.status() == StatusCode::CREATED {
        return Ok(Upload::Done);
    }
    // A retried PUT may find the upload already completed.
    if super::push::blob_exists(repo, digest)? {
        return Ok(Upload::Done);
    }
    match resp.status() {
        StatusCode::NOT_FOUND => Ok(Upload::Lost(
            "upload session not found at completion".into(),
        )),
        // The registry's copy does not match (e.g. a resumed upload that it appended to
        // differently): the session is spoilt, start over.
        StatusCode::BAD_REQUEST => Ok(Upload::Lost(format!(
            "registry refused completion: {}",
            repo.status_error(&operation, resp)
        ))),
        _ => Err(repo.status_error(&operation, resp)),
    }
}

/// Asks how many bytes the registry holds for an upload: `Some((bytes, location))`, or
/// `None` when the upload session is gone.
fn upload_status(repo: &Repository<'_>, location: &Url) -> Result<Option<(u64, Url)>> {
    let operation = "query upload status";
    let resp = repo.send(operation, &|http| {
        http.get(location.clone()).timeout(SHORT_REQUEST)
    })?;
    if resp.status() != StatusCode::NO_CONTENT && !resp.status().is_success() {
        return Ok(None);
    }
    let held = resp
        .headers()
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range_end)
        .unwrap_or(0);
    let next = match resp.headers().get(LOCATION) {
        Some(_) => self::location(repo, &resp)?,
        None => location.clone(),
    };
    Ok(Some((held, next)))
}

/// `0-N` (inclusive end) -> bytes held. Distribution answers `0-0` for an empty upload
/// (and for one byte); taking it as empty is the safe side, since a wrong guess ends in
/// a digest mismatch at completion, which restarts the upload.
fn parse_range_end(range: &str) -> Option<u64> {
    let range = range.trim().trim_start_matches("bytes=");
    let (_, end) = range.split_once('-')?;
    let end: i64 = end.trim().parse().ok()?;
    Some(if end <= 0 { 0 } else { end as u64 + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range_end("0--1"), Some(0));
        assert_eq!(parse_range_end("0-0"), Some(0));
        assert_eq!(parse_range_end("0-1023"), Some(1024));
        assert_eq!(parse_range_end("bytes=0-9"), Some(10));
        assert_eq!(parse_range_end("garbage"), None);
    }

    #[test]
    fn chunk_body_refuses_a_moved_cursor() {
        let cursor: Cursor = Arc::new(Mutex::new((Box::new(&b"abcdef"[..]), 0)));
        let mut body = ChunkBody {
            cursor: cursor.clone(),
            start: 0,
            remaining: 4,
            sent: Arc::new(AtomicU64::new(0)),
        };
        let mut out = Vec::new();
        body.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcd");
        let mut again = ChunkBody {
            cursor,
            start: 0,
            remaining: 4,
            sent: Arc::new(AtomicU64::new(0)),
        };
        assert!(again.read(&mut [0u8; 4]).is_err());
    }
}
