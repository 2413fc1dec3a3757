//! The blubber.yaml front end: bytes -> UTF-8 check -> parse, validate, expand and
//! compile every variant, as `flense validate` and `flense dockerfile` do. Any outcome
//! but a panic (or a hang) is fine: errors are the invalid-input path (exit 2).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(e) => {
            let pos = flense::config::Pos::at_byte(data, e.valid_up_to());
            assert!(pos.line >= 1 && pos.col >= 1);
            return;
        }
    };
    let Ok(config) = flense::config::load_str(text, "blubber.yaml") else {
        return;
    };
    let _ = config.warnings();
    if config.check_all().is_err() {
        return;
    }
    let options = flense::plan::CompileOptions::default();
    for name in config.variant_names() {
        if let Ok(plan) = flense::plan::compile(&config, name, &options) {
            let _ = flense::plan::dockerfile::render(&plan);
            let _ = flense::plan::summary::render(&plan);
        }
    }
});
