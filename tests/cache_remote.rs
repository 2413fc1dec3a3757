//! The shared build cache's transports against a real `docker-registry` and a real OCI
//! layout directory: export from one store, load and fetch into another (two stores
//! stand for two CI runners), merging, concurrent exporters, missing caches, and lost
//! or corrupt blobs (a miss, never a wrong layer). `skopeo` reads the cache manifests.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Barrier;

use flense::image::cache_manifest::{CacheRecord, CacheRecords, CachedLayer};
use flense::image::cache_ref::CacheRef;
use flense::image::digest::{sha256, sha256_digest};
use flense::image::{Content, EntryKind, LayerEntry, LayerOptions};
use flense::registry::Client;
use flense::store::{open_remote_cache, RemoteCache, Store};
use support::registry::{anonymous_client, TestRegistry};

const CONFIG_TYPE: &str = "application/vnd.flense.cache.config.v1+json";

fn key(label: &str) -> String {
    sha256(label.as_bytes())
}

/// Writes a one-file layer into `store`; returns it as a cache layer.
fn layer(store: &Store, content: &str) -> CachedLayer {
    let entries = vec![LayerEntry {
        path: format!("srv/{}", sha256(content.as_bytes())).into(),
        kind: EntryKind::File(Content::Bytes(content.as_bytes().to_vec())),
        mode: 0o644,
        uid: 900,
        gid: 900,
        mtime: 0,
        xattrs: vec![],
    }];
    let d = store
        .write_layer(entries, &LayerOptions::default())
        .unwrap();
    CachedLayer {
        digest: d.digest.to_string(),
        size: d.size,
        diff_id: d.diff_id.to_string(),
        tar_size: d.tar_size,
        empty: false,
    }
}

/// Records of steps `labels` in `store`: each with a layer of its own, plus one step
/// without a layer.
fn build(store: &Store, labels: &[&str]) -> CacheRecords {
    let mut records = CacheRecords::new();
    for label in labels {
        let record = CacheRecord {
            layer: Some(layer(store, label)),
            created_by: format!("RUN {label}"),
        };
        records.insert(&key(label), record).unwrap();
    }
    let env = CacheRecord {
        layer: None,
        created_by: format!("ENV AFTER={}", labels.join(",")),
    };
    records
        .insert(&key(&format!("env {}", labels.join("+"))), env)
        .unwrap();
    records
}

fn store(dir: &Path, name: &str) -> Store {
    Store::open(&dir.join(name)).unwrap()
}

fn cache<'c>(reference: &str, client: &'c Client) -> Box<dyn RemoteCache + 'c> {
    open_remote_cache(&CacheRef::parse(reference).unwrap(), client)
}

fn skopeo_raw(args: &[&str]) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .args(args)
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Exports from runner A, loads and fetches into runner B's empty store, and checks
/// what skopeo reads (`raw` gives the manifest) and that a repeated export is a no-op.
fn round_trip(reference: &str, raw: impl Fn() -> serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (store(tmp.path(), "a"), store(tmp.path(), "b"));
    let client = anonymous_client();
    let records = build(&a, &["apt", "npm"]);
    let first = cache(reference, &client).export(&records, &a).unwrap();
    assert_eq!((first.records, first.layers_sent), (3, 2), "{first:?}");

    let fresh = anonymous_client();
    let remote = cache(reference, &fresh);
    let loaded = remote.load().unwrap().expect("the cache tag exists");
    assert_eq!(loaded, records);
    for (_, record) in loaded.iter() {
        let Some(l) = &record.layer else { continue };
        assert!(!b.has_blob(&l.digest));
        remote.fetch_layer(l, &b).unwrap();
        assert_eq!(sha256_digest(&b.read_blob(&l.digest).unwrap()), l.digest);
        assert_eq!(
            b.recorded_diff_id(&l.digest)
                .unwrap()
                .map(|d| d.to_string()),
            Some(l.diff_id.clone())
        );
    }

    let manifest = raw();
    assert_eq!(manifest["config"]["mediaType"], CONFIG_TYPE, "{manifest}");
    let mut digests: Vec<&str> = records.layers().iter().map(|l| l.digest.as_str()).collect();
    digests.sort();
    let listed: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, digests);

    let again = cache(reference, &client).export(&records, &a).unwrap();
    assert_eq!(again.manifest_digest, first.manifest_digest);
    assert_eq!(again.layers_sent, 0);
}

