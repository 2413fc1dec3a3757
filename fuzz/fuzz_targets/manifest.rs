//! Manifests, indexes and image configs as a registry or an archive serves them. The
//! first byte picks the `Content-Type` header (none, or one of the four manifest types),
//! or, past those, decodes the rest as the config blob of a two-layer build-cache manifest.
#![no_main]

use flense::registry::manifest::{image_blobs, Manifest};
use libfuzzer_sys::fuzz_target;
use oci_spec::image::ImageConfiguration;

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
];

const CACHE_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
"config":{"mediaType":"application/vnd.flense.cache.config.v1+json","size":2,
"digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":32,
"digest":"sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","size":64,
"digest":"sha256:2123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, doc)) = data.split_first() else {
        return;
    };
    let Some(&content_type) = CONTENT_TYPES.get(usize::from(selector) % (CONTENT_TYPES.len() + 1))
    else {
        let manifest = serde_json::from_str(CACHE_MANIFEST).expect("a valid manifest");
        let _ = flense::image::cache_manifest::CacheRecords::from_documents(&manifest, doc);
        return;
    };
    if let Ok((_, Manifest::Image(manifest))) = Manifest::parse(doc, content_type) {
        let _ = image_blobs(&manifest);
    }
    if let Ok(config) = serde_json::from_slice::<ImageConfiguration>(doc) {
        let stage = flense::plan::ImageConfig {
            user: Some("65533".into()),
            working_dir: "/srv/app".into(),
            entrypoint: None,
            env: vec![flense::plan::EnvVar {
                name: "PATH".into(),
                value: "/opt/bin:$PATH".into(),
            }],
            labels: Vec::new(),
        };
        let _ = flense::builder::imageconfig::final_config(Some(&config), &stage, &[], &[], 0);
    }
});
