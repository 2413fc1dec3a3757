//! HTTP(S) access to one repository of a registry: URL building, auth (anonymous ->
//! challenge -> Bearer token or Basic) and the retry loop.

mod token;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use url::Url;

use super::auth::{Challenge, Credential, CredentialSource};
use super::error::{RegistryError, Result};
use super::retry::{retry_after, RetryPolicy};
use super::settings::RegistrySettings;
use crate::image::reference::Reference;
use token::error_detail;

/// Time limit for requests without a blob body (manifests, HEAD, upload control,
/// tokens). Blob transfers have none, since their length is unbounded; dead peers are
/// caught by TCP keepalive.
pub const SHORT_REQUEST: Duration = Duration::from_secs(120);

/// A registry client: settings, credentials, one connection pool and the retry policy.
/// Cheap to share between threads by reference.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    settings: RegistrySettings,
    credentials: CredentialSource,
    retry: RetryPolicy,
}

impl Client {
    /// A client with the given settings and credential files.
    pub fn new(settings: RegistrySettings, credentials: CredentialSource) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("flense/", env!("CARGO_PKG_VERSION")))
            .timeout(None)
            .connect_timeout(Duration::from_secs(30))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| RegistryError::Transport {
                registry: "-".into(),
                operation: "create HTTP client".into(),
                source: e,
            })?;
        Ok(Self {
            http,
            settings,
            credentials,
            retry: RetryPolicy::default(),
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The registry settings in use.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// Access to the repository of `reference` (after rewrites: pass the rewritten one).
    /// `push` asks for push rights besides pull.
    pub fn repository(&self, reference: &Reference, push: bool) -> Result<Repository<'_>> {
        let registry = reference.registry().to_string();
        let scheme = if self.settings.is_plain_http(&registry) {
            "http"
        } else {
            "https"
        };
        // Docker Hub's API lives on another host than its name.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry.as_str()
        };
        let base = Url::parse(&format!("{scheme}://{host}/v2/")).map_err(|e| {
            RegistryError::InvalidReference {
                reference: reference.to_string(),
                reason: format!("registry {registry:?} gives no valid URL: {e}"),
            }
        })?;
        Ok(Repository {
            client: self,
            registry,
            repository: reference.repository().to_string(),
            base,
            actions: if push { "pull,push" } else { "pull" },
            extra_scopes: Mutex::new(Vec::new()),
            authorization: Mutex::new(None),
            auth_gate: Mutex::new(()),
            credential: OnceLock::new(),
        })
    }
}

/// One repository of one registry, with the authorization obtained so far.
pub struct Repository<'c> {
    client: &'c Client,
    registry: String,
    repository: String,
    base: Url,
    actions: &'static str,
    extra_scopes: Mutex<Vec<String>>,
    authorization: Mutex<Option<String>>,
    auth_gate: Mutex<()>,
    credential: OnceLock<Option<Credential>>,
}

