//! `.pipeline/config.yaml`: model, execution graph, interpolation, stage runner, reports.
//!
//! Pure parts ([`model`], [`schema`], [`graph`], [`lexer`], [`interp`]) never touch the
//! network or spawn processes; [`setup`] reads git and [`exec`] drives `flense` child
//! processes; [`runner`] schedules stages and [`report`] renders the results.

pub mod argo;
pub mod error;
pub mod exec;
pub mod gitlab;
pub mod graph;
pub mod handoff;
pub mod interp;
pub mod lexer;
pub mod locate;
pub mod model;
pub mod output;
pub mod report;
pub mod runner;
pub mod schema;
pub mod setup;
pub mod steps;

pub use error::{PipelineError, Result, StepError};
