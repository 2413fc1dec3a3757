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
    /// An OAuth2 refresh token (`identitytoken` in docker's config), exchanged at the
    /// token realm for an access token (`grant_type=refresh_token`).
    IdentityToken(String),
    /// A bearer token for the registry itself (`registrytoken` in docker's config, e.g.
    /// a CI job's token): sent as `Authorization: Bearer` without a token exchange.
    RegistryToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Self::IdentityToken(_) => write!(f, "IdentityToken(***)"),
            Self::RegistryToken(_) => write!(f, "RegistryToken(***)"),
        }
    }
}

impl Credential {
    /// The `Authorization` header value for Basic auth (tokens cannot be sent so).
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Self::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Self::IdentityToken(_) | Self::RegistryToken(_) => None,
        }
    }
}

/// Where a docker-style auth config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthConfig {
    /// A file (skipped when it does not exist).
    File(PathBuf),
    /// The JSON content of an environment variable (`$DOCKER_AUTH_CONFIG`).
    Variable(&'static str),
}

/// Finds credentials, first match wins: `$REGISTRY_AUTH_FILE`, then `$DOCKER_AUTH_CONFIG`
/// (the JSON content of a docker config, as GitLab runners provide it), then
/// `$XDG_RUNTIME_DIR/containers/auth.json`, then `$DOCKER_CONFIG/config.json` (default
/// `~/.docker/config.json`); each with `auths` (`registrytoken`, `identitytoken`,
/// `auth`, `username`+`password`), `credHelpers` and `credsStore`.
#[derive(Debug, Clone, Default)]
pub struct CredentialSource {
    configs: Vec<AuthConfig>,
}

impl CredentialSource {
    /// The sources named by the environment, in the order they are consulted.
    pub fn from_env() -> Self {
        let mut configs = Vec::new();
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
            configs.push(AuthConfig::File(PathBuf::from(p)));
        }
        if std::env::var_os("DOCKER_AUTH_CONFIG").is_some_and(|v| !v.is_empty()) {
            configs.push(AuthConfig::Variable("DOCKER_AUTH_CONFIG"));
        }
        if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
            configs.push(AuthConfig::File(
                PathBuf::from(p).join("containers/auth.json"),
            ));
        }
        let docker_dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        if let Some(dir) = docker_dir {
            configs.push(AuthConfig::File(dir.join("config.json")));
        }
        Self { configs }
    }

    /// Only the given files.
    pub fn from_files(files: Vec<PathBuf>) -> Self {
        Self {
            configs: files.into_iter().map(AuthConfig::File).collect(),
        }
    }

    /// The content of one config and the name errors give it; `None` when absent.
    fn read(&self, config: &AuthConfig, registry: &str) -> Result<Option<(Vec<u8>, String)>> {
        match config {
            AuthConfig::File(file) if file.is_file() => std::fs::read(file)
                .map(|text| Some((text, file.display().to_string())))
                .map_err(|e| RegistryError::Credentials {
                    registry: registry.to_string(),
                    reason: format!("cannot read {}: {e}", file.display()),
                }),
            AuthConfig::File(_) => Ok(None),
            AuthConfig::Variable(name) => Ok(std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (v.into_bytes(), format!("${name}")))),
        }
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
        for config in &self.configs {
            let Some((text, name)) = self.read(config, registry)? else {
                continue;
            };
            let fail = |reason: String| RegistryError::Credentials {
                registry: registry.to_string(),
                reason: format!("{name}: {reason}"),
            };
            // Never the parser's message: it may quote the secret.
            let json: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|_| fail("not a valid JSON docker config".into()))?;
            if let Some(token) = registry_token(&json, &keys) {
                return Ok(Some(Credential::RegistryToken(token)));
            }
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
                    Err(e) => return Err(fail(describe(&e))),
                }
            }
        }
        Ok(None)
    }
}

/// `auths.<key>.registrytoken` for the first of `keys` that has one; entry names may be
/// URLs (`https://host/v1/`), as docker writes them.
fn registry_token(config: &serde_json::Value, keys: &[&str]) -> Option<String> {
    let auths = config.get("auths")?.as_object()?;
    let host = |k: &str| -> String {
        let k = k
            .strip_prefix("https://")
            .or_else(|| k.strip_prefix("http://"))
            .unwrap_or(k);
        k.split('/').next().unwrap_or(k).to_string()
    };
    keys.iter().find_map(|key| {
        auths
            .iter()
            .filter(|(name, _)| name.as_str() == *key || host(name) == host(key))
            .find_map(|(_, entry)| entry.get("registrytoken")?.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    })
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

    #[test]
    fn registry_tokens_come_first_and_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &file,
            format!(r#"{{"auths":{{"https://reg.example:5000/v2/":{{"auth":"{auth}","registrytoken":"job-jwt"}},"id.example":{{"identitytoken":"refresh-me"}}}}}}"#),
        )
        .unwrap();
        let src = CredentialSource::from_files(vec![file.clone()]);
        let cred = src.lookup("reg.example:5000").unwrap().unwrap();
        assert_eq!(cred, Credential::RegistryToken("job-jwt".into()));
        assert!(!format!("{cred:?}").contains("job-jwt"));
        assert_eq!(cred.basic_header(), None);
        assert_eq!(
            src.lookup("id.example").unwrap(),
            Some(Credential::IdentityToken("refresh-me".into()))
        );
        std::fs::write(&file, "{\"auths\": {\"x\": secret-without-quotes}}").unwrap();
        let err = src.lookup("x").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
