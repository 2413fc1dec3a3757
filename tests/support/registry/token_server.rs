//! A token server for registry Bearer auth.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use tempfile::TempDir;

use super::fault_proxy::read_request;

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
