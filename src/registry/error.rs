//! Errors of the registry client. Messages name the reference, registry or digest involved
//! and never contain a credential.

use std::path::PathBuf;

use crate::image::reference::ReferenceError;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A reference that does not follow Docker's reference grammar.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text given by the user.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registries config file cannot be read or parsed.
    #[error("registries config {path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A credential file or helper failed (the message never contains the secret).
    #[error("credentials for {registry}: {reason}")]
    Credentials {
        /// Registry host the credential was wanted for.
        registry: String,
        /// What went wrong.
        reason: String,
    },
    /// The registry refused our credentials (or has none for us).
    #[error("{registry}: authentication failed for {repository}: {reason}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Repository in the registry.
        repository: String,
        /// What the registry said (status, error code).
        reason: String,
    },
    /// The manifest or blob does not exist.
    #[error("{what} not found in {registry}/{repository}")]
    NotFound {
        /// Registry host.
        registry: String,
        /// Repository in the registry.
        repository: String,
        /// The manifest reference or blob digest.
        what: String,
    },
    /// A non-success answer that retrying did not fix.
    #[error("{registry}: {operation} answered HTTP {status}: {detail}")]
    Status {
        /// Registry host.
        registry: String,
        /// What we were doing (e.g. "GET manifest latest").
        operation: String,
        /// The HTTP status code.
        status: u16,
        /// Registry error codes or body excerpt.
        detail: String,
    },
    /// A network failure that retrying did not fix.
    #[error("{registry}: {operation} failed")]
    Transport {
        /// Registry host.
        registry: String,
        /// What we were doing.
        operation: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry sent something that is not what it claims to be.
    #[error("{registry}/{repository}: {reason}")]
    BadContent {
        /// Registry host.
        registry: String,
        /// Repository in the registry.
        repository: String,
        /// What is wrong (digest or size mismatch, bad JSON, ...).
        reason: String,
    },
    /// An index without a manifest for the wanted platform.
    #[error("{reference}: no manifest for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// The reference pulled.
        reference: String,
        /// The platform wanted.
        platform: String,
        /// The platforms the index offers.
        available: String,
    },
    /// A manifest media type this client does not handle.
    #[error("{reference}: unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The reference.
        reference: String,
        /// The media type received.
        media_type: String,
    },
    /// A cache tag whose documents are not a usable flense build cache.
    #[error("{registry}/{repository}: unusable build cache")]
    BadCache {
        /// Registry host.
        registry: String,
        /// Repository in the registry.
        repository: String,
        /// What is wrong with it.
        #[source]
        source: crate::image::cache_manifest::CacheFormatError,
    },
    /// Local I/O (temporary files, the store).
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// True when the error comes from the user's input (reference, platform, config),
    /// so the CLI exits with code 2.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidReference { .. } | Self::Config { .. })
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result type of this module.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl From<ReferenceError> for RegistryError {
    fn from(e: ReferenceError) -> Self {
        RegistryError::InvalidReference {
            reference: e.reference,
            reason: e.reason,
        }
    }
}
