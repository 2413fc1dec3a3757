//! Helpers shared by the integration tests. Each test file that needs them declares
//! `mod support;`; not every file uses every helper.
#![allow(dead_code)]

#[allow(unused_imports)] // not every test file uses the test user
pub use flense_test_support::users;

pub mod cli;
pub mod fixtures;
pub mod registry;
pub mod sbom;
pub mod unpacked;
