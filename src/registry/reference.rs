//! Image references with Docker's normalisation (`debian` is
//! `docker.io/library/debian:latest`): the one parser of [`crate::image::reference`],
//! with [`NameDefaults::DOCKER_HUB`](crate::image::reference::NameDefaults::DOCKER_HUB).

pub use crate::image::reference::{Reference, ReferenceError, DEFAULT_REGISTRY, DEFAULT_TAG};

use super::error::RegistryError;

impl From<ReferenceError> for RegistryError {
    fn from(e: ReferenceError) -> Self {
        RegistryError::InvalidReference {
            reference: e.reference,
            reason: e.reason,
        }
    }
}
