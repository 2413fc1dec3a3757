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
/// credentials (GET) or an OAuth2 refresh token (POST, `grant_type=refresh_token`),
/// grants the requested scopes, and signs JWTs with a throwaway RSA key through
/// `openssl`; `docker-registry` verifies them against the key's certificate.
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
    /// The refresh token (`identitytoken`) the server accepts on POST.
    pub refresh_token: String,
    /// How many POST (refresh-token) requests it granted.
    pub refreshes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    key: PathBuf,
    x5c: String,
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
        let refresh_token = format!("refresh-{}", b64url(&std::fs::read(&cert).unwrap()[40..56]));
        let refreshes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        {
            let (scopes, stop, refreshes) = (scopes.clone(), stop.clone(), refreshes.clone());
            let signer = Signer {
                key: key.clone(),
                x5c: x5c.clone(),
            };
            let refresh = refresh_token.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            let _ = conn.set_nonblocking(false);
                            let accepted = Accepted {
                                basic: &expected,
                                refresh: &refresh,
                            };
                            let _ =
                                answer_token(&mut conn, &accepted, &signer, &scopes, &refreshes);
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
            refresh_token,
            refreshes,
            key,
            x5c,
            _dir: dir,
            stop,
        }
    }
}

impl TokenServer {
    /// A token for `scopes` (`repository:NAME:ACTIONS`) signed as the server signs
    /// them: what a CI system hands a job as its registry token.
    pub fn issue(&self, scopes: &[&str]) -> String {
        let signer = Signer {
            key: self.key.clone(),
            x5c: self.x5c.clone(),
        };
        signer.sign(&scopes.iter().filter_map(|s| access(s)).collect::<Vec<_>>())
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

/// What the token endpoint accepts.
struct Accepted<'a> {
    /// The `Authorization` header of a GET.
    basic: &'a str,
    /// The `refresh_token` of a POST.
    refresh: &'a str,
}

/// Signs JWTs with the server's key.
struct Signer {
    key: PathBuf,
    x5c: String,
}

impl Signer {
    fn sign(&self, access: &[serde_json::Value]) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
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
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
        let signature = child.wait_with_output().unwrap().stdout;
        format!("{signing_input}.{}", b64url(&signature))
    }
}

/// A scope `repository:NAME:a,b` as a JWT access entry.
fn access(scope: &str) -> Option<serde_json::Value> {
    let parts: Vec<&str> = scope.split(':').collect();
    (parts.len() == 3).then(|| {
        let actions: Vec<&str> = parts[2].split(',').collect();
        serde_json::json!({"type": parts[0], "name": parts[1], "actions": actions})
    })
}

fn answer_token(
    conn: &mut TcpStream,
    accepted: &Accepted,
    signer: &Signer,
    scopes: &std::sync::Mutex<Vec<String>>,
    refreshes: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    let (head, body) = read_request(conn)?;
    let target = head.split(' ').nth(1).unwrap_or("").to_string();
    let url = url::Url::parse(&format!("http://token{target}")).unwrap();
    let post = head.starts_with("POST ");
    let params: Vec<(String, String)> = if post {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        url.query_pairs().into_owned().collect()
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let authorized = if post {
        param("grant_type") == Some("refresh_token")
            && param("refresh_token") == Some(accepted.refresh)
    } else {
        head.lines().any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("authorization") && v.trim() == accepted.basic
            })
        })
    };
    if !authorized {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
        let resp = format!(
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return conn.write_all(resp.as_bytes());
    }
    let mut granted = Vec::new();
    for (k, v) in &params {
        if k == "scope" {
            scopes.lock().unwrap().push(v.clone());
            granted.extend(access(v));
        }
    }
    let token = signer.sign(&granted);
    let body = if post {
        refreshes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        serde_json::json!({"access_token": token, "refresh_token": accepted.refresh, "expires_in": 300})
    } else {
        serde_json::json!({"token": token, "expires_in": 300})
    }
    .to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes())
}
