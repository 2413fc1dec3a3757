//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port with its own storage, optionally behind htpasswd Basic auth or Bearer
//! tokens; tiny test images (busybox-static in an OCI layout) that `skopeo` pushes into
//! it; a fault-injecting proxy; and a token server.

// Not every test file uses every helper.
#![allow(unused_imports)]

mod fault_proxy;
mod images;
mod token_server;

pub use fault_proxy::{Fault, FaultProxy};
pub use images::{
    busybox_layer, make_test_image, multi_platform_image, sha256, simple_image, DirStore,
    TestImage, TestPlatform,
};
pub use token_server::{TokenServer, TOKEN_ISSUER, TOKEN_SERVICE};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// The access log (one line per request), when it is kept.
    access_log: Option<std::path::PathBuf>,
}

impl TestRegistry {
    /// Starts a registry without auth.
    pub fn start() -> Self {
        Self::start_inner(None, None, false)
    }

    /// Starts a registry without auth that keeps an access log (see [`Self::requests`]).
    pub fn start_with_access_log() -> Self {
        Self::start_inner(None, None, true)
    }

    /// The requests the registry received so far (access-log lines such as
    /// `127.0.0.1 - - [...] "GET /v2/ HTTP/1.1" 200 ...`); empty without an access log.
    pub fn requests(&self) -> Vec<String> {
        let Some(path) = &self.access_log else {
            return Vec::new();
        };
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" HTTP/1."))
            .map(str::to_string)
            .collect()
    }

    /// Starts a registry with htpasswd Basic auth for `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::start_inner(Some((user.to_string(), password.to_string())), None, false)
    }

    /// Starts a registry that wants Bearer tokens from `tokens` (which accepts `user`
    /// and `password`).
    pub fn start_with_tokens(tokens: &TokenServer) -> Self {
        Self::start_inner(
            Some((tokens.user.clone(), tokens.password.clone())),
            Some(tokens),
            false,
        )
    }

    fn start_inner(
        login: Option<(String, String)>,
        tokens: Option<&TokenServer>,
        log_access: bool,
    ) -> Self {
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
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: {}\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n  secret: flense-test-secret\n{auth}",
                    !log_access,
                    dir.path().join("data").display()
                ),
            )
            .unwrap();
            let access_log = log_access.then(|| dir.path().join("access.log"));
            let stdout = match &access_log {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::null(),
            };
            let mut child = Command::new(bin)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            if wait_ready(&addr, &mut child) {
                return Self {
                    child,
                    addr,
                    dir,
                    login,
                    access_log,
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

    /// Copies `repo_and_tag` out of this registry with skopeo (an independent consumer)
    /// into the OCI layout `dir` as `tag`, with `extra` skopeo arguments (e.g. `--all`);
    /// asserts that skopeo succeeds.
    pub fn copy_out_with_skopeo(&self, repo_and_tag: &str, dir: &Path, tag: &str, extra: &[&str]) {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet"])
            .args(extra)
            .args(self.skopeo_src_args())
            .arg(format!("docker://{}", self.image(repo_and_tag)))
            .arg(format!("oci:{}:{tag}", dir.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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

/// A registry client with default settings and no credentials.
pub fn anonymous_client() -> flense::registry::Client {
    flense::registry::Client::new(
        flense::registry::RegistrySettings::default(),
        flense::registry::CredentialSource::from_files(vec![]),
    )
    .unwrap()
}

/// The linux/amd64 platform.
pub fn amd64() -> flense::image::platform::Platform {
    "linux/amd64".parse().unwrap()
}
