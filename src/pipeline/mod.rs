//! `.pipeline/config.yaml`: model, execution graph, interpolation, stage runner, reports.

pub mod error;
pub mod graph;
pub mod interp;
pub mod lexer;
pub mod locate;
pub mod model;
pub mod schema;

pub use error::{PipelineError, Result};
