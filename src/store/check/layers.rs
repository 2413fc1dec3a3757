//! Comparing an unpacked layer with the layer blob it was recorded from.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::image::digest::{finish_digest, Digest};
use crate::store::{Store, StoreError};

/// What a layer's tar says a path should be.
enum Expected {
    File { size: u64, sha256: Vec<u8> },
    Dir,
    Symlink(PathBuf),
}

/// Why the unpacked layer `diff_id` is broken, if it is: incomplete (no record written
/// last), or (when its intact `blob` is known) a file differing from the blob's.
pub(super) fn layer_problem(
    store: &Store,
    diff_id: &Digest,
    blob: Option<&Digest>,
) -> Result<Option<String>, StoreError> {
    let layer = match store.unpacked_layer(diff_id) {
        Ok(Some(layer)) => layer,
        Ok(None) => return Ok(Some("incomplete: no whiteouts.json".into())),
        Err(StoreError::Json { .. }) => return Ok(Some("whiteouts.json is invalid".into())),
        Err(e) => return Err(e),
    };
    if !layer.diff.is_dir() {
        return Ok(Some("incomplete: no diff/ directory".into()));
    }
    let Some(blob) = blob else {
        return Ok(None);
    };
    if store.recorded_diff_id(blob)?.as_ref() != Some(diff_id) {
        return Ok(Some(format!(
            "the diff-ID record of {blob} names another layer"
        )));
    }
    let (expected, tar_digest) = match read_expected(store, blob) {
        Ok(found) => found,
        Err(e) => return Ok(Some(format!("cannot read its blob {blob}: {e}"))),
    };
    if tar_digest != *diff_id {
        return Ok(Some(format!("its blob {blob} unpacks to {tar_digest}")));
    }
    Ok(expected
        .iter()
        .find_map(|(path, want)| differs(&layer.diff, path, want))
        .map(|detail| format!("{detail} (its blob is {blob})")))
}

/// The regular files, directories and symlinks the layer blob holds (whiteouts and
/// hard links left out; a later entry replaces an earlier one), and its diff-ID.
fn read_expected(
    store: &Store,
    blob: &Digest,
) -> io::Result<(BTreeMap<PathBuf, Expected>, Digest)> {
    let (file, _) = store
        .open_blob_file(blob)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let stream = crate::store::extract::uncompressed(BufReader::with_capacity(1 << 20, file))?;
    let mut hashing = HashingReader {
        inner: stream,
        hasher: Sha256::new(),
    };
    let mut out = BTreeMap::new();
    {
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let Some(path) = relative(&entry.path()?) else {
                continue;
            };
            let whiteout = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".wh."));
            let kind = entry.header().entry_type();
            let expected = if whiteout {
                continue;
            } else if kind.is_dir() {
                Expected::Dir
            } else if kind.is_symlink() {
                match entry.link_name()? {
                    Some(target) => Expected::Symlink(target.into_owned()),
                    None => continue,
                }
            } else if kind.is_file() || kind == tar::EntryType::Continuous {
                let mut hasher = Sha256::new();
                let size = io::copy(&mut entry, &mut hasher)?;
                Expected::File {
                    size,
                    sha256: hasher.finalize().to_vec(),
                }
            } else {
                out.remove(&path);
                continue;
            };
            out.insert(path, expected);
        }
    }
    io::copy(&mut hashing, &mut io::sink())?;
    Ok((out, finish_digest(hashing.hasher)))
}

/// How the unpacked `path` differs from what the blob holds, if it does. Paths that
/// cannot be read (permissions of a rootless layer) are not counted as different.
fn differs(diff: &Path, path: &Path, want: &Expected) -> Option<String> {
    let on_disk = diff.join(path);
    let shown = path.display();
    let meta = match fs::symlink_metadata(&on_disk) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Some(format!("{shown} is missing"))
        }
        Err(_) => return None,
    };
    match want {
        Expected::Dir if !meta.is_dir() => Some(format!("{shown} is not a directory")),
        Expected::Symlink(target) => match fs::read_link(&on_disk) {
            Ok(got) if got == *target => None,
            _ => Some(format!("{shown} is not a symlink to {}", target.display())),
        },
        Expected::File { size, sha256 } => {
            if !meta.is_file() || meta.len() != *size {
                return Some(format!("{shown} has {} bytes, its blob {size}", meta.len()));
            }
            let mut hasher = Sha256::new();
            let mut file = File::open(&on_disk).ok()?;
            io::copy(&mut file, &mut hasher).ok()?;
            (hasher.finalize().as_slice() != sha256.as_slice())
                .then(|| format!("{shown} has other content than its blob"))
        }
        Expected::Dir => None,
    }
}

/// `path` relative to the layer root, or `None` when it leaves it.
fn relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
