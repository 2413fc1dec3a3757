//! Fault injection: a proxy in front of a real registry answers 500, cuts uploads and
//! downloads mid-way, or corrupts blobs. Push and pull must get through transient
//! faults, and a corrupt blob must never enter the store.

mod support;

use flense::image::reference::Reference;
use flense::registry::{pull, push, LocalImage, NoProgress, PulledImage, PushOptions};
use support::registry::{
    amd64, anonymous_client, simple_image, DirStore, Fault, FaultProxy, TestRegistry,
};

/// A registry holding `base/busybox:v1` (pushed by skopeo) and a store with it pulled.
fn setup(tmp: &std::path::Path) -> (TestRegistry, DirStore, PulledImage) {
    let reg = TestRegistry::start();
    let image = simple_image(&tmp.join("layout"), "v1");
    image.push_with_skopeo(&reg, "base/busybox:v1", &[]);
    let store = DirStore::new(&tmp.join("store"));
    let r = Reference::parse(&reg.image("base/busybox:v1")).unwrap();
    let pulled = pull(&anonymous_client(), &r, &amd64(), &store, &NoProgress).unwrap();
    (reg, store, pulled)
}

fn push_through(proxy: &FaultProxy, store: &DirStore, pulled: &PulledImage, repo: &str) -> String {
    push_in_chunks(
        proxy,
        store,
        pulled,
        repo,
        PushOptions::default().chunk_size,
    )
}

fn push_in_chunks(
    proxy: &FaultProxy,
    store: &DirStore,
    pulled: &PulledImage,
    repo: &str,
    chunk_size: u64,
) -> String {
    let dest = Reference::parse(&format!("{}/{repo}", proxy.addr)).unwrap();
    let local = LocalImage {
        media_type: pulled.media_type.clone(),
        manifest: pulled.manifest.clone(),
    };
    let options = PushOptions {
        chunk_size,
        ..PushOptions::default()
    };
    push(
        &anonymous_client(),
        &dest,
        &local,
        store,
        &options,
        &NoProgress,
    )
    .unwrap()
    .to_string()
}

#[test]
fn push_survives_server_errors_and_cut_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, store, pulled) = setup(tmp.path());
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![
            Fault::ServerError {
                method: "POST",
                path: "/blobs/uploads/".into(),
                times: 2,
            },
            Fault::CutRequest {
                method: "PATCH",
                path: "/blobs/uploads/".into(),
                times: 1,
            },
            Fault::ServerError {
                method: "PATCH",
                path: "/blobs/uploads/".into(),
                times: 1,
            },
            Fault::ServerError {
                method: "PUT",
                path: "/manifests/".into(),
                times: 1,
            },
        ],
    );
    let digest = push_through(&proxy, &store, &pulled, "pushed/busybox:v1");
    assert_eq!(digest, pulled.digest.to_string());
    for i in 0..4 {
        assert!(proxy.fired(i) > 0, "fault {i} never fired");
    }
    // The registry (asked directly, by skopeo) has exactly the pushed manifest.
    assert_eq!(reg.raw_manifest("pushed/busybox:v1"), pulled.manifest);
    reg.copy_out_with_skopeo("pushed/busybox:v1", &tmp.path().join("check"), "check", &[]);
}

#[test]
fn chunked_push_resumes_from_the_offset_the_registry_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, store, pulled) = setup(tmp.path());
    // The busybox layer is about 1 MiB: 64 KiB chunks make ~16 PATCH requests; the 5th
    // fails, so the client must ask for the upload status and go on from there.
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![
            Fault::ServerErrorAfter {
                method: "PATCH",
                path: "/blobs/uploads/".into(),
                skip: 4,
            },
            // Never injected: counts upload sessions started.
            Fault::ServerError {
                method: "POST",
                path: "/blobs/uploads/".into(),
                times: 0,
            },
        ],
    );
    let digest = push_in_chunks(&proxy, &store, &pulled, "chunked/busybox:v1", 64 * 1024);
    assert_eq!(digest, pulled.digest.to_string());
    assert_eq!(proxy.fired(0), 1);
    assert!(
        proxy.seen(0) > 10,
        "expected many chunks, saw {}",
        proxy.seen(0)
    );
    assert_eq!(reg.raw_manifest("chunked/busybox:v1"), pulled.manifest);
    // The registry verified the layer digest at completion; skopeo reads it back.
    reg.copy_out_with_skopeo(
        "chunked/busybox:v1",
        &tmp.path().join("check"),
        "check",
        &[],
    );
}

#[test]
fn pull_retries_a_download_cut_short() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, _, pulled) = setup(tmp.path());
    let layer = pulled.blobs[1].digest().to_string();
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![Fault::CutResponse {
            method: "GET",
            path: format!("/blobs/{layer}"),
            times: 1,
        }],
    );
    let store = DirStore::new(&tmp.path().join("store2"));
    let r = Reference::parse(&format!("{}/base/busybox:v1", proxy.addr)).unwrap();
    let again = pull(&anonymous_client(), &r, &amd64(), &store, &NoProgress).unwrap();
    assert_eq!(proxy.fired(0), 1);
    assert_eq!(again.digest, pulled.digest);
    assert!(store.blobs().contains(&layer));
}

#[test]
fn corrupt_blob_is_refused_and_never_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let (reg, _, pulled) = setup(tmp.path());
    let layer = pulled.blobs[1].digest().to_string();
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![Fault::CorruptResponse {
            method: "GET",
            path: format!("/blobs/{layer}"),
        }],
    );
    let store = DirStore::new(&tmp.path().join("store2"));
    let r = Reference::parse(&format!("{}/base/busybox:v1", proxy.addr)).unwrap();
    let err = pull(&anonymous_client(), &r, &amd64(), &store, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&layer) && err.contains("content has digest"),
        "{err}"
    );
    assert!(
        !store.blobs().contains(&layer),
        "corrupt layer entered the store"
    );
    assert!(
        !store.blobs().contains(&pulled.digest.to_string()),
        "manifest stored"
    );
    let leftovers = std::fs::read_dir(store.dir.join("tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "staging files left behind");
}
