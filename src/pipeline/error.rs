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
    #[error("{path}:{pos}: not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Line and column of the first invalid byte.
        pos: crate::config::Pos,
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
    /// `flense pipeline --stage`: the outputs of an earlier stage are not in the
    /// environment, or not readable.
    #[error(
        "stage '{stage}' needs the outputs of stage '{ancestor}' from ${variable}, but {reason}"
    )]
    StageOutputs {
        /// The stage to run.
        stage: String,
        /// The earlier stage.
        ancestor: String,
        /// The environment variable.
        variable: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `flense pipeline --stage`: the pipeline has no such stage.
    #[error("pipeline '{pipeline}' has no stage '{stage}' (its stages: {})", .stages.join(", "))]
    UnknownStage {
        /// The pipeline.
        pipeline: String,
        /// The stage asked for.
        stage: String,
        /// The stages it has, in frame order.
        stages: Vec<String>,
    },
}

/// Result alias of the pipeline area.
pub type Result<T> = std::result::Result<T, PipelineError>;

/// Why a step of a stage, or the [`Executor`](super::exec::Executor) doing its work,
/// failed. The cause is chained, not repeated: the stage log and the summary show the
/// whole chain on one line (`step build: failed to build image: ...`).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Which step failed; the cause says why.
    #[error("step {step}")]
    InStep {
        /// The step (`build`, `run`, `copy`, ...).
        step: &'static str,
        /// What went wrong in it.
        source: Box<StepError>,
    },
    /// Interpolating or binding a value failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The step's configuration or its outcome is wrong (a bad value, a non-zero exit).
    #[error("{0}")]
    Failed(String),
    /// Reading or writing a file of the workspace, the artifacts directory or a temp file.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A child process could not be started.
    #[error("cannot start {program:?}")]
    Spawn {
        /// The program.
        program: std::ffi::OsString,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// Waiting for a child process failed.
    #[error("waiting for child {pid}")]
    Wait {
        /// The child's process ID.
        pid: u32,
        /// The cause.
        source: std::io::Error,
    },
    /// `flense inspect` could not be run or printed something that is not JSON.
    #[error("flense inspect {image}")]
    Inspect {
        /// The image inspected.
        image: String,
        /// The cause (an I/O or a JSON error).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Rendering an inline Blubber file as YAML failed.
    #[error(transparent)]
    Yaml(#[from] serde_yaml::Error),
    /// The failure of a build that another stage of the run started with the same inputs.
    #[error(transparent)]
    Shared(std::sync::Arc<StepError>),
}

impl StepError {
    /// Wraps an error as the cause of `step`'s failure.
    pub fn in_step(step: &'static str, cause: impl Into<StepError>) -> Self {
        StepError::InStep {
            step,
            source: Box::new(cause.into()),
        }
    }

    /// Turns an I/O error on `path` into a step error (for `map_err`).
    pub fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StepError + '_ {
        move |source| StepError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        StepError::Failed(message)
    }
}

impl From<&str> for StepError {
    fn from(message: &str) -> Self {
        StepError::Failed(message.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::ErrorChain;

    #[test]
    fn a_step_error_names_the_step_then_each_cause_once() {
        let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let io = StepError::io_at(std::path::Path::new("/w/out"))(denied);
        let err = StepError::in_step("copy", io);
        assert_eq!(ErrorChain(&err).to_string(), "step copy: /w/out: denied");

        let shared = StepError::Shared(std::sync::Arc::new(StepError::from("exited with 1")));
        let err = StepError::in_step("build", shared);
        assert_eq!(ErrorChain(&err).to_string(), "step build: exited with 1");
    }
}
