//! The `.pipeline/blubber.yaml` (v4) model: parsing, validation, merging and includes.
//!
//! Pure: reads files, never touches the network or spawns processes.
//!
//! ```no_run
//! let config = flense::config::load(std::path::Path::new(".pipeline/blubber.yaml"))?;
//! for name in config.variant_names() {
//!     let variant = config.expand(name)?;            // includes merged, copies expanded
//!     let stages = config.copies_dependencies(name)?; // variants to build first
//!     println!("{name}: base {:?}, stages {stages:?}", variant.common.base);
//! }
//! # Ok::<(), flense::config::ConfigErrors>(())
//! ```

mod decode;
mod error;
mod expand;
mod graph;
mod lint;
mod merge;
mod model;
pub mod paths;
pub mod policy;
mod requirements;
pub(crate) mod rules;
mod validate;
mod yaml;

use std::collections::HashSet;
use std::path::Path;

pub use decode::defaults;
pub use error::{ConfigError, ConfigErrors, Pos, Problem};
pub use expand::{expand_copies, stage_references};
pub use graph::{DepGraph, GraphError};
pub use lint::Warning;
pub use merge::{merge_builders, merge_copies};
pub use model::*;
pub use requirements::{
    effective_destination, group_requirements, normalized_destination, normalized_source, CopyGroup,
};

use yaml::NodeKind;

/// The default config path, relative to the project directory.
pub const DEFAULT_PATH: &str = ".pipeline/blubber.yaml";

/// The only supported config version.
pub const VERSION: &str = "v4";

/// Reads, parses and validates a config file; errors name `path` as given.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => load_str(&text, &name),
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let pos = Pos::at_byte(e.as_bytes(), offset);
                Err(file_error(&name, Some(pos), Problem::NotUtf8 { offset }))
            }
        },
        Err(e) => Err(file_error(&name, None, Problem::Read(e.to_string()))),
    }
}

fn file_error(file: &str, pos: Option<Pos>, problem: Problem) -> ConfigErrors {
    ConfigErrors::one(ConfigError {
        file: file.to_string(),
        pos,
        variant: None,
        path: String::new(),
        problem,
    })
}

/// Parses and validates config text; `file_name` is used in error messages.
///
/// Like Blubber: YAML 1.1 parse, then the version check (reported alone when it
/// fails), then a strict decode (unknown keys are errors), then validation of the top
/// level and of every raw variant. All errors are returned, in file order. Merged
/// conflicts appear only when a variant is expanded ([`Config::expand`],
/// [`Config::check_all`]).
pub fn load_str(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    // yaml.v2 skips a UTF-8 byte order mark; so do we.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = yaml::parse(text).map_err(|e| {
        ConfigErrors::one(ConfigError {
            file: file_name.to_string(),
            pos: Some(e.pos),
            variant: None,
            path: String::new(),
            problem: Problem::Yaml(e.message),
        })
    })?;
    let version = check_version(&root, file_name)?;
    let mut decoder = decode::Decoder::new(file_name);
    let (common, variants) = decoder.config(&root);
    let decode_errors = std::mem::take(&mut decoder.errors);
    let positions = std::mem::take(&mut decoder.positions);
    let mut errors = validate_decoded(file_name, decode_errors, &positions, &common, &variants);
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.pos.unwrap_or_default());
        return Err(ConfigErrors { errors });
    }
    Ok(Config {
        version,
        common,
        variants,
        file_name: file_name.to_string(),
        positions,
    })
}

/// The document's `version`, which must be [`VERSION`]; checked before anything else and
/// reported alone, like Blubber.
fn check_version(root: &yaml::Node, file_name: &str) -> Result<String, ConfigErrors> {
    let at = |pos: Pos, path: &str, problem: Problem| {
        ConfigErrors::one(ConfigError {
            file: file_name.to_string(),
            pos: Some(pos),
            variant: None,
            path: path.to_string(),
            problem,
        })
    };
    let NodeKind::Map(entries) = &root.kind else {
        let problem = Problem::Schema {
            pointer: String::new(),
            detail: format!("expected a mapping, but got {}", root.kind.json_type()),
        };
        return Err(at(root.pos, "", problem));
    };
    let required = || Problem::Required {
        field: "version".into(),
    };
    let Some((_, v)) = entries.iter().find(|(k, _)| k.name == "version") else {
        return Err(at(root.pos, "version", required()));
    };
    match &v.kind {
        NodeKind::Str(s) if s == VERSION => Ok(s.clone()),
        NodeKind::Str(s) if s.is_empty() => Err(at(v.pos, "version", required())),
        NodeKind::Str(s) => {
            let problem = Problem::CurrentVersion {
                field: "version".into(),
                value: s.clone(),
            };
            Err(at(v.pos, "version", problem))
        }
        other => {
            let problem = Problem::Schema {
                pointer: "/version".into(),
                detail: format!("expected string, but got {}", other.json_type()),
            };
            Err(at(v.pos, "version", problem))
        }
    }
}

/// The decode errors plus the validation errors of the top level and of every raw
/// variant, without follow-on errors about a value that failed to decode (it is left
/// unset) or anything inside it.
fn validate_decoded(
    file_name: &str,
    decode_errors: Vec<ConfigError>,
    positions: &decode::Positions,
    common: &CommonConfig,
    variants: &[Variant],
) -> Vec<ConfigError> {
    let names: HashSet<&str> = variants.iter().map(|v| v.name.as_str()).collect();
    let mut validator = validate::Validator::new(file_name, positions, names);
    validator.variant_names(variants);
    validator.top(common);
    for v in variants {
        validator.raw_variant(v);
    }
    let inside = |path: &str, decoded: &str| {
        path == decoded
            || path.starts_with(&format!("{decoded}."))
            || path.starts_with(&format!("{decoded}["))
    };
    let mut errors = decode_errors;
    for e in validator.errors {
        if !errors.iter().any(|d| inside(&e.path, &d.path)) {
            errors.push(e);
        }
    }
    errors
}
