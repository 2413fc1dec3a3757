//! Unit tests of the parent module.
use super::*;

#[test]
fn keys_chain_through_parents() {
    let a = CacheKey::root("sha256:abc", 0);
    let b = CacheKey::derive(Some(&a), "RUN npm install", &[b"lock"]);
    assert_eq!(b, CacheKey::derive(Some(&a), "RUN npm install", &[b"lock"]));
    assert_ne!(
        b,
        CacheKey::derive(Some(&a), "RUN npm install", &[b"lock2"])
    );
    assert_ne!(
        b,
        CacheKey::derive(Some(&CacheKey::root("x", 0)), "RUN npm install", &[b"lock"])
    );
    // The epoch clamps every mtime below the base: a key of its own, 0 as before.
    assert_eq!(
        CacheKey::root("x", 0),
        CacheKey::derive(None, "base", &[b"x"])
    );
    assert_ne!(CacheKey::root("x", 0), CacheKey::root("x", 1700000000));
    // Field boundaries matter: ("ab","c") differs from ("a","bc").
    assert_ne!(
        CacheKey::derive(None, "ab", &[b"c"]),
        CacheKey::derive(None, "a", &[b"bc"])
    );
}

#[test]
fn stat_cache_skips_unchanged_files_and_survives_reload() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let f = data.path().join("a.txt");
    fs::write(&f, "hello").unwrap();
    let mut sc = StatCache::load(&Store::open(store.path()).unwrap());
    let h1 = sc.sha256(&f).unwrap();
    assert_eq!(
        h1,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!((sc.hashed, sc.reused), (1, 0));
    sc.save().unwrap();
    let mut sc = StatCache::load(&Store::open(store.path()).unwrap());
    assert_eq!(sc.sha256(&f).unwrap(), h1);
    assert_eq!((sc.hashed, sc.reused), (0, 1));
    // A change of content (and size) is noticed.
    fs::write(&f, "hello, world").unwrap();
    assert_ne!(sc.sha256(&f).unwrap(), h1);
    assert_eq!(sc.hashed, 1);
}

#[test]
fn stat_cache_appends_changed_records_and_skips_torn_lines() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let open = || StatCache::load(&Store::open(store.path()).unwrap());
    let files: Vec<_> = (0..10).map(|i| data.path().join(format!("f{i}"))).collect();
    for f in &files {
        fs::write(f, f.display().to_string()).unwrap();
    }
    let mut sc = open();
    for f in &files {
        sc.sha256(f).unwrap();
    }
    sc.save().unwrap();
    let file = Store::open(store.path()).unwrap().stat_cache_file();
    let written = fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), 10);

    // One changed file: its record is appended, not the file rewritten.
    fs::write(&files[3], "changed, and longer").unwrap();
    let mut sc = open();
    let changed = sc.sha256(&files[3]).unwrap();
    sc.save().unwrap();
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&written), "rewritten instead of appended");
    // A killed build's torn line does not spoil what follows.
    let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(b"12 34 56 abc").unwrap();
    drop(f);
    let mut sc = open();
    assert_eq!(sc.sha256(&files[3]).unwrap(), changed);
    for f in &files {
        sc.sha256(f).unwrap();
    }
    assert_eq!((sc.hashed, sc.reused), (0, 11));

    // Many changes: the file is rewritten with one line per record.
    for f in &files {
        fs::write(f, "all new content").unwrap();
    }
    let mut sc = open();
    for f in &files {
        sc.sha256(f).unwrap();
    }
    sc.save().unwrap();
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 10, "{text}");
}

#[test]
fn entries_digest_follows_content_owner_and_clamped_mtime() {
    let data = tempfile::tempdir().unwrap();
    let f = data.path().join("x");
    fs::write(&f, "1").unwrap();
    let entry = |uid, mtime| LayerEntry {
        path: "srv/app/x".into(),
        kind: EntryKind::File(Content::File(f.clone())),
        mode: 0o644,
        uid,
        gid: uid,
        mtime,
        xattrs: vec![],
    };
    let mut sc = StatCache::in_memory();
    let d1 = entries_digest(&[entry(1, 50)], &mut sc, 10).unwrap();
    assert_eq!(
        d1,
        entries_digest(&[entry(1, 99)], &mut sc, 10).unwrap(),
        "both clamp to 10"
    );
    assert_ne!(d1, entries_digest(&[entry(2, 50)], &mut sc, 10).unwrap());
    fs::write(&f, "2").unwrap();
    assert_ne!(d1, entries_digest(&[entry(1, 50)], &mut sc, 10).unwrap());
}

#[test]
fn index_round_trip() {
    let store = tempfile::tempdir().unwrap();
    let idx = CacheIndex::open(&Store::open(store.path()).unwrap());
    let k = CacheKey::root("scratch", 0);
    assert!(idx.get(&k).is_none());
    let rec = CacheRecord {
        layer: Some(CachedLayer {
            digest: "sha256:aa".into(),
            size: 1,
            diff_id: "sha256:bb".into(),
            tar_size: 2,
            empty: false,
        }),
        created_by: "RUN x".into(),
    };
    idx.put(&k, &rec).unwrap();
    assert_eq!(idx.get(&k), Some(rec));
    idx.remove(&k);
    assert!(idx.get(&k).is_none());
}