#[test]
fn registry_round_trip_between_two_stores() {
    let registry = TestRegistry::start();
    let reference = registry.image("team/cache");
    round_trip(&reference, || {
        let raw = registry.raw_manifest("team/cache:buildcache");
        serde_json::from_slice(&raw).unwrap()
    });
}

#[test]
fn oci_dir_round_trip_between_two_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache dir");
    let reference = format!("oci:{}:main", dir.display());
    round_trip(&reference, || {
        skopeo_raw(&[&format!("oci:{}:main", dir.display())])
    });
}

/// Two exports to one tag accumulate; the second writer wins on a shared key.
fn merges_exports(reference: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (store(tmp.path(), "a"), store(tmp.path(), "b"));
    let client = anonymous_client();
    let first = build(&a, &["base", "shared"]);
    let mut second = build(&b, &["other"]);
    let rebuilt = CacheRecord {
        layer: Some(layer(&b, "shared, built again")),
        created_by: "RUN shared".into(),
    };
    second.insert(&key("shared"), rebuilt.clone()).unwrap();
    cache(reference, &client).export(&first, &a).unwrap();
    let report = cache(reference, &client).export(&second, &b).unwrap();
    assert_eq!(report.records, 5, "{report:?}");
    let loaded = cache(reference, &client).load().unwrap().unwrap();
    for (k, r) in second.iter() {
        assert_eq!(loaded.get(k), Some(r));
    }
    assert_eq!(loaded.get(&key("shared")), Some(&rebuilt));
    assert_eq!(loaded.get(&key("base")), first.get(&key("base")));
    assert_eq!(loaded.layers().len(), 3, "the replaced layer is dropped");
}

#[test]
fn exports_merge_in_a_registry_and_a_directory() {
    let registry = TestRegistry::start();
    merges_exports(&registry.image("merge/cache:t"));
    let tmp = tempfile::tempdir().unwrap();
    merges_exports(&format!("oci:{}", tmp.path().join("layout").display()));
}

