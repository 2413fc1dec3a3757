//! Tar extraction of a layer into a temporary directory: whatever the archive holds,
//! nothing may appear outside the target (a sibling directory stays empty, the parent
//! holds nothing new).
#![no_main]

use std::fs;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parent = tempfile::tempdir().expect("temp dir");
    let target = parent.path().join("root");
    let sibling = parent.path().join("outside");
    fs::create_dir(&target).unwrap();
    fs::create_dir(&sibling).unwrap();
    let _ = flense::store::extract::extract_tar_with_threads(data, &target, 1);
    let mut names: Vec<_> = fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["outside", "root"],
        "something landed next to the target"
    );
    assert_eq!(
        fs::read_dir(&sibling).unwrap().count(),
        0,
        "something landed outside"
    );
    // Make the tree removable whatever modes the archive gave it.
    for entry in walkdir::WalkDir::new(&target).into_iter().flatten() {
        if entry.file_type().is_dir() {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o755));
        }
    }
});
