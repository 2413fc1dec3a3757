//! The Bearer token request (Docker token protocol, with an OAuth2 refresh-token form
//! for identity tokens) and the reading of registry error bodies.

use std::collections::HashMap;

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::AUTHORIZATION;
use url::Url;

use super::Repository;
use crate::registry::auth::{Credential, TokenResponse};
use crate::registry::client::SHORT_REQUEST;
use crate::registry::error::{RegistryError, Result};
use crate::registry::retry::{retry_after, RetryPolicy};

impl Repository<'_> {
    pub(super) fn fetch_token(
        &self,
        realm: &str,
        params: &HashMap<String, String>,
    ) -> Result<String> {
        let mut scopes = vec![format!("repository:{}:{}", self.repository, self.actions)];
        scopes.extend(
            self.extra_scopes
                .lock()
                .expect("scope lock")
                .iter()
                .cloned(),
        );
        let service = params.get("service").cloned().unwrap_or_default();
        let credential = self.credential()?;
        let url =
            Url::parse(realm).map_err(|e| self.bad(format!("bad token realm {realm:?}: {e}")))?;
        let operation = "get auth token";
        let build = |http: &reqwest::blocking::Client| -> RequestBuilder {
            match &credential {
                Some(Credential::IdentityToken(token)) => {
                    let mut form = vec![
                        ("grant_type", "refresh_token".to_string()),
                        ("refresh_token", token.clone()),
                        ("service", service.clone()),
                        ("client_id", "flense".to_string()),
                    ];
                    form.extend(scopes.iter().map(|s| ("scope", s.clone())));
                    http.post(url.clone()).timeout(SHORT_REQUEST).form(&form)
                }
                other => {
                    let mut url = url.clone();
                    {
                        let mut q = url.query_pairs_mut();
                        if !service.is_empty() {
                            q.append_pair("service", &service);
                        }
                        for s in &scopes {
                            q.append_pair("scope", s);
                        }
                        if other.is_some() {
                            q.append_pair(
                                "account",
                                match other {
                                    Some(Credential::Basic { username, .. }) => username,
                                    _ => "",
                                },
                            );
                        }
                    }
                    let req = http.get(url).timeout(SHORT_REQUEST);
                    match other.as_ref().and_then(Credential::basic_header) {
                        Some(h) => req.header(AUTHORIZATION, h),
                        None => req,
                    }
                }
            }
        };
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            match build(&self.client.http).send() {
                Ok(r)
                    if RetryPolicy::retryable_status(r.status())
                        && self.client.retry.should_retry(attempt) =>
                {
                    std::thread::sleep(self.client.retry.delay(attempt, retry_after(r.headers())));
                }
                Ok(r) => break r,
                Err(e)
                    if RetryPolicy::retryable_error(&e)
                        && self.client.retry.should_retry(attempt) =>
                {
                    std::thread::sleep(self.client.retry.delay(attempt, None));
                }
                Err(e) => {
                    return Err(RegistryError::Transport {
                        registry: self.registry.clone(),
                        operation: operation.into(),
                        source: e.without_url(),
                    })
                }
            }
        };
        if !resp.status().is_success() {
            return Err(self.unauthorized(resp));
        }
        let body: TokenResponse = resp
            .json()
            .map_err(|e| self.bad(format!("token endpoint sent bad JSON: {e}")))?;
        body.into_token()
            .ok_or_else(|| self.bad("token endpoint sent no token".into()))
    }
}

/// Registry error codes and messages from a body like `{"errors":[{"code","message"}]}`,
/// else the start of the body.
pub(super) fn error_detail(resp: Response) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    let text = resp.text().unwrap_or_default();
    if let Ok(errors) = serde_json::from_str::<Errors>(&text) {
        let list: Vec<String> = errors
            .errors
            .into_iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
            .collect();
        if !list.is_empty() {
            return list.join("; ");
        }
    }
    let text = text.trim();
    if text.is_empty() {
        "no details".into()
    } else {
        text.chars().take(300).collect()
    }
}
