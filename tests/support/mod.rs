//! Helpers shared by the integration tests. Each test file that needs them declares
//! `mod support;`; not every file uses every helper.
#![allow(dead_code)]

pub mod cli;
pub mod fixtures;
pub mod registry;
pub mod unpacked;
pub mod users;
