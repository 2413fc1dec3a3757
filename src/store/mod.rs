//! The local store: blobs by digest in an OCI image layout, unpacked layers by diff-ID,
//! and the build cache.
