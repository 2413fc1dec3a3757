//! The config.yaml front end: parse, schema and rule validation, execution graphs, as
//! `flense pipeline --list` does before running anything.
#![no_main]

use std::path::Path;

use flense::pipeline::model::{load_str, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(".pipeline/config.yaml");
    for strict in [false, true] {
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
});
