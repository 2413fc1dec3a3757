//! Strict decoding of the located YAML tree into the model, like Blubber's
//! YAML -> JSON -> `encoding/json` (`DisallowUnknownFields`) path: unknown keys and
//! wrong types are errors, and so is `null` where Blubber's schema refuses it (`base`
//! and an artifact's `from` may be null: the value stays unset). Every value's position is
//! recorded by its full path for later validation messages.

use std::collections::{BTreeMap, HashMap};

use super::error::{ConfigError, Pos, Problem};
use super::model::*;
use super::yaml::{Key, Node, NodeKind};

mod apt;
mod builders;
mod keypath;
mod values;

pub(crate) use keypath::{field_of, join, pointer_of};

/// Positions of values by full path (`variants.foo.copies[0].from`); keys of mappings
/// are recorded as `<path>#key`.
pub(crate) type Positions = HashMap<String, Pos>;

const COMMON_KEYS: &[&str] = &[
    "base",
    "arguments",
    "apt",
    "builder",
    "builders",
    "node",
    "php",
    "python",
    "lives",
    "runs",
    "entrypoint",
];

/// The fix for a number or boolean where text is expected.
const QUOTE_HINT: &str = "quote it to make it a string: YAML 1.1 reads unquoted numbers and yes/no/on/off as numbers and booleans";

/// Hints for keys that Blubber removed (they fail as unknown fields, like upstream).
fn removed_key_hint(name: &str, path: &str) -> Option<String> {
    let hint = match name {
        "sharedvolume" => "`sharedvolume` was removed from Blubber in 2018; copy files into the image with `copies` instead",
        "artifacts" => "`artifacts` was replaced by `copies` in Blubber v4: a list of `{from, source, destination}`",
        "use-system-flag" if path.ends_with("python") => "`python.use-system-flag` was removed in Blubber v0.23.0; use `use-system-site-packages` (Python builders always use a venv now)",
        "includes" | "copies" if !path.starts_with("variants.") => "`includes` and `copies` are only allowed inside a variant",
        _ => return None,
    };
    Some(hint.to_string())
}

/// Walks the tree, collecting errors and positions.
pub(crate) struct Decoder<'a> {
    file: &'a str,
    /// Errors found so far.
    pub errors: Vec<ConfigError>,
    /// Positions recorded so far.
    pub positions: Positions,
    variant: Option<String>,
}

impl<'a> Decoder<'a> {
    pub fn new(file: &'a str) -> Self {
        Decoder {
            file,
            errors: Vec::new(),
            positions: HashMap::new(),
            variant: None,
        }
    }

    /// Decodes the root mapping (after the version check): the top-level common config
    /// over Blubber's defaults, and the raw variants.
    pub fn config(&mut self, root: &Node) -> (CommonConfig, Vec<Variant>) {
        let mut allowed = vec!["version", "variants"];
        allowed.extend_from_slice(COMMON_KEYS);
        let entries = self.map(root, "", &allowed).unwrap_or_default();
        let mut common = defaults();
        self.common_into(&entries, "", &mut common);
        let mut variants = Vec::new();
        if let Some((_, node)) = entries.iter().find(|(k, _)| k.name == "variants") {
            self.record("variants", node);
            match &node.kind {
                NodeKind::Null => self.null_refused(node, "variants", "object"),
                NodeKind::Map(list) => {
                    for (k, v) in list {
                        let path = join("variants", &k.name);
                        self.positions.insert(format!("{path}#key"), k.pos);
                        self.variant = Some(k.name.clone());
                        if let Some(variant) = self.variant_config(&k.name, v, &path) {
                            variants.push(variant);
                        }
                        self.variant = None;
                    }
                }
                _ => self.wrong_type(node, "variants", "map[string]config.VariantConfig"),
            }
        }
        (common, variants)
    }

