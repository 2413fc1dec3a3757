//! The registry client library against a real `docker-registry`, with images put there
//! by skopeo (an independent producer) and checked by skopeo (an independent consumer).

mod support;

use flense::image::platform::Platform;
use flense::image::reference::Reference;
use flense::registry::{pull, push, LocalImage, NoProgress, PushOptions};
use support::registry::{
    amd64, anonymous_client, multi_platform_image, simple_image, DirStore, TestRegistry,
};

#[test]
fn pulls_oci_image_by_tag_and_digest_then_pushes_it_back() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "base/busybox:v1", &[]);

    let store = DirStore::new(&tmp.path().join("store"));
    let r = Reference::parse(&reg.image("base/busybox:v1")).unwrap();
    let pulled = pull(&anonymous_client(), &r, &amd64(), &store, &NoProgress).unwrap();
    assert_eq!(pulled.digest.to_string(), image.digest);
    assert_eq!(pulled.blobs.len(), 2);
    for blob in &pulled.blobs {
        assert!(store.blobs().contains(&blob.digest().to_string()));
    }
    assert!(store.blobs().contains(&image.digest));

    let by_digest =
        Reference::parse(&reg.image(&format!("base/busybox@{}", image.digest))).unwrap();
    let again = pull(
        &anonymous_client(),
        &by_digest,
        &amd64(),
        &store,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(again.manifest, pulled.manifest);

    // Push to another repository: the same manifest digest and layer digests arrive.
    let dest = Reference::parse(&reg.image("copy/busybox:v2")).unwrap();
    let local = LocalImage {
        media_type: pulled.media_type.clone(),
        manifest: pulled.manifest.clone(),
    };
    let digest = push(
        &anonymous_client(),
        &dest,
        &local,
        &store,
        &PushOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(digest.to_string(), image.digest);
    assert_eq!(reg.raw_manifest("copy/busybox:v2"), pulled.manifest);
}

#[test]
fn pulls_docker_v2s2_image() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = simple_image(&tmp.path().join("layout"), "v1");
    image.push_with_skopeo(&reg, "docker/busybox:v1", &["--format", "v2s2"]);
    let store = DirStore::new(&tmp.path().join("store"));
    let r = Reference::parse(&reg.image("docker/busybox:v1")).unwrap();
    let pulled = pull(&anonymous_client(), &r, &amd64(), &store, &NoProgress).unwrap();
    assert_eq!(
        pulled.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(pulled.manifest, reg.raw_manifest("docker/busybox:v1"));
    // The layer blob is the very same compressed bytes.
    assert_eq!(
        pulled.blobs[1].digest().to_string(),
        image.manifests[0].2[0]
    );
}

#[test]
fn picks_the_platform_from_an_index() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = multi_platform_image(&tmp.path().join("layout"), "multi");
    image.push_with_skopeo(&reg, "multi/busybox:1", &["--all"]);
    let r = Reference::parse(&reg.image("multi/busybox:1")).unwrap();
    for (arch, manifest_digest, layers) in &image.manifests {
        let store = DirStore::new(&tmp.path().join(format!("store-{arch}")));
        let platform: Platform = format!("linux/{arch}").parse().unwrap();
        let pulled = pull(&anonymous_client(), &r, &platform, &store, &NoProgress).unwrap();
        assert_eq!(&pulled.digest.to_string(), manifest_digest, "{arch}");
        assert_eq!(
            pulled.index_digest.as_ref().unwrap().to_string(),
            image.digest
        );
        assert!(store.blobs().contains(&layers[0]));
        let other = image.manifests.iter().find(|m| &m.0 != arch).unwrap();
        assert!(
            !store.blobs().contains(&other.2[0]),
            "only {arch} layers are pulled"
        );
    }
    let store = DirStore::new(&tmp.path().join("store-s390x"));
    let err = pull(
        &anonymous_client(),
        &r,
        &"linux/s390x".parse().unwrap(),
        &store,
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64, linux/amd64"),
        "{err}"
    );
}

#[test]
fn missing_image_is_a_clear_error() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::new(tmp.path());
    let r = Reference::parse(&reg.image("nothing/here:1")).unwrap();
    let err = pull(&anonymous_client(), &r, &amd64(), &store, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("manifest 1 not found") && err.contains("nothing/here"),
        "{err}"
    );
}
