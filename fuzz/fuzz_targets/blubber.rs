//! The blubber.yaml front end: bytes -> UTF-8 check -> parse, validate, expand and
//! compile every variant, as `flense validate` and `flense dockerfile` do. Any outcome
//! but a panic (or a hang) is fine: errors are the invalid-input path (exit 2).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flense::fuzzing::blubber_front_end(data));
