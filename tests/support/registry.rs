//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port with its own storage, optionally behind htpasswd Basic auth; and tiny
//! test images (busybox-static in an OCI layout) that `skopeo` pushes into it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// A running `docker-registry`, killed on drop.
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Temporary directory holding config, storage and htpasswd.
    pub dir: TempDir,
    /// The user and password when auth is on.
    pub login: Option<(String, String)>,
}

impl TestRegistry {
    /// Starts a registry without auth.
    pub fn start() -> Self {
        Self::start_inner(None, None)
    }

    /// Starts a registry with htpasswd Basic auth for `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::start_inner(Some((user.to_string(), password.to_string())), None)
    }

    /// Starts a registry that wants Bearer tokens from `tokens` (which accepts `user`
    /// and `password`).
    pub fn start_with_tokens(tokens: &TokenServer) -> Self {
        Self::start_inner(
            Some((tokens.user.clone(), tokens.password.clone())),
            Some(tokens),
        )
    }

    fn start_inner(login: Option<(String, String)>, tokens: Option<&TokenServer>) -> Self {
        let bin = Path::new("/usr/bin/docker-registry");
        assert!(
            bin.exists(),
            "tests need Debian's docker-registry: apt-get install docker-registry"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let mut auth = String::new();
        if let Some(tokens) = tokens {
            auth = format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: {TOKEN_SERVICE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                tokens.addr,
                tokens.cert.display()
            );
        } else if let Some((user, password)) = &login {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apt-get install apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(&htpasswd, out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: flense-test\n    path: {}\n",
                htpasswd.display()
            );
        }
        // A port can be taken between probing and binding: try a few.
        for _ in 0..10 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n  secret: flense-test-secret\n{auth}",
                    dir.path().join("data").display()
                ),
            )
            .unwrap();
            let mut child = Command::new(bin)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            if wait_ready(&addr, &mut child) {
                return Self {
                    child,
                    addr,
                    dir,
                    login,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    /// `127.0.0.1:PORT/<repo>`.
    pub fn image(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.addr)
    }

    /// Extra `skopeo` arguments for a destination in this registry.
    pub fn skopeo_dest_args(&self) -> Vec<String> {
        let mut args = vec!["--dest-tls-verify=false".to_string()];
        if let Some((u, p)) = &self.login {
            args.push(format!("--dest-creds={u}:{p}"));
        }
        args
    }

    /// Extra `skopeo` arguments for a source in this registry.
    pub fn skopeo_src_args(&self) -> Vec<String> {
        let mut args = vec!["--src-tls-verify=false".to_string()];
        if let Some((u, p)) = &self.login {
            args.push(format!("--src-creds={u}:{p}"));
        }
        args
    }

    /// `skopeo inspect --raw` of a reference in this registry: the manifest bytes.
    pub fn raw_manifest(&self, repo_and_tag: &str) -> Vec<u8> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some((u, p)) = &self.login {
            cmd.arg(format!("--creds={u}:{p}"));
        }
        cmd.arg(format!("docker://{}", self.image(repo_and_tag)));
        let out = cmd.output().expect("skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

fn wait_ready(addr: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let req = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok()
                    && (head.ends_with(b"200") || head.ends_with(b"401"))
                {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

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

/// A fault to inject in front of the registry.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer `500` instead of forwarding, for the first `times` matching requests.
    ServerError {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
        /// How many requests fail.
        times: usize,
    },
    /// Forward only half of the request body, then close both connections, for the
    /// first `times` matching requests (a connection reset mid-upload).
    CutRequest {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
        /// How many requests are cut.
        times: usize,
    },
    /// Forward only half of the response, then close, for the first `times` matching
    /// requests (a connection reset mid-download).
    CutResponse {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
        /// How many responses are cut.
        times: usize,
    },
    /// Answer `500` once, to the matching request after the first `skip` ones (a
    /// failure in the middle of a chunked upload).
    ServerErrorAfter {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
        /// Matching requests let through first.
        skip: usize,
    },
    /// Flip one byte in the middle of every matching response body.
    CorruptResponse {
        /// HTTP method to match.
        method: &'static str,
        /// Substring of the path to match.
        path: String,
    },
}

/// A small HTTP/1.1 proxy on loopback that forwards to a registry (one request per
/// connection) and injects faults. Stops when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` of the proxy.
    pub addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Per fault, in the order given: (matching requests seen, faults injected).
    pub fired: std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`) with `faults`.
    pub fn start(upstream: &str, faults: Vec<Fault>) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(Mutex::new(vec![(0usize, 0usize); faults.len()]));
        let faults = Arc::new(faults);
        let upstream = upstream.to_string();
        let thread = {
            let stop = stop.clone();
            let fired = fired.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (faults, fired, upstream) =
                                (faults.clone(), fired.clone(), upstream.clone());
                            std::thread::spawn(move || {
                                let _ = conn.set_nonblocking(false);
                                let _ = handle(conn, &upstream, &faults, &fired);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            addr,
            stop,
            fired,
            thread: Some(thread),
        }
    }

    /// How often fault number `i` was injected.
    pub fn fired(&self, i: usize) -> usize {
        self.fired.lock().unwrap()[i].1
    }

    /// How many requests fault number `i` matched (injected or let through).
    pub fn seen(&self, i: usize) -> usize {
        self.fired.lock().unwrap()[i].0
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_request(conn: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)?;
    Ok((head, body))
}

fn handle(
    mut conn: TcpStream,
    upstream: &str,
    faults: &[Fault],
    fired: &std::sync::Mutex<Vec<(usize, usize)>>,
) -> std::io::Result<()> {
    let (head, body) = read_request(&mut conn)?;
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    // Force one request per connection, so each request is judged on its own.
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let head = format!("{}\r\nConnection: close\r\n\r\n", head.trim_end());
    let mut active = None;
    {
        let mut counts = fired.lock().unwrap();
        for (i, fault) in faults.iter().enumerate() {
            let (m, p, skip, times) = match fault {
                Fault::ServerError {
                    method,
                    path,
                    times,
                }
                | Fault::CutRequest {
                    method,
                    path,
                    times,
                }
                | Fault::CutResponse {
                    method,
                    path,
                    times,
                } => (method, path, 0, *times),
                Fault::ServerErrorAfter { method, path, skip } => (method, path, *skip, 1),
                Fault::CorruptResponse { method, path } => (method, path, 0, usize::MAX),
            };
            if *m != method || !path_matches(&path_only(&path), p) {
                continue;
            }
            // counts[i]: (matching requests seen, faults injected).
            counts[i].0 += 1;
            if counts[i].0 > skip && counts[i].1 < times {
                counts[i].1 += 1;
                active = Some(fault.clone());
                break;
            }
        }
    }
    if let Some(Fault::ServerError { .. } | Fault::ServerErrorAfter { .. }) = active {
        conn.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(head.as_bytes())?;
    if let Some(Fault::CutRequest { .. }) = active {
        up.write_all(&body[..body.len() / 2])?;
        up.flush()?;
        std::thread::sleep(Duration::from_millis(100));
        let _ = up.shutdown(std::net::Shutdown::Both);
        let _ = conn.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    let body_start = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(response.len());
    match active {
        Some(Fault::CutResponse { .. }) => {
            let cut = body_start + (response.len() - body_start) / 2;
            conn.write_all(&response[..cut])?;
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        Some(Fault::CorruptResponse { .. }) if response.len() > body_start => {
            let mid = body_start + (response.len() - body_start) / 2;
            response[mid] ^= 0xff;
        }
        _ => {}
    }
    conn.write_all(&response)?;
    Ok(())
}

fn path_only(path: &str) -> String {
    path.split('?').next().unwrap_or("").to_string()
}

fn path_matches(path: &str, pattern: &str) -> bool {
    path.contains(pattern)
}

/// The `service` the token server issues tokens for.
pub const TOKEN_SERVICE: &str = "flense-test-registry";
/// The token issuer name.
pub const TOKEN_ISSUER: &str = "flense-test-issuer";

/// A small token server (the Docker token protocol) on loopback: checks Basic
/// credentials, grants the requested scopes, and signs JWTs with a throwaway RSA key
/// through `openssl`; `docker-registry` verifies them against the key's certificate.
pub struct TokenServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The accepted user.
    pub user: String,
    /// The accepted password.
    pub password: String,
    /// The certificate `docker-registry` trusts.
    pub cert: PathBuf,
    /// Every `scope` parameter requested so far.
    pub scopes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: TempDir,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TokenServer {
    /// Starts the server with a new key pair.
    pub fn start(user: &str, password: &str) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=flense-test-issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        {
            let (scopes, stop) = (scopes.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            let _ = conn.set_nonblocking(false);
                            let _ = answer_token(&mut conn, &expected, &key, &x5c, &scopes);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self {
            addr,
            user: user.to_string(),
            password: password.to_string(),
            cert,
            scopes,
            _dir: dir,
            stop,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn answer_token(
    conn: &mut TcpStream,
    expected_auth: &str,
    key: &Path,
    x5c: &str,
    scopes: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let (head, _) = read_request(conn)?;
    let target = head.split(' ').nth(1).unwrap_or("").to_string();
    let url = url::Url::parse(&format!("http://token{target}")).unwrap();
    let authorized = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("authorization") && v.trim() == expected_auth
        })
    });
    if !authorized {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
        let resp = format!(
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return conn.write_all(resp.as_bytes());
    }
    let mut access = Vec::new();
    for (k, v) in url.query_pairs() {
        if k == "scope" {
            scopes.lock().unwrap().push(v.to_string());
            let parts: Vec<&str> = v.split(':').collect();
            if parts.len() == 3 {
                let actions: Vec<&str> = parts[2].split(',').collect();
                access.push(
                    serde_json::json!({"type": parts[0], "name": parts[1], "actions": actions}),
                );
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": "flense-ci", "aud": TOKEN_SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
        "access": access
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())?;
    let signature = child.wait_with_output()?.stdout;
    let token = format!("{signing_input}.{}", b64url(&signature));
    let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes())
}
