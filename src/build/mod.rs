//! Executes a plan: base image, then layers, then the image, with caching.

pub mod diff;
pub mod run_image;