impl Repository<'_> {
    /// Registry host.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Repository path.
    pub fn name(&self) -> &str {
        &self.repository
    }

    /// The retry policy of the client.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.client.retry
    }

    /// The HTTP client (for requests to URLs the registry handed out).
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.client.http
    }

    /// `/v2/<repository>/<path>` as a URL.
    pub fn url(&self, path: &str) -> Url {
        self.base
            .join(&format!("{}/{}", self.repository, path))
            .expect("repository names and API paths are valid URL paths")
    }

    /// Resolves a `Location` header (absolute or relative) against the registry.
    pub fn resolve(&self, location: &str) -> Result<Url> {
        self.base
            .join(location)
            .map_err(|e| self.bad(format!("bad Location {location:?}: {e}")))
    }

    /// Also asks for pull rights on `repository` of the same registry (cross-repo mount).
    /// Drops the current token so the next request gets one with the wider scope.
    pub fn add_pull_scope(&self, repository: &str) {
        let scope = format!("repository:{repository}:pull");
        let mut scopes = self.extra_scopes.lock().expect("scope lock");
        if !scopes.contains(&scope) {
            scopes.push(scope);
            if let Some(auth) = self.authorization.lock().expect("auth lock").as_ref() {
                if auth.starts_with("Bearer ") {
                    *self.authorization.lock().expect("auth lock") = None;
                }
            }
        }
    }

    /// An error about content the registry sent.
    pub fn bad(&self, reason: String) -> RegistryError {
        RegistryError::BadContent {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            reason,
        }
    }

    /// Sends a request built by `build` with authorization, authenticating on a 401
    /// and retrying per the policy. Any other status is returned for the caller to judge.
    pub fn send(
        &self,
        operation: &str,
        build: &dyn Fn(&reqwest::blocking::Client) -> RequestBuilder,
    ) -> Result<Response> {
        self.send_inner(operation, build, true)
    }

    /// Like [`Repository::send`] but without retries (authentication still happens):
    /// for requests whose repetition needs the caller's judgement, such as upload chunks.
    pub fn send_once(
        &self,
        operation: &str,
        build: &dyn Fn(&reqwest::blocking::Client) -> RequestBuilder,
    ) -> Result<Response> {
        self.send_inner(operation, build, false)
    }

    fn send_inner(
        &self,
        operation: &str,
        build: &dyn Fn(&reqwest::blocking::Client) -> RequestBuilder,
        retry: bool,
    ) -> Result<Response> {
        let policy = if retry {
            self.client.retry
        } else {
            RetryPolicy {
                attempts: 1,
                ..self.client.retry
            }
        };
        let mut attempt = 0;
        let mut authenticated_here = false;
        loop {
            attempt += 1;
            let mut request = build(&self.client.http);
            let sent_auth = self.authorization.lock().expect("auth lock").clone();
            if let Some(auth) = &sent_auth {
                request = request.header(AUTHORIZATION, auth);
            }
            match request.send() {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authenticated_here => {
                    authenticated_here = true;
                    attempt -= 1;
                    // Parallel transfers hit the same 401: one fetches a token, the
                    // others wait for it and use it.
                    let _gate = self.auth_gate.lock().expect("auth gate");
                    let current = self.authorization.lock().expect("auth lock").clone();
                    if current.is_none() || current == sent_auth {
                        self.authenticate(resp.headers())?;
                    }
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Err(self.unauthorized(resp));
                }
                Ok(resp)
                    if RetryPolicy::retryable_status(resp.status())
                        && policy.should_retry(attempt) =>
                {
                    let wait = policy.delay(attempt, retry_after(resp.headers()));
                    tracing::debug!(
                        "{}: {operation}: HTTP {}, retrying in {wait:?}",
                        self.registry,
                        resp.status()
                    );
                    std::thread::sleep(wait);
                }
                Ok(resp) => return Ok(resp),
                Err(e) if RetryPolicy::retryable_error(&e) && policy.should_retry(attempt) => {
                    let wait = policy.delay(attempt, None);
                    tracing::debug!("{}: {operation}: {e}, retrying in {wait:?}", self.registry);
                    std::thread::sleep(wait);
                }
                Err(e) => {
                    return Err(RegistryError::Transport {
                        registry: self.registry.clone(),
                        operation: operation.to_string(),
                        source: e.without_url(),
                    })
                }
            }
        }
    }

    /// Turns an unexpected answer into an error naming the operation and the registry's
    /// error codes (never request headers, so no secret).
    pub fn status_error(&self, operation: &str, resp: Response) -> RegistryError {
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return self.unauthorized(resp);
        }
        RegistryError::Status {
            registry: self.registry.clone(),
            operation: operation.to_string(),
            status: status.as_u16(),
            detail: error_detail(resp),
        }
    }

    fn unauthorized(&self, resp: Response) -> RegistryError {
        let status = resp.status();
        let has_credential = matches!(self.credential.get(), Some(Some(_)));
        let hint = if has_credential {
            "credentials were rejected"
        } else {
            "no credentials found (docker config.json, REGISTRY_AUTH_FILE)"
        };
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            reason: format!("HTTP {}, {hint}: {}", status.as_u16(), error_detail(resp)),
        }
    }

    fn credential(&self) -> Result<Option<Credential>> {
        if let Some(c) = self.credential.get() {
            return Ok(c.clone());
        }
        let found = self.client.credentials.lookup(&self.registry)?;
        let _ = self.credential.set(found.clone());
        Ok(found)
    }

    /// Answers a 401's challenge: stores a Basic header or fetches a Bearer token.
    fn authenticate(&self, headers: &HeaderMap) -> Result<()> {
        let challenge = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(Challenge::parse)
            .next();
        let header = match challenge {
            Some(Challenge::Basic) => match self.credential()? {
                Some(c) => c
                    .basic_header()
                    .ok_or_else(|| RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        repository: self.repository.clone(),
                        reason:
                            "registry wants Basic auth but only a token (identitytoken or registrytoken) is configured"
                                .into(),
                    })?,
                None => return Err(self.no_credentials("registry requires Basic auth")),
            },
            Some(Challenge::Bearer { realm, params }) => match self.credential()? {
                Some(Credential::RegistryToken(token)) => format!("Bearer {token}"),
                _ => format!("Bearer {}", self.fetch_token(&realm, &params)?),
            },
            None => return Err(self.no_credentials("401 without a usable WWW-Authenticate")),
        };
        *self.authorization.lock().expect("auth lock") = Some(header);
        Ok(())
    }

    fn no_credentials(&self, why: &str) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            reason: format!("{why}; no credentials found (docker config.json, REGISTRY_AUTH_FILE)"),
        }
    }
}
