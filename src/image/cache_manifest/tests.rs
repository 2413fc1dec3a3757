use super::*;
use crate::image::digest::sha256_digest;

fn key(n: u8) -> String {
    crate::image::digest::sha256(&[n])
}

fn layer(name: &str) -> CachedLayer {
    CachedLayer {
        digest: sha256_digest(name.as_bytes()),
        size: name.len() as u64,
        diff_id: sha256_digest(format!("tar of {name}").as_bytes()),
        tar_size: 1024,
        empty: false,
    }
}

fn record(layer: Option<CachedLayer>, created_by: &str) -> CacheRecord {
    CacheRecord {
        layer,
        created_by: created_by.into(),
    }
}

fn records(items: &[(u8, Option<&str>, &str)]) -> CacheRecords {
    let mut out = CacheRecords::new();
    for (k, l, by) in items {
        out.insert(&key(*k), record(l.map(layer), by)).unwrap();
    }
    out
}

#[test]
fn round_trip_shares_layers_and_keeps_layerless_records() {
    let recs = records(&[
        (1, Some("apt"), "RUN apt-get install"),
        (2, None, "ENV A=1"),
        (3, Some("apt"), "RUN apt-get install (again)"),
        (4, Some("npm"), "RUN npm ci"),
    ]);
    let docs = recs.to_documents().unwrap();
    assert_eq!(
        docs.manifest.layers().len(),
        2,
        "one blob per distinct layer"
    );
    assert_eq!(
        docs.manifest.config().media_type().to_string(),
        CACHE_CONFIG_MEDIA_TYPE
    );
    let back = CacheRecords::from_documents(&docs.manifest, &docs.config).unwrap();
    assert_eq!(back, recs);
    let text = String::from_utf8(docs.config.clone()).unwrap();
    assert!(text.contains("\"diffID\":\"sha256:"), "{text}");
}

#[test]
fn encoding_is_canonical() {
    let a = records(&[(1, Some("a"), "x"), (2, Some("b"), "y"), (3, None, "z")]);
    let b = records(&[(3, None, "z"), (2, Some("b"), "y"), (1, Some("a"), "x")]);
    let (da, db) = (a.to_documents().unwrap(), b.to_documents().unwrap());
    assert_eq!(da.config, db.config);
    assert_eq!(da.manifest_bytes, db.manifest_bytes);
    let digests: Vec<String> = da
        .manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    let mut sorted = digests.clone();
    sorted.sort();
    assert_eq!(digests, sorted, "layers sorted by digest");
    let changed = records(&[(1, Some("a"), "x"), (2, Some("b"), "y"), (3, None, "zz")]);
    assert_ne!(changed.to_documents().unwrap().config, da.config);
}

#[test]
fn merge_unions_and_the_new_writer_wins() {
    let existing = records(&[(1, Some("old"), "a"), (2, Some("shared"), "b")]);
    let new = records(&[
        (1, Some("new"), "a"),
        (3, Some("shared"), "c"),
        (4, None, "d"),
    ]);
    let merged = CacheRecords::merge(&existing, &new);
    assert_eq!(merged.len(), 4);
    assert_eq!(merged.get(&key(1)).unwrap().layer, Some(layer("new")));
    assert_eq!(merged.get(&key(2)).unwrap().layer, Some(layer("shared")));
    for (k, r) in new.iter() {
        assert_eq!(merged.get(k), Some(r), "nothing the writer built is lost");
    }
    let docs = merged.to_documents().unwrap();
    assert_eq!(
        docs.manifest.layers().len(),
        2,
        "old layer dropped, shared once"
    );
}

#[test]
fn merge_takes_the_new_writers_description_of_a_blob() {
    let mut wrong = layer("blob");
    wrong.diff_id = sha256_digest(b"wrong");
    let mut existing = CacheRecords::new();
    existing
        .insert(&key(1), record(Some(wrong.clone()), "a"))
        .unwrap();
    let new = records(&[(2, Some("blob"), "b")]);
    let merged = CacheRecords::merge(&existing, &new);
    assert_eq!(merged.get(&key(1)).unwrap().layer, Some(layer("blob")));
    merged.to_documents().unwrap();
    let mut both = new.clone();
    both.insert(&key(1), record(Some(wrong), "a")).unwrap();
    assert!(matches!(
        both.to_documents(),
        Err(CacheFormatError::Invalid(_))
    ));
}

#[test]
fn refuses_bad_keys_and_inconsistent_documents() {
    let mut recs = CacheRecords::new();
    for bad in ["../../etc/passwd", "ABC", ""] {
        assert!(recs.insert(bad, record(None, "x")).is_err(), "{bad}");
    }
    let docs = records(&[(1, Some("a"), "x")]).to_documents().unwrap();
    let config = String::from_utf8(docs.config.clone()).unwrap();

    let bad_key = config.replace(&key(1), "../x");
    let err = CacheRecords::from_documents(&docs.manifest, bad_key.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("bad cache key"), "{err}");

    let bad_index = config.replace("\"layer\":0", "\"layer\":7");
    let err = CacheRecords::from_documents(&docs.manifest, bad_index.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("layer 7"), "{err}");

    let other = records(&[(1, Some("b"), "x")]).to_documents().unwrap();
    let err = CacheRecords::from_documents(&other.manifest, &docs.config).unwrap_err();
    assert!(err.to_string().contains("in the manifest"), "{err}");

    let image =
        crate::image::oci::new_manifest(crate::image::oci::ImageFormat::Oci, b"{}", &[]).unwrap();
    assert!(matches!(
        CacheRecords::from_documents(&image, b"{}"),
        Err(CacheFormatError::NotACache(_))
    ));
}

#[test]
fn cache_mount_records_are_annotated_and_merge_per_id() {
    let mut recs = records(&[(1, Some("npm"), "RUN npm ci")]);
    let id = "flense-tool-cache/npm/65533:65533";
    let mount = CacheRecord::mount(id, layer("npm cache v1"));
    recs.insert(&mount_key(id), mount.clone()).unwrap();
    assert_eq!(mount.mount_id(&mount_key(id)), Some(id));
    assert_eq!(mount.mount_id(&key(1)), None, "only under its own key");
    let docs = recs.to_documents().unwrap();
    let annotated: Vec<_> = docs
        .manifest
        .layers()
        .iter()
        .filter_map(|d| d.annotations().as_ref()?.get(CACHE_MOUNT_ANNOTATION))
        .collect();
    assert_eq!(annotated, [id]);
    let back = CacheRecords::from_documents(&docs.manifest, &docs.config).unwrap();
    assert_eq!(back, recs);

    // Another runner's newer contents of the same cache win; the step stays.
    let mut newer = CacheRecords::new();
    let v2 = CacheRecord::mount(id, layer("npm cache v2"));
    newer.insert(&mount_key(id), v2.clone()).unwrap();
    let merged = CacheRecords::merge(&back, &newer);
    assert_eq!(merged.get(&mount_key(id)), Some(&v2));
    assert_eq!(merged.len(), 2);
}