/// Two runners export to one tag at the same moment, a few times over: every record
/// of both ends up in the tag.
fn concurrent_exports(reference: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let client = anonymous_client();
    let writers = ["x", "y"];
    let rounds = 3;
    let barrier = Barrier::new(writers.len());
    let all: Vec<CacheRecords> = std::thread::scope(|scope| {
        let handles: Vec<_> = writers
            .iter()
            .map(|w| {
                let (client, barrier, tmp) = (&client, &barrier, tmp.path());
                scope.spawn(move || {
                    let st = store(tmp, w);
                    let mut mine = CacheRecords::new();
                    for round in 0..rounds {
                        let built = build(&st, &[&format!("{w}{round}")]);
                        barrier.wait();
                        cache(reference, client).export(&built, &st).unwrap();
                        mine = CacheRecords::merge(&mine, &built);
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let loaded = cache(reference, &client).load().unwrap().unwrap();
    for mine in &all {
        for (k, r) in mine.iter() {
            assert_eq!(loaded.get(k), Some(r), "record {k} lost");
        }
    }
    assert_eq!(loaded.len(), writers.len() * rounds * 2);
}

#[test]
fn concurrent_exports_keep_both_writers_records() {
    let registry = TestRegistry::start();
    concurrent_exports(&registry.image("race/cache"));
    let tmp = tempfile::tempdir().unwrap();
    concurrent_exports(&format!("oci:{}:race", tmp.path().join("layout").display()));
}

#[test]
fn missing_repository_directory_or_tag_is_none() {
    let registry = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let a = store(tmp.path(), "a");
    let client = anonymous_client();
    let records = build(&a, &["one"]);
    let dir = tmp.path().join("layout");
    assert!(cache(&registry.image("nothing/here"), &client)
        .load()
        .unwrap()
        .is_none());
    let absent = format!("oci:{}", dir.display());
    assert!(cache(&absent, &client).load().unwrap().is_none());
    assert!(!dir.exists(), "loading creates nothing");

    cache(&registry.image("some/cache:a"), &client)
        .export(&records, &a)
        .unwrap();
    cache(&format!("oci:{}:a", dir.display()), &client)
        .export(&records, &a)
        .unwrap();
    for other_tag in [
        registry.image("some/cache:b"),
        format!("oci:{}:b", dir.display()),
    ] {
        assert!(cache(&other_tag, &client).load().unwrap().is_none());
    }
}

/// Replaces the bytes of a blob file with as many other bytes.
fn spoil(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    for b in bytes.iter_mut() {
        *b = !*b;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn lost_or_corrupt_blobs_in_a_directory_are_misses() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (store(tmp.path(), "a"), store(tmp.path(), "b"));
    let client = anonymous_client();
    let dir = tmp.path().join("layout");
    let reference = format!("oci:{}", dir.display());
    let mut records = build(&a, &["corrupt", "lost"]);
    let mut lying = layer(&a, "lying");
    lying.diff_id = sha256_digest(b"some other layer");
    let lie = CacheRecord {
        layer: Some(lying.clone()),
        created_by: "RUN lie".into(),
    };
    records.insert(&key("lie"), lie).unwrap();
    cache(&reference, &client).export(&records, &a).unwrap();
    let remote = cache(&reference, &client);
    let loaded = remote.load().unwrap().unwrap();
    let layer_of = |label: &str| loaded.get(&key(label)).unwrap().layer.clone().unwrap();
    let blob_file = |l: &CachedLayer| dir.join("blobs/sha256").join(&l.digest[7..]);

    let corrupt = layer_of("corrupt");
    spoil(&blob_file(&corrupt));
    let err = remote.fetch_layer(&corrupt, &b).unwrap_err();
    assert!(err.is_miss(), "{err}");
    assert!(!b.has_blob(&corrupt.digest), "nothing wrong lands");

    let lost = layer_of("lost");
    std::fs::remove_file(blob_file(&lost)).unwrap();
    let err = remote.fetch_layer(&lost, &b).unwrap_err();
    assert!(err.is_miss(), "{err}");

    let err = remote.fetch_layer(&layer_of("lie"), &b).unwrap_err();
    assert!(err.is_miss(), "{err}");
    assert_eq!(
        b.recorded_diff_id(&lying.digest).unwrap(),
        None,
        "no wrong diff-ID"
    );
}

#[test]
fn lost_or_corrupt_blobs_in_a_registry_are_misses() {
    let registry = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (store(tmp.path(), "a"), store(tmp.path(), "b"));
    let client = anonymous_client();
    let reference = registry.image("faulty/cache");
    let records = build(&a, &["corrupt", "lost"]);
    cache(&reference, &client).export(&records, &a).unwrap();
    let remote = cache(&reference, &client);
    let loaded = remote.load().unwrap().unwrap();
    let layer_of = |label: &str| loaded.get(&key(label)).unwrap().layer.clone().unwrap();
    let data = |l: &CachedLayer| {
        let hex = &l.digest[7..];
        registry
            .dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    };

    let corrupt = layer_of("corrupt");
    spoil(&data(&corrupt));
    let err = remote.fetch_layer(&corrupt, &b).unwrap_err();
    assert!(err.is_miss(), "{err}");
    assert!(!b.has_blob(&corrupt.digest), "nothing wrong lands");

    let lost = layer_of("lost");
    std::fs::remove_dir_all(data(&lost).parent().unwrap()).unwrap();
    let err = remote.fetch_layer(&lost, &b).unwrap_err();
    assert!(err.is_miss(), "{err}");
}
