//! Errors of the config area: each carries the file, the position, the variant and the
//! full path of the offending value, plus Blubber's own message text.

use std::fmt;

/// A 1-based line and column in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub col: usize,
}

impl Pos {
    /// The position of byte `offset` of `bytes` (columns count the characters before it
    /// on its line, invalid UTF-8 counting one per byte): where a decoder stopped.
    pub fn at_byte(bytes: &[u8], offset: usize) -> Pos {
        let before = &bytes[..offset.min(bytes.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Pos {
            line: before.iter().filter(|&&b| b == b'\n').count() + 1,
            col: String::from_utf8_lossy(&before[line_start..])
                .chars()
                .count()
                + 1,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// What is wrong, worded exactly as Blubber v1.8.0 words it (`field` is the last path
/// element, e.g. `packages[default][1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(String),
    /// The file is not UTF-8 text (the position is the first invalid byte's).
    #[error("not UTF-8 text (byte {offset} is not valid UTF-8)")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// YAML syntax error.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// A key that the struct does not have (strict decode), with an optional hint.
    #[error("json: unknown field \"{name}\"{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    UnknownField {
        /// The unknown key.
        name: String,
        /// A hint for keys that Blubber removed.
        hint: Option<String>,
    },
    /// A value of the wrong JSON type.
    #[error("json: cannot unmarshal {found} into Go struct field {field} of type {expected}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    WrongType {
        /// Dotted path of the field.
        field: String,
        /// JSON type found (`number`, `bool`, ...).
        found: String,
        /// Go type expected (`string`, `uint32`, ...).
        expected: String,
        /// How to fix it, when there is an obvious way.
        hint: Option<&'static str>,
    },
    /// A schema-level failure (type or pattern) that Blubber reports through jsonschema.
    #[error("jsonschema: '{pointer}' does not validate: {detail}")]
    Schema {
        /// JSON pointer of the value.
        pointer: String,
        /// What is wrong.
        detail: String,
    },
    /// `version` is not `v4`.
    #[error("{field}: config version \"{value}\" is unsupported")]
    CurrentVersion {
        /// Field name.
        field: String,
        /// The version given.
        value: String,
    },
    /// A required value is missing.
    #[error("{field}: is required")]
    Required {
        /// Field name.
        field: String,
    },
    /// A variant name does not match the variant-name pattern.
    #[error("{field}: contains a bad variant name")]
    BadVariantName {
        /// Field name (`variants`).
        field: String,
    },
    /// `includes` names a variant that does not exist.
    #[error("{field}: references an unknown variant \"{value}\"")]
    UnknownVariantRef {
        /// Field name (`includes[i]`).
        field: String,
        /// The name given.
        value: String,
    },
    /// `base` is not an image reference.
    #[error("{field}: \"{value}\" is not a valid image reference")]
    ImageRef {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// `from` is neither a variant, `local`, nor an image reference.
    #[error("{field}: \"{value}\" is not a valid image reference or known variant")]
    ArtifactFrom {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// `source` is missing although `destination` is set.
    #[error("{field}: is required if \"{param}\" is also set")]
    RequiredWith {
        /// Field name.
        field: String,
        /// The other field.
        param: String,
    },
    /// A local copy source is absolute or escapes the context.
    #[error("{field}: path must be relative when \"from\" is \"local\"")]
    RelativeLocal {
        /// Field name.
        field: String,
    },
    /// A list has duplicate entries.
    #[error("{field}: cannot contain duplicates")]
    Duplicates {
        /// Field name.
        field: String,
    },
    /// `lives.in` or `runs.in` is not an absolute non-root path.
    #[error("{field}: \"{value}\" is not a valid absolute non-root path")]
    AbsPath {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// A user name is invalid or `root`.
    #[error("{field}: \"{value}\" is not a valid user name")]
    UserName {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// A variable name in `environment` or `arguments` is invalid.
    #[error("{field}: contains invalid environment variable names")]
    EnvVars {
        /// Field name.
        field: String,
    },
    /// `node.env` is not alphanumeric.
    #[error("{field}: \"{value}\" is not a valid Node environment name")]
    NodeEnv {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// `python.poetry.version` is not a version specification.
    #[error("{field}: \"{value}\" is not a valid Python package version specification")]
    PyPkgVer {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// An apt package is invalid.
    #[error("{field}: \"{value}\" is not a valid Debian package name")]
    DebianPackage {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// An apt release is invalid.
    #[error("{field}: \"{value}\" is not a valid Debian release name")]
    DebianRelease {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// An apt component is invalid.
    #[error("{field}: \"{value}\" is not a valid Debian component name")]
    DebianComponent {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// A URL is not http(s).
    #[error("{field}: \"{value}\" is not a valid HTTP/HTTPS URL")]
    HttpUrl {
        /// Field name.
        field: String,
        /// The value given.
        value: String,
    },
    /// `builders` repeats node, php or python.
    #[error("{field}: contains disallowed repetitions of entries")]
    UniqueTypesExcept {
        /// Field name.
        field: String,
    },
    /// Two fields that exclude each other are both set.
    #[error("{field}: is not allowed if any of field(s) \"{param}\" is declared/included")]
    NotAllowedWith {
        /// Field name.
        field: String,
        /// The conflicting fields, space separated.
        param: String,
    },
    /// An include cycle.
    #[error(
        "processing includes for variant '{variant}': Detected dependency graph cycle at '{at}'"
    )]
    IncludesCycle {
        /// The variant being expanded.
        variant: String,
        /// Where the cycle was found.
        at: String,
    },
    /// A copies cycle.
    #[error(
        "processing copies for variant '{variant}': Detected dependency graph cycle at '{at}'"
    )]
    CopiesCycle {
        /// The variant being expanded.
        variant: String,
        /// Where the cycle was found.
        at: String,
    },
    /// Expanding a variant that does not exist.
    #[error("processing includes for variant '{variant}': There is no key '{variant}' in the dependency graph")]
    UnknownVariant {
        /// The requested name.
        variant: String,
    },
}

/// One error in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given by the caller.
    pub file: String,
    /// Where the offending value is, when known.
    pub pos: Option<Pos>,
    /// The variant the value belongs to (`None` at the top level).
    pub variant: Option<String>,
    /// Full path of the value, e.g. `variants.foo.copies[0].from`.
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(pos) = self.pos {
            write!(f, ":{pos}")?;
        }
        write!(f, ": ")?;
        if let Some(v) = &self.variant {
            write!(f, "variant \"{v}\": ")?;
        }
        write!(f, "{}", self.problem)
    }
}

/// All errors found in a config file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The errors, in file order.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// Wraps a single error.
    pub fn one(error: ConfigError) -> Self {
        ConfigErrors {
            errors: vec![error],
        }
    }

    /// The Blubber message texts (without file, position and variant), for tests and
    /// for callers that compare against Blubber.
    pub fn messages(&self) -> Vec<String> {
        self.errors.iter().map(|e| e.problem.to_string()).collect()
    }
}
