//! The front ends as the fuzz targets (`fuzz/`) and the mutation tests
//! (`tests/mutated_configs.rs`) drive them: whole inputs from bytes to the last check that
//! needs no I/O. Errors are the expected outcome for most inputs; only a panic or a hang
//! is a bug. Not a stable API.

use std::path::Path;

use crate::pipeline::model::{load_str, LoadOptions};

/// A `blubber.yaml` as `flense validate` and `flense dockerfile` read it: UTF-8 (with the
/// position of the first bad byte), parse, validation, warnings, every variant expanded,
/// compiled and rendered as a Dockerfile and a summary.
pub fn blubber_front_end(data: &[u8]) {
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(e) => {
            let pos = crate::config::Pos::at_byte(data, e.valid_up_to());
            assert!(pos.line >= 1 && pos.col >= 1, "{pos:?}");
            return;
        }
    };
    let Ok(config) = crate::config::load_str(text, "blubber.yaml") else {
        return;
    };
    let _ = config.warnings();
    if config.check_all().is_err() {
        return;
    }
    let options = crate::plan::CompileOptions::default();
    for name in config.variant_names() {
        if let Ok(plan) = crate::plan::compile(&config, name, &options) {
            let _ = crate::plan::dockerfile::render(&plan);
            let _ = crate::plan::summary::render(&plan);
        }
    }
}

/// A `.pipeline/config.yaml` as `flense pipeline --list` reads it: UTF-8, parse, schema
/// (lenient, and `--strict` when `strict_too`), the code's rules and the execution graphs.
pub fn pipeline_front_end(data: &[u8], strict_too: bool) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(".pipeline/config.yaml");
    for strict in [false, true].into_iter().take(1 + usize::from(strict_too)) {
        let opts = LoadOptions {
            strict,
            allowed_actions: None,
        };
        if let Ok(config) = load_str(path, text, &[], &opts) {
            for pipeline in &config.pipelines {
                let _ = pipeline.frames();
            }
        }
    }
}
