//! `registry/cache.rs` still names the one reference parser through this module; the
//! remote-cache work imports [`crate::image::reference`] directly and removes it.

pub(crate) use crate::image::reference::Reference;
