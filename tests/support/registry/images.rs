//! Test images: busybox-static layers in OCI layouts, and a plain blob directory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};

use super::TestRegistry;

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One platform's content in a test image.
pub struct TestPlatform {
    /// `amd64`, `arm64`, ...
    pub architecture: &'static str,
    /// Text written to `/etc/flense-platform` in the image (tells the images apart).
    pub marker: String,
}

/// A test image in an OCI layout: busybox-static plus a marker file per platform.
pub struct TestImage {
    /// The OCI layout directory.
    pub layout: PathBuf,
    /// The tag in the layout.
    pub tag: String,
    /// Digest of the top manifest (index for several platforms).
    pub digest: String,
    /// Per platform: (architecture, manifest digest, layer digests).
    pub manifests: Vec<(String, String, Vec<String>)>,
}

impl TestImage {
    /// `oci:<layout>:<tag>` for skopeo.
    pub fn skopeo_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }

    /// Copies the image into a registry with skopeo (`extra`: e.g. `--all`,
    /// `--format v2s2`).
    pub fn push_with_skopeo(&self, registry: &TestRegistry, dest: &str, extra: &[&str]) {
        let out = Command::new("skopeo")
            .arg("copy")
            .arg("--quiet")
            .args(extra)
            .args(registry.skopeo_dest_args())
            .arg(self.skopeo_ref())
            .arg(format!("docker://{}", registry.image(dest)))
            .output()
            .expect("skopeo (apt-get install skopeo)");
        assert!(
            out.status.success(),
            "skopeo copy to {dest} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn write_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let digest = sha256(bytes);
    let path = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    std::fs::write(path, bytes).unwrap();
    (digest, bytes.len() as u64)
}

/// A gzip tar layer with `/bin/busybox` (Debian's busybox-static), a `/bin/sh` link and
/// `/etc/flense-platform` holding `marker`.
pub fn busybox_layer(marker: &str) -> (Vec<u8>, String) {
    let busybox = std::fs::read("/bin/busybox")
        .expect("tests need /bin/busybox: apt-get install busybox-static");
    let mut tar = tar::Builder::new(Vec::new());
    let add_dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    add_dir(&mut tar, "bin/");
    add_dir(&mut tar, "etc/");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    h.set_mtime(0);
    tar.append_data(&mut h, "bin/busybox", busybox.as_slice())
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(0);
    tar.append_link(&mut h, "bin/sh", "busybox").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(marker.len() as u64);
    h.set_mtime(0);
    tar.append_data(&mut h, "etc/flense-platform", marker.as_bytes())
        .unwrap();
    let raw = tar.into_inner().unwrap();
    let diff_id = sha256(&raw);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// Writes an OCI layout in `dir` with one image per platform under `tag`; a single
/// platform gives a plain manifest, several an index.
pub fn make_test_image(dir: &Path, tag: &str, platforms: &[TestPlatform]) -> TestImage {
    let layout = dir.to_path_buf();
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut manifests = Vec::new();
    let mut descriptors = Vec::new();
    for p in platforms {
        let (layer, diff_id) = busybox_layer(&p.marker);
        let (layer_digest, layer_size) = write_blob(&layout, &layer);
        let config = serde_json::json!({
            "architecture": p.architecture,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "flense test fixture"}]
        });
        let (config_digest, config_size) =
            write_blob(&layout, &serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": layer_size}]
        });
        let (manifest_digest, manifest_size) =
            write_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "platform": {"architecture": p.architecture, "os": "linux"}
        }));
        manifests.push((
            p.architecture.to_string(),
            manifest_digest,
            vec![layer_digest],
        ));
    }
    let top = if descriptors.len() == 1 {
        let mut d = descriptors.pop().unwrap();
        d.as_object_mut().unwrap().remove("platform");
        d
    } else {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": descriptors
        });
        let (digest, size) = write_blob(&layout, &serde_json::to_vec(&index).unwrap());
        serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json",
                           "digest": digest, "size": size})
    };
    let digest = top["digest"].as_str().unwrap().to_string();
    let mut top = top;
    top.as_object_mut().unwrap().insert(
        "annotations".into(),
        serde_json::json!({"org.opencontainers.image.ref.name": tag}),
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    TestImage {
        layout,
        tag: tag.to_string(),
        digest,
        manifests,
    }
}

/// A single-platform (linux/amd64) busybox image in `dir`.
pub fn simple_image(dir: &Path, tag: &str) -> TestImage {
    make_test_image(
        dir,
        tag,
        &[TestPlatform {
            architecture: "amd64",
            marker: format!("amd64 {tag}"),
        }],
    )
}

/// A two-platform busybox index in `dir`: linux/arm64 (first) and linux/amd64, each
/// layer marked with its architecture.
pub fn multi_platform_image(dir: &Path, tag: &str) -> TestImage {
    make_test_image(
        dir,
        tag,
        &[
            TestPlatform {
                architecture: "arm64",
                marker: "arm64".into(),
            },
            TestPlatform {
                architecture: "amd64",
                marker: "amd64".into(),
            },
        ],
    )
}

/// A plain directory of blobs (`<dir>/blobs/sha256/<hex>`) for testing the client
/// library without the full store.
pub struct DirStore {
    /// Root directory.
    pub dir: PathBuf,
}

impl DirStore {
    /// Creates the directory layout.
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, digest: &oci_spec::image::Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.digest())
    }

    /// Digests of all blobs held.
    pub fn blobs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join("blobs/sha256"))
            .unwrap()
            .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        v.sort();
        v
    }
}

impl flense::registry::BlobStore for DirStore {
    fn has_blob(&self, digest: &oci_spec::image::Digest) -> std::io::Result<bool> {
        Ok(self.path(digest).exists())
    }
    fn open_blob(
        &self,
        digest: &oci_spec::image::Digest,
    ) -> std::io::Result<(Box<dyn Read + Send>, u64)> {
        let f = std::fs::File::open(self.path(digest))?;
        let len = f.metadata()?.len();
        Ok((Box::new(f), len))
    }
    fn put_verified(
        &self,
        reader: &mut dyn Read,
        digest: &oci_spec::image::Digest,
        size: u64,
    ) -> std::io::Result<()> {
        let tmp = tempfile::NamedTempFile::new_in(self.dir.join("tmp"))?;
        let mut w = flense::registry::blobs::VerifyingWriter::new(tmp);
        std::io::copy(reader, &mut w)?;
        let tmp = w
            .finish(digest, size)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        tmp.persist(self.path(digest))
            .map(|_| ())
            .map_err(|e| e.error)
    }
}
