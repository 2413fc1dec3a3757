//! Image references: parsing, and that a parsed reference prints as text that parses
//! back to the same reference.
#![no_main]

use flense::image::reference::{names_registry, valid_tag, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = names_registry(text);
    let _ = valid_tag(text);
    let Ok(reference) = Reference::parse(text) else {
        return;
    };
    let printed = reference.to_string();
    let again = Reference::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, reference, "{text:?} -> {printed:?}");
    let _ = reference.manifest_reference();
});
