//! One blob upload session: the blob is sent from the store in PATCH requests
//! (`Content-Range` from the offset the registry holds), resumed after a failure from
//! the `Range` the registry reports, and completed with PUT.

use std::io::{self, Read};

use bytes::Bytes;
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
use crate::error_chain::ErrorChain;

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

/// The store's blob reader and how far it has read.
struct Cursor {
    reader: Box<dyn Read + Send>,
    pos: u64,
}

/// Sends the blob to `location` in chunks of at most `chunk_size` bytes (each read into
/// memory once, so a retry resends it without rereading), resuming after failures from
/// the offset the registry reports, then completes it with PUT.
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
    let read_error = |e| RegistryError::io(format!("reading blob {digest} from the store"), e);
    let open = || -> Result<Cursor> {
        let (reader, stored_size) = store.open_blob(digest).map_err(read_error)?;
        if stored_size != size {
            return Err(super::push::local_error(format!(
                "blob {digest} has {stored_size} bytes in the store, the manifest says {size}"
            )));
        }
        Ok(Cursor { reader, pos: 0 })
    };
    let mut cursor = open()?;
    let mut chunk = (0u64, Bytes::new()); // (offset, bytes)
    let mut offset = 0u64; // bytes the registry holds
    let mut failures = 0;
    while offset < size {
        let chunk_end = chunk.0 + chunk.1.len() as u64;
        if offset < chunk.0 || offset >= chunk_end {
            if cursor.pos > offset {
                cursor = open()?;
            }
            let skip = offset - cursor.pos;
            io::copy(&mut (&mut cursor.reader).take(skip), &mut io::sink()).map_err(read_error)?;
            let len = chunk_size.clamp(1, size - offset);
            let mut buf = Vec::with_capacity(len as usize);
            (&mut cursor.reader)
                .take(len)
                .read_to_end(&mut buf)
                .map_err(read_error)?;
            cursor.pos = offset + buf.len() as u64;
            if buf.len() as u64 != len {
                return Err(super::push::local_error(format!(
                    "blob {digest} in the store is shorter than its {size} bytes"
                )));
            }
            chunk = (offset, Bytes::from(buf));
        }
        let body = chunk.1.slice((offset - chunk.0) as usize..);
        let end = offset + body.len() as u64;
        let content_range = format!("{offset}-{}", end - 1);
        let url = location.clone();
        let result = repo.send_once(&format!("upload {digest}"), &|http| {
            http.patch(url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Range", content_range.clone())
                .body(Body::from(body.clone()))
        });
        match result {
            Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                location = self::location(repo, &resp)?;
                progress.blob_advanced(digest, end - offset);
                offset = end;
                continue;
            }
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                return Ok(Upload::Lost("upload session not found".into()))
            }
            Ok(resp) if !RetryPolicy::retryable_status(resp.status()) => {
                return Err(repo.status_error(&format!("upload {digest}"), resp))
            }
            Ok(resp) => tracing::debug!("upload {digest}: HTTP {}", resp.status()),
            Err(e @ RegistryError::Transport { .. }) => {
                tracing::debug!("upload {digest}: {}", ErrorChain(&e))
            }
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
}
