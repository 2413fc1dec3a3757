//! Unit tests of the parent module.
use super::*;
use crate::builder::layers::view::{EmptyView, LayerStackView};
use crate::image::Content;
use std::fs;

fn acct(name: &str, uid: u32, gid: u32) -> Account {
    Account {
        name: name.into(),
        uid,
        gid,
        home: PathBuf::from(format!("/home/{name}")),
    }
}

fn debian_files() -> AccountFiles {
    AccountFiles {
        passwd: Some(b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".to_vec()),
        group: Some(b"root:x:0:\nshadow:x:42:\nnogroup:x:65534:\n".to_vec()),
        shadow: Some(b"root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n".to_vec()),
        gshadow: Some(b"root:*::\nshadow:*::\nnogroup:*::\n".to_vec()),
    }
}

#[test]
fn adds_lives_and_runs_like_groupadd_and_useradd() {
    let ch = add_accounts(
        &debian_files(),
        &[acct("somebody", 65533, 65533), acct("runuser", 900, 900)],
        "/bin/sh",
        None,
    )
    .unwrap();
    let passwd = String::from_utf8(ch.files.passwd.unwrap()).unwrap();
    assert!(passwd.ends_with(
        "somebody:x:65533:65533::/home/somebody:/bin/sh\nrunuser:x:900:900::/home/runuser:/bin/sh\n"
    ));
    let group = String::from_utf8(ch.files.group.unwrap()).unwrap();
    assert!(group.ends_with("somebody:x:65533:\nrunuser:x:900:\n"));
    let shadow = String::from_utf8(ch.files.shadow.unwrap()).unwrap();
    assert!(shadow.ends_with("somebody:!:::::::\nrunuser:!:::::::\n"));
    let gshadow = String::from_utf8(ch.files.gshadow.unwrap()).unwrap();
    assert!(gshadow.ends_with("somebody:!::\nrunuser:!::\n"));
    assert_eq!(ch.homes.len(), 2);
}

#[test]
fn existing_numeric_ids_are_reused_under_their_names() {
    // gid 65534 exists as nogroup and uid 65534 as nobody: nothing is added.
    let ch = add_accounts(
        &debian_files(),
        &[acct("somebody", 65534, 65534)],
        "/bin/sh",
        None,
    )
    .unwrap();
    assert_eq!(ch.files, AccountFiles::default());
    assert!(ch.homes.is_empty());
    // gid exists but uid does not: only the user is added, in the existing group.
    let ch = add_accounts(&debian_files(), &[acct("app", 1000, 42)], "/bin/sh", None).unwrap();
    assert!(ch.files.group.is_none());
    assert!(String::from_utf8(ch.files.passwd.unwrap())
        .unwrap()
        .contains("app:x:1000:42::/home/app:/bin/sh\n"));
}

#[test]
fn a_taken_name_with_another_id_fails_like_useradd() {
    let err = add_accounts(
        &debian_files(),
        &[acct("nobody", 1234, 1234)],
        "/bin/sh",
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            UsersError::UserNameTaken {
                existing_uid: 65534,
                ..
            }
        ),
        "{err}"
    );
    let err = add_accounts(&debian_files(), &[acct("shadow", 5, 77)], "/bin/sh", None).unwrap_err();
    assert!(
        matches!(
            err,
            UsersError::GroupNameTaken {
                existing_gid: 42,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn same_ids_for_lives_and_runs_create_one_account() {
    let ch = add_accounts(
        &debian_files(),
        &[acct("somebody", 1000, 1000), acct("runuser", 1000, 1000)],
        "/bin/sh",
        None,
    )
    .unwrap();
    let passwd = String::from_utf8(ch.files.passwd.unwrap()).unwrap();
    assert!(passwd.contains("somebody:x:1000"));
    assert!(!passwd.contains("runuser"));
}

#[test]
fn without_shadow_files_only_passwd_and_group_change() {
    let files = AccountFiles {
        passwd: Some(b"root:x:0:0:root:/root:/bin/sh".to_vec()),
        group: None,
        shadow: None,
        gshadow: None,
    };
    let ch = add_accounts(
        &files,
        &[acct("somebody", 65533, 65533)],
        "/bin/ash",
        Some(3),
    )
    .unwrap();
    assert_eq!(
        ch.files.passwd.unwrap(),
        b"root:x:0:0:root:/root:/bin/sh\nsomebody:!:65533:65533::/home/somebody:/bin/ash\n"
    );
    assert_eq!(ch.files.group.unwrap(), b"somebody:!:65533:\n");
    assert!(ch.files.shadow.is_none() && ch.files.gshadow.is_none());
}

#[test]
fn malformed_lines_are_reported_with_their_line_number() {
    let files = AccountFiles {
        passwd: Some(b"root:x:0:0::/root:/bin/sh\nbroken\n".to_vec()),
        ..Default::default()
    };
    let err = add_accounts(&files, &[acct("somebody", 1, 1)], "/bin/sh", None).unwrap_err();
    assert!(err.to_string().contains("/etc/passwd: line 2"), "{err}");
}

#[test]
fn entries_include_homes_skel_and_owned_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    fs::create_dir_all(base.join("etc/skel")).unwrap();
    fs::create_dir_all(base.join("home")).unwrap();
    fs::create_dir_all(base.join("srv")).unwrap();
    let f = debian_files();
    fs::write(base.join("etc/passwd"), f.passwd.unwrap()).unwrap();
    fs::write(base.join("etc/group"), f.group.unwrap()).unwrap();
    fs::write(base.join("etc/skel/.profile"), "# profile\n").unwrap();
    let view = LayerStackView::new(vec![base.clone()]);
    let entries = user_entries(
        &view,
        &[acct("somebody", 65533, 65533), acct("runuser", 900, 900)],
        &[
            OwnedDir {
                path: "/srv/app".into(),
                uid: 65533,
                gid: 65533,
            },
            OwnedDir {
                path: "/opt/lib".into(),
                uid: 65533,
                gid: 65533,
            },
        ],
        0,
    )
    .unwrap();
    let get = |p: &str| entries.iter().find(|e| e.path == Path::new(p)).cloned();
    let home = get("home/somebody").expect("home created");
    assert_eq!((home.uid, home.gid, home.mode), (65533, 65533, 0o755));
    let profile = get("home/runuser/.profile").expect("skel copied");
    assert_eq!((profile.uid, profile.gid), (900, 900));
    assert_eq!(
        profile.kind,
        EntryKind::File(Content::File(base.join("etc/skel/.profile")))
    );
    let app = get("srv/app").unwrap();
    assert_eq!((app.uid, app.gid), (65533, 65533));
    let opt = get("opt").expect("mkdir -p creates parents");
    assert_eq!((opt.uid, opt.gid, opt.mode), (0, 0, 0o755));
    assert!(get("etc").is_some() && get("home").is_some() && get("srv").is_some());
    assert!(
        get("etc/shadow").is_none(),
        "no shadow in the base, none written"
    );
    let mut sorted = entries.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(sorted, entries);
}

#[test]
fn an_existing_home_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    fs::create_dir_all(base.join("home/somebody")).unwrap();
    fs::create_dir_all(base.join("etc/skel")).unwrap();
    fs::write(base.join("etc/skel/.bashrc"), "x").unwrap();
    fs::write(base.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let view = LayerStackView::new(vec![base]);
    let entries = user_entries(&view, &[acct("somebody", 65533, 65533)], &[], 0).unwrap();
    assert!(entries.iter().all(|e| !e.path.starts_with("home")));
}

#[test]
fn scratch_like_empty_image_gets_fresh_files() {
    let entries = user_entries(&EmptyView, &[acct("somebody", 10, 10)], &[], 0).unwrap();
    let passwd = entries
        .iter()
        .find(|e| e.path == Path::new("etc/passwd"))
        .unwrap();
    assert_eq!(
        passwd.kind,
        EntryKind::File(Content::Bytes(
            b"somebody:!:10:10::/home/somebody:/bin/sh\n".to_vec()
        ))
    );
    assert_eq!(passwd.mode, 0o644);
}

#[test]
fn recognises_blubbers_lives_and_runs_macros() {
    let lives = r#"(getent group "65533" || groupadd -o -g "65533" -r "somebody") && (getent passwd "65533" || useradd -l -o -m -d "/home/somebody" -r -g "65533" -u "65533" "somebody") && mkdir -p "/srv/app" && chown "65533":"65533" "/srv/app" && mkdir -p "/opt/lib" && chown "65533":"65533" "/opt/lib""#;
    let step = parse_user_step(lives).expect("lives macro");
    assert_eq!(step.account, acct("somebody", 65533, 65533));
    assert_eq!(
        step.owned_dirs,
        vec![
            OwnedDir {
                path: "/srv/app".into(),
                uid: 65533,
                gid: 65533
            },
            OwnedDir {
                path: "/opt/lib".into(),
                uid: 65533,
                gid: 65533
            },
        ]
    );
    let runs = r#"(getent group "900" || groupadd -o -g "900" -r "runuser") && (getent passwd "900" || useradd -l -o -m -d "/home/runuser" -r -g "900" -u "900" "runuser")"#;
    let step = parse_user_step(runs).expect("runs macro");
    assert_eq!(step.account, acct("runuser", 900, 900));
    assert!(step.owned_dirs.is_empty());
}

#[test]
fn anything_else_is_left_to_the_shell() {
    assert!(parse_user_step("npm install").is_none());
    let mismatched = r#"(getent group "1" || groupadd -o -g "2" -r "a") && (getent passwd "1" || useradd -l -o -m -d "/home/a" -r -g "1" -u "1" "a")"#;
    assert!(parse_user_step(mismatched).is_none());
    let extra = r#"(getent group "1" || groupadd -o -g "1" -r "a") && (getent passwd "1" || useradd -l -o -m -d "/home/a" -r -g "1" -u "1" "a") && rm -rf /"#;
    assert!(parse_user_step(extra).is_none());
}

#[test]
fn users_resolve_through_passwd() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("etc")).unwrap();
    fs::write(
        tmp.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nrunuser:x:900:901::/home/runuser:/bin/sh\n",
    )
    .unwrap();
    let view = LayerStackView::new(vec![tmp.path().to_path_buf()]);
    assert_eq!(resolve_user(&view, "900"), (900, 901));
    assert_eq!(resolve_user(&view, "runuser"), (900, 901));
    assert_eq!(resolve_user(&view, "1234"), (1234, 0));
    assert_eq!(resolve_user(&EmptyView, "0"), (0, 0));
}
