//! Platforms and picking one manifest out of an index: the one platform type of
//! [`crate::image::platform`].

pub use crate::image::platform::{describe_platforms, Platform, PlatformError};
