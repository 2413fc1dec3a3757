//! Errors of the pipeline area.

use std::path::PathBuf;

/// Everything that can go wrong reading, validating, planning or running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The config file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not UTF-8 text (invalid input, like a YAML error).
    #[error("{path}: not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        source: std::string::FromUtf8Error,
    },
    /// The config file is not valid YAML.
    #[error("{path}: invalid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The config file does not match the schema (every violation, one per line).
    #[error("{path}: schema validation failed:\n{}", .errors.iter().map(|e| format!(" - {e}")).collect::<Vec<_>>().join("\n"))]
    Schema {
        /// The file.
        path: PathBuf,
        /// One entry per violation, each naming its position.
        errors: Vec<String>,
    },
    /// The code's own validation rules failed (reserved names, list of lists, ...).
    #[error("{path}: Pipeline configuration validation failed:\n{}", .errors.iter().map(|e| format!(" - {e}")).collect::<Vec<_>>().join("\n"))]
    Validation {
        /// The file.
        path: PathBuf,
        /// One entry per problem.
        errors: Vec<String>,
    },
    /// A pipeline asked for on the command line does not exist.
    #[error("Pipeline '{name}' is not defined in project's '{path}'")]
    UnknownPipeline {
        /// The requested name.
        name: String,
        /// The config file.
        path: PathBuf,
    },
    /// The execution graph has a cycle.
    #[error("pipeline '{pipeline}': cycle detected in graph ({graph})")]
    Cycle {
        /// The pipeline.
        pipeline: String,
        /// The graph in `digraph { a -> b; ... }` form.
        graph: String,
    },
    /// A `${...}` expression could not be lexed.
    #[error("invalid variable expression ({0})")]
    InvalidVariable(String),
    /// A dotted variable names a stage that is not an ancestor of the current one.
    #[error("cannot access '{namespace}.*' values since '{node}' does not follow it in the graph '{graph}'")]
    AncestorNotFound {
        /// The namespace asked for.
        namespace: String,
        /// The current stage.
        node: String,
        /// The graph.
        graph: String,
    },
    /// A dotted variable is not bound.
    #[error("no value bound for '{name}'; all available variables are: [{}]", .available.join(", "))]
    NameNotFound {
        /// `ns.key`.
        name: String,
        /// Every visible `ns.key`.
        available: Vec<String>,
    },
    /// A name is bound twice in one namespace.
    #[error("'{name}' is already bound in '{namespace}' (bindings are immutable)")]
    NameAlreadyBound {
        /// The namespace.
        namespace: String,
        /// The key.
        name: String,
    },
    /// A `$each` over several variables got a token with too few values.
    #[error("insufficient input for {vars:?} in list comprehension: '{item}'")]
    InsufficientInput {
        /// The variables.
        vars: Vec<String>,
        /// The token.
        item: String,
    },
    /// A `$each`/`$merge` expression is malformed.
    #[error("invalid expression: {0}")]
    Expression(String),
    /// A step's configuration is wrong at run time (after interpolation).
    #[error("stage '{stage}', step {step}: {message}")]
    Step {
        /// The stage.
        stage: String,
        /// The step (build, run, copy, ...).
        step: String,
        /// What went wrong.
        message: String,
    },
    /// Reading or writing a file of the workspace failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Result alias of the pipeline area.
pub type Result<T> = std::result::Result<T, PipelineError>;