    fn variant_config(&mut self, name: &str, node: &Node, path: &str) -> Option<Variant> {
        if matches!(node.kind, NodeKind::Null) {
            self.err(
                node.pos,
                path,
                Problem::Schema {
                    pointer: format!("/variants/{name}"),
                    detail: "expected object, but got null (write `{}` for an empty variant)"
                        .into(),
                },
            );
            return None;
        }
        let mut allowed = vec!["includes", "copies"];
        allowed.extend_from_slice(COMMON_KEYS);
        let entries = self.map(node, path, &allowed)?;
        let mut variant = Variant {
            name: name.to_string(),
            includes: Vec::new(),
            copies: Vec::new(),
            common: CommonConfig::default(),
        };
        self.common_into(&entries, path, &mut variant.common);
        for (k, v) in &entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "includes" => variant.includes = self.string_list(v, &child).unwrap_or_default(),
                "copies" => variant.copies = self.artifacts(v, &child, false),
                _ => {}
            }
        }
        Some(variant)
    }

    /// Overlays the common keys present in `entries` onto `c` (a plain decode: only the
    /// keys given are overwritten, field by field for `lives` and `runs`).
    fn common_into(&mut self, entries: &[(&Key, &Node)], path: &str, c: &mut CommonConfig) {
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "base" => c.base = self.nullable_string(v, &child),
                "arguments" => c.arguments = self.string_map(v, &child),
                "apt" => c.apt = self.apt(v, &child),
                "builder" => c.builder = self.custom_builder(v, &child),
                "builders" => c.builders = self.builders(v, &child),
                "node" => c.node = self.node(v, &child),
                "php" => c.php = self.php(v, &child),
                "python" => c.python = self.python(v, &child),
                "lives" => self.lives_into(v, &child, &mut c.lives),
                "runs" => self.runs_into(v, &child, &mut c.runs),
                "entrypoint" => c.entrypoint = self.string_list(v, &child),
                _ => {}
            }
        }
    }

    fn user_field(&mut self, key: &str, v: &Node, path: &str, user: &mut UserConfig) {
        match key {
            "as" => {
                if let Some(s) = self.string(v, path) {
                    user.name = s;
                }
            }
            "uid" => {
                if let Some(n) = self.uint32(v, path) {
                    user.uid = n;
                }
            }
            "gid" => {
                if let Some(n) = self.uint32(v, path) {
                    user.gid = n;
                }
            }
            _ => {}
        }
    }

    fn lives_into(&mut self, node: &Node, path: &str, lives: &mut LivesConfig) {
        let Some(entries) = self.map(node, path, &["in", "as", "uid", "gid"]) else {
            return;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            if k.name == "in" {
                if let Some(s) = self.string(v, &child) {
                    lives.dir = s;
                }
            } else {
                self.user_field(&k.name, v, &child, &mut lives.user);
            }
        }
    }

    fn runs_into(&mut self, node: &Node, path: &str, runs: &mut RunsConfig) {
        let allowed = ["in", "as", "uid", "gid", "environment", "insecurely"];
        let Some(entries) = self.map(node, path, &allowed) else {
            return;
        };
        for (k, v) in entries {
            let child = join(path, &k.name);
            match k.name.as_str() {
                "in" => {
                    if let Some(s) = self.string(v, &child) {
                        runs.dir = s;
                    }
                }
                "environment" => runs.environment = self.string_map(v, &child),
                "insecurely" => runs.insecurely = self.flag(v, &child),
                other => self.user_field(other, v, &child, &mut runs.user),
            }
        }
    }
}

/// Blubber's defaults, decoded before the user's top level (§1 step 4).
pub fn defaults() -> CommonConfig {
    CommonConfig {
        lives: LivesConfig {
            dir: "/srv/app".into(),
            user: UserConfig {
                name: "somebody".into(),
                uid: 65533,
                gid: 65533,
            },
        },
        runs: RunsConfig {
            user: UserConfig {
                name: "runuser".into(),
                uid: 900,
                gid: 900,
            },
            ..RunsConfig::default()
        },
        ..CommonConfig::default()
    }
}
