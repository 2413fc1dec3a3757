//! SHA-256 digests in the OCI `sha256:<hex>` form, and readers/writers that hash what
//! passes through them. Digests are typed as oci-spec's [`Digest`], parsed once where
//! they enter (manifest and config JSON, CLI input, store records); [`AsDigest`] lets the
//! store also take the `sha256:<hex>` strings the build cache's records still hold.

use std::io::{self, Read, Write};

pub use oci_spec::image::Digest;
use oci_spec::image::{DigestAlgorithm, Sha256Digest};
use sha2::{Digest as _, Sha256};

/// The SHA-256 of `bytes` as 64 lowercase hex characters (no `sha256:` prefix).
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The `sha256:<hex>` digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> Digest {
    hex_digest(sha256(bytes))
}

/// The `sha256:<hex>` digest of `bytes` as text, for the build cache's records (which
/// hold digests as strings).
pub fn sha256_digest(bytes: &[u8]) -> String {
    digest_of(bytes).to_string()
}

/// The `sha256:<hex>` digest of what `hasher` has seen.
pub fn finish_digest(hasher: Sha256) -> Digest {
    hex_digest(hex::encode(hasher.finalize()))
}

/// The digest whose hex is `hex`, which a SHA-256 hasher just produced.
fn hex_digest(hex: String) -> Digest {
    let sha: Sha256Digest = hex
        .parse()
        .expect("a SHA-256 hasher gives 64 lower-case hex digits");
    sha.into()
}

/// A SHA-256 digest typed from `text` (the store keeps only SHA-256 blobs), or `None`
/// when `text` is not `sha256:` and 64 lower-case hex digits.
pub fn parse_sha256(text: &str) -> Option<Digest> {
    sha256_hex(text)?;
    text.parse().ok()
}

/// A digest the store can name a blob or layer by: a typed [`Digest`], or the
/// `sha256:<hex>` text of a build cache record (whose fields are not typed yet).
pub trait AsDigest {
    /// The digest as `algorithm:hex` text.
    fn digest_str(&self) -> &str;

    /// The hex part when this is a well-formed SHA-256 digest.
    fn sha256_hex(&self) -> Option<&str> {
        sha256_hex(self.digest_str())
    }
}

impl AsDigest for Digest {
    fn digest_str(&self) -> &str {
        self.as_ref()
    }

    fn sha256_hex(&self) -> Option<&str> {
        (*self.algorithm() == DigestAlgorithm::Sha256).then(|| self.digest())
    }
}

impl AsDigest for str {
    fn digest_str(&self) -> &str {
        self
    }
}

impl AsDigest for String {
    fn digest_str(&self) -> &str {
        self
    }
}

/// The hex part of a `sha256:<hex>` digest, or `None` when `digest` is not a well-formed
/// SHA-256 digest (64 lowercase hex characters).
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let ok = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(hex)
}

/// A writer that hashes and counts every byte it passes on to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the `sha256:<hex>` digest and the number of bytes written.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, finish_digest(self.hasher), self.count)
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads `inner` to its end (so the digest covers everything), then returns the
    /// `sha256:<hex>` digest and the number of bytes read.
    pub fn drain(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((finish_digest(self.hasher), self.count))
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_value() {
        assert_eq!(
            digest_of(b"").as_ref(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sha256_hex_rejects_malformed_digests() {
        assert!(sha256_hex("sha256:../../etc/passwd").is_none());
        assert!(sha256_hex("md5:abc").is_none());
        assert!(sha256_hex(&sha256_digest(b"x")).is_some());
    }

    #[test]
    fn only_sha256_digests_name_store_blobs() {
        let sha512 = format!("sha512:{}", "a".repeat(128));
        let typed: Digest = sha512.parse().unwrap();
        assert!(typed.sha256_hex().is_none());
        assert!(parse_sha256(&sha512).is_none());
        let x = digest_of(b"x");
        assert_eq!(parse_sha256(x.as_ref()), Some(x.clone()));
        assert_eq!(x.sha256_hex(), Some(x.digest()));
    }
}
