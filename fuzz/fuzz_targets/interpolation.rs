//! The `${...}` lexer and interpolation of a string in a scope with a few bindings.
#![no_main]

use std::collections::BTreeMap;

use flense::pipeline::interp::{Namespace, Scope};
use libfuzzer_sys::fuzz_target;
use serde_yaml::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tokens) = flense::pipeline::lexer::lex(text) {
        assert!(!tokens.is_empty() || text.is_empty());
    }
    let mut own = Namespace::new();
    own.insert("imageID".into(), Value::String("sha256:0".into()));
    let mut setup = Namespace::new();
    setup.insert("tag".into(), Value::String("v1".into()));
    let ancestors = BTreeMap::from([("setup".to_string(), setup)]);
    let scope = Scope::new("test", own, ancestors, "setup -> test".into());
    let _ = scope.interpolate_str(text);
    let _ = scope.interpolate(&Value::String(text.to_string()));
});
