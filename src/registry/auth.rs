//! Credentials and the registry auth dance: anonymous first, then whatever the
//! `WWW-Authenticate` challenge asks for (Bearer token with scope, or Basic).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine;
use docker_credential::{CredentialRetrievalError, DockerCredential};

use super::error::{RegistryError, Result};

/// A secret for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// User name and password (or access token used as password).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in docker's config).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Self::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

impl Credential {
    /// The `Authorization` header value for Basic auth (identity tokens cannot be sent so).
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Self::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Self::IdentityToken(_) => None,
        }
    }
}

/// Finds credentials: `$REGISTRY_AUTH_FILE`, then `$XDG_RUNTIME_DIR/containers/auth.json`,
/// then `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`), each with
/// `auths`, `credHelpers` and `credsStore`.
#[derive(Debug, Clone, Default)]
pub struct CredentialSource {
    files: Vec<PathBuf>,
}

impl CredentialSource {
    /// The files named by the environment, in the order they are consulted.
    pub fn from_env() -> Self {
        let mut files = Vec::new();
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
            files.push(PathBuf::from(p));
        }
        if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
            files.push(PathBuf::from(p).join("containers/auth.json"));
        }
        let docker_dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        if let Some(dir) = docker_dir {
            files.push(dir.join("config.json"));
        }
        Self { files }
    }

    /// Only the given files.
    pub fn from_files(files: Vec<PathBuf>) -> Self {
        Self { files }
    }

    /// The credential for `registry` (`host[:port]`), or `None` for anonymous access.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        let keys: Vec<&str> = if registry == "docker.io" {
            vec![
                "https://index.docker.io/v1/",
                "docker.io",
                "index.docker.io",
            ]
        } else {
            vec![registry]
        };
        for file in self.files.iter().filter(|f| f.is_file()) {
            let text = std::fs::read(file).map_err(|e| RegistryError::Credentials {
                registry: registry.to_string(),
                reason: format!("cannot read {}: {e}", file.display()),
            })?;
            for key in &keys {
                match docker_credential::get_credential_from_reader(text.as_slice(), key) {
                    Ok(DockerCredential::UsernamePassword(username, password)) => {
                        return Ok(Some(Credential::Basic { username, password }))
                    }
                    Ok(DockerCredential::IdentityToken(t)) => {
                        return Ok(Some(Credential::IdentityToken(t)))
                    }
                    Err(CredentialRetrievalError::NoCredentialConfigured) => {}
                    // Helpers answer so when they hold nothing for this registry.
                    Err(CredentialRetrievalError::HelperFailure { stdout, .. })
                        if stdout.contains("credentials not found") => {}
                    Err(e) => {
                        return Err(RegistryError::Credentials {
                            registry: registry.to_string(),
                            reason: format!("{}: {}", file.display(), describe(&e)),
                        })
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Describes a credential error without the helper's output (which may hold the secret).
fn describe(e: &CredentialRetrievalError) -> String {
    match e {
        CredentialRetrievalError::HelperFailure { helper, .. } => {
            format!(
                "credential helper {helper} failed (its output is not shown: it may hold secrets)"
            )
        }
        other => other.to_string(),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Get a token from `realm` for `service` and `scope`.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// Parameters besides `realm` (`service`, `scope`, ...).
        params: HashMap<String, String>,
    },
    /// Send the credential with Basic auth.
    Basic,
}

impl Challenge {
    /// Parses the header value; `None` for schemes we do not speak.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Self::Basic),
            "bearer" => {
                let mut params = parse_params(rest);
                let realm = params.remove("realm")?;
                Some(Self::Bearer { realm, params })
            }
            _ => None,
        }
    }
}

/// `key="value", key2=value2` (values may hold commas inside quotes).
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

/// The JSON a token endpoint answers with.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    pub token: Option<String>,
    pub access_token: Option<String>,
}

impl TokenResponse {
    pub(crate) fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push""#,
        )
        .unwrap();
        let Challenge::Bearer { realm, params } = c else {
            panic!("not bearer")
        };
        assert_eq!(realm, "https://auth.docker.io/token");
        assert_eq!(params["service"], "registry.docker.io");
        assert_eq!(params["scope"], "repository:library/debian:pull,push");
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn finds_credentials_in_docker_config_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &file,
            format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let src = CredentialSource::from_files(vec![dir.path().join("missing.json"), file]);
        let cred = src.lookup("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(
            cred,
            Credential::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        assert!(!format!("{cred:?}").contains("s3cret"));
        assert!(src.lookup("docker.io").unwrap().is_some());
        assert!(src.lookup("quay.io").unwrap().is_none());
    }
}
