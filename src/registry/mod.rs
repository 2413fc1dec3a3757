//! Registry client: reference parsing, pull and push over HTTP(S), auth, retries.
//!
//! The client talks to the store only through [`BlobStore`] (and [`ImageStore`] to name
//! a pulled image), so it works with any content-addressed store; everything it puts
//! there has been verified (digest and size). The local store's implementation lives in
//! `store/blob_store.rs`.

pub mod artifact;
pub mod auth;
pub mod blobs;
pub mod cache;
pub mod client;
pub mod error;
pub mod local;
pub mod manifest;
pub mod parallel;
pub mod progress;
pub mod pull;
pub mod push;
pub mod referrers;
pub mod retry;
pub mod settings;
mod upload;

pub use auth::{Credential, CredentialSource};
pub use blobs::{BlobOutcome, BlobStore, ImageStore, MemoryBlobs, NoProgress, Progress};
pub use cache::{ExportReport, RegistryCache};
pub use client::{Client, Repository};
pub use error::{RegistryError, Result};
pub use local::pull_to_store;
pub use pull::{pull, PulledImage};
pub use push::{push, LocalImage, MountSource, PushOptions};
pub use retry::RetryPolicy;
pub use settings::RegistrySettings;
