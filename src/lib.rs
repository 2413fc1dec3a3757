//! flense: build and test container images from Wikimedia Blubber and PipelineLib files
//! without Docker, without a daemon and without root.
//!
//! The crate is split along the data flow: [`config`] reads `blubber.yaml`, [`plan`]
//! compiles a variant into instructions, [`builder`] executes them with the help of
//! [`image`], [`store`], [`registry`] and the `flense-runtime` crate, and [`pipeline`]
//! runs `.pipeline/config.yaml`.

#![forbid(unsafe_code)]

pub mod activity;
pub mod attest;
pub mod builder;
pub mod config;
pub mod error_chain;
#[doc(hidden)]
pub mod fault_point;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod line_tail;
pub mod pipeline;
pub mod plan;
pub mod registry;
pub mod run;
pub mod sign;
pub mod store;
