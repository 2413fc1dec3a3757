//! The config.yaml front end: parse, schema and rule validation, execution graphs, as
//! `flense pipeline --list` does before running anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flense::fuzzing::pipeline_front_end(data, true));
