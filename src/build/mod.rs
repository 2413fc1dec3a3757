//! Executes a plan: base image, then layers, then the image, with caching.

pub mod cache;
pub mod context;
pub mod copy;
pub mod entries;
pub mod ignore;
pub mod users;
pub mod view;
