//! `WWW-Authenticate` challenges of registries.
#![no_main]

use flense::registry::auth::Challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = Challenge::parse(header);
    }
});
