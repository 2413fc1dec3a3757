//! Executes a plan: base image, then layers, then the image, with caching.