#[test]
fn key_locks_exclude_other_holders_until_dropped() {
    let store = tempfile::tempdir().unwrap();
    let index = CacheIndex::open(&Store::open(store.path()).unwrap());
    let key = CacheKey::root("sha256:abc", 0);
    let held = index.lock(&key, "RUN x").unwrap();
    let path = store
        .path()
        .join("cache/locks")
        .join(format!("{}.lock", key.as_str()));
    let other = fs::File::open(&path).unwrap();
    assert!(fs2::FileExt::try_lock_exclusive(&other).is_err());
    // Other keys are independent.
    drop(
        index
            .lock(&CacheKey::root("sha256:def", 0), "RUN x")
            .unwrap(),
    );
    drop(held);
    assert!(fs2::FileExt::try_lock_exclusive(&other).is_ok());
}

#[test]
fn context_digests_keep_the_most_recent_records() {
    let store = tempfile::tempdir().unwrap();
    let digests = ContextDigests::open(&Store::open(store.path()).unwrap());
    assert_eq!(digests.get("m0"), None);
    for i in 0..CONTEXT_DIGESTS_KEPT + 2 {
        digests.put(&format!("m{i}"), &format!("d{i}")).unwrap();
    }
    assert_eq!(digests.get("m0"), None, "the oldest are dropped");
    assert_eq!(digests.get("m2").as_deref(), Some("d2"));
    digests.put("m2", "again").unwrap();
    assert_eq!(digests.get("m2").as_deref(), Some("again"));
    let last = CONTEXT_DIGESTS_KEPT + 1;
    assert_eq!(digests.get(&format!("m{last}")), Some(format!("d{last}")));
}

#[test]
fn only_foreign_platforms_enter_the_key() {
    let root = CacheKey::root("sha256:abc", 0);
    assert_eq!(root.clone().for_platform(None), root);
    let arm64: crate::image::platform::Platform = "linux/arm64".parse().unwrap();
    let keyed = root.clone().for_platform(Some(&arm64));
    assert_ne!(keyed, root);
    let riscv: crate::image::platform::Platform = "linux/riscv64".parse().unwrap();
    assert_ne!(keyed, root.for_platform(Some(&riscv)));
}

#[test]
fn stat_cache_reads_files_in_any_order_the_last_line_of_a_path_winning() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let names = ["b", "a b", "a", "a-b", "d/c"];
    fs::create_dir_all(data.path().join("d")).unwrap();
    let files: Vec<_> = names.iter().map(|n| data.path().join(n)).collect();
    let mut lines = String::new();
    let fake = "00".repeat(32);
    for f in &files {
        fs::write(f, f.display().to_string()).unwrap();
        let HostStat {
            size,
            mtime_ns,
            inode,
        } = HostStat::of(&fs::metadata(f).unwrap());
        let real = hex::encode(Sha256::digest(fs::read(f).unwrap()));
        // An older record first (as the file has after appends), upper-case hex too.
        lines.push_str(&format!(
            "{size} {mtime_ns} {inode} {fake} {}\n",
            f.display()
        ));
        let later = format!(
            "{size} {mtime_ns} {inode} {} {}\n",
            real.to_uppercase(),
            f.display()
        );
        lines.push_str(&later);
    }
    lines.push_str("not a record\n\n1 2 3 tooshort /x\r\n");
    let file = Store::open(store.path()).unwrap().stat_cache_file();
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, &lines).unwrap();
    let mut sc = StatCache::load(&Store::open(store.path()).unwrap());
    // Asked for in another order than the file's, the hint missing and hitting.
    for f in files.iter().rev().chain(&files) {
        let want = hex::encode(Sha256::digest(fs::read(f).unwrap()));
        assert_eq!(sc.sha256(f).unwrap(), want, "{}", f.display());
    }
    assert_eq!((sc.hashed, sc.reused), (0, 10));
    assert_eq!(sc.lines_in_file, 2 * names.len() + 3);
}

#[test]
fn stat_cache_rewrites_what_it_read_and_what_changed() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let open = || StatCache::load(&Store::open(store.path()).unwrap());
    let files: Vec<_> = (0..4).map(|i| data.path().join(format!("f{i}"))).collect();
    for f in &files {
        fs::write(f, "same").unwrap();
    }
    let mut sc = open();
    for f in &files {
        sc.sha256(f).unwrap();
    }
    sc.save().unwrap();
    // Appends until the file has more than twice its records, then one rewrite.
    for round in 0..6 {
        fs::write(&files[0], format!("round {round}")).unwrap();
        let mut sc = open();
        let want = hex::encode(Sha256::digest(format!("round {round}")));
        assert_eq!(sc.sha256(&files[0]).unwrap(), want);
        assert_eq!(sc.hashed, 1);
        sc.save().unwrap();
        // The saved records answer at once, in this cache and in the next one.
        assert_eq!(sc.sha256(&files[0]).unwrap(), want);
        let mut again = open();
        for f in &files {
            again.sha256(f).unwrap();
        }
        assert_eq!((again.hashed, again.reused), (0, 4));
    }
    let file = Store::open(store.path()).unwrap().stat_cache_file();
    let lines = fs::read_to_string(&file).unwrap().lines().count();
    assert!(lines <= 8, "{lines} lines for 4 records");
}
