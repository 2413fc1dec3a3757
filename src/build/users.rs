//! Creates the lives and runs users natively, without running `groupadd`/`useradd`.
//!
//! Blubber runs, for each user (spec §5.2):
//! `(getent group GID || groupadd -o -g GID -r NAME) && (getent passwd UID || useradd -l
//! -o -m -d HOME -r -g GID -u UID NAME)`, and for lives also `mkdir -p DIR && chown
//! UID:GID DIR` for `lives.in` and `/opt/lib`. This module reproduces the effect on
//! `/etc/passwd`, `/etc/group`, `/etc/shadow`, `/etc/gshadow` and the home directories
//! (with `/etc/skel` copied in), and returns it as layer entries:
//! - an existing numeric GID or UID is reused under its existing name (getent);
//! - a new name that is already taken by another ID fails, as groupadd/useradd would;
//! - shadow files are only updated when the base has them;
//! - an existing home directory is left alone (no skel copy, no chown), like useradd -m.

use std::path::{Path, PathBuf};

use crate::image::{EntryKind, LayerEntry};

use super::entries::EntrySet;
use super::view::{image_relative, ImageView};

/// Errors while creating users.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// groupadd would fail: the group name exists with another GID.
    #[error("cannot create group {name:?} with gid {gid}: the base image already has a group {name:?} with gid {existing_gid}")]
    GroupNameTaken {
        /// Group name.
        name: String,
        /// Requested GID.
        gid: u32,
        /// GID of the existing group.
        existing_gid: u32,
    },
    /// useradd would fail: the user name exists with another UID.
    #[error("cannot create user {name:?} with uid {uid}: the base image already has a user {name:?} with uid {existing_uid}")]
    UserNameTaken {
        /// User name.
        name: String,
        /// Requested UID.
        uid: u32,
        /// UID of the existing user.
        existing_uid: u32,
    },
    /// A line of an account file could not be parsed.
    #[error("{file}: line {line}: malformed entry {text:?}")]
    Malformed {
        /// The file, e.g. `/etc/passwd`.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// An account name that would corrupt the account files.
    #[error("invalid account name {0:?}")]
    BadName(String),
}

/// One account to create, as Blubber's `lives` or `runs` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User and group name (`lives.as`, `runs.as`).
    pub name: String,
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Home directory (`/home/<name>`).
    pub home: PathBuf,
}

/// A directory made with `mkdir -p` and then `chown uid:gid` (e.g. `lives.in`, `/opt/lib`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedDir {
    /// Absolute image path.
    pub path: PathBuf,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// The contents of the four account files of an image (absent = `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFiles {
    /// `/etc/passwd`.
    pub passwd: Option<Vec<u8>>,
    /// `/etc/group`.
    pub group: Option<Vec<u8>>,
    /// `/etc/shadow`.
    pub shadow: Option<Vec<u8>>,
    /// `/etc/gshadow`.
    pub gshadow: Option<Vec<u8>>,
}

/// The result of [`add_accounts`]: the files that changed and the homes to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChanges {
    /// New contents of the account files; `None` where the file is unchanged.
    pub files: AccountFiles,
    /// Home directories useradd would create: (path, uid, gid), in creation order.
    pub homes: Vec<(PathBuf, u32, u32)>,
}

/// Image paths of the account files.
pub const PASSWD: &str = "/etc/passwd";
/// Image path of the group file.
pub const GROUP: &str = "/etc/group";
/// Image path of the shadow file.
pub const SHADOW: &str = "/etc/shadow";
/// Image path of the gshadow file.
pub const GSHADOW: &str = "/etc/gshadow";

struct Table {
    lines: Vec<String>,
}

impl Table {
    fn parse(bytes: Option<&[u8]>) -> Self {
        let text = bytes.map(String::from_utf8_lossy).unwrap_or_default();
        Self {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// (name, id) of every entry with a numeric third field (`name:pw:id:...`).
    fn ids(&self, file: &'static str) -> Result<Vec<(String, u32)>, UsersError> {
        let mut out = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') || line.starts_with(['+', '-']) {
                continue;
            }
            let fields: Vec<&str> = line.split(':').collect();
            let id = fields.get(2).and_then(|f| f.parse::<u32>().ok());
            match id {
                Some(id) if fields.len() >= 3 => out.push((fields[0].to_string(), id)),
                _ => {
                    return Err(UsersError::Malformed {
                        file,
                        line: i + 1,
                        text: line.clone(),
                    })
                }
            }
        }
        Ok(out)
    }

    fn append(&mut self, line: String) {
        self.lines.push(line);
    }

    fn render(&self) -> Vec<u8> {
        let mut s = self.lines.join("\n");
        if !self.lines.is_empty() {
            s.push('\n');
        }
        s.into_bytes()
    }
}

fn check_name(name: &str) -> Result<(), UsersError> {
    if name.is_empty() || name.contains([':', '\n', '/']) {
        return Err(UsersError::BadName(name.to_string()));
    }
    Ok(())
}

/// Applies Blubber's `getent || groupadd` / `getent || useradd` steps for each account, in
/// order, to the given account files. `shell` is the login shell useradd would set (from
/// `/etc/default/useradd`), `last_change_days` the shadow "last change" day (from
/// SOURCE_DATE_EPOCH; `None` leaves the field empty, as shadow-utils does at day 0).
pub fn add_accounts(
    files: &AccountFiles,
    accounts: &[Account],
    shell: &str,
    last_change_days: Option<u64>,
) -> Result<AccountChanges, UsersError> {
    let mut passwd = Table::parse(files.passwd.as_deref());
    let mut group = Table::parse(files.group.as_deref());
    let mut shadow = files.shadow.as_deref().map(|b| Table::parse(Some(b)));
    let mut gshadow = files.gshadow.as_deref().map(|b| Table::parse(Some(b)));
    let (mut passwd_changed, mut group_changed) = (false, false);
    let mut homes = Vec::new();

    for acct in accounts {
        check_name(&acct.name)?;
        let groups = group.ids("/etc/group")?;
        if !groups.iter().any(|(_, gid)| *gid == acct.gid) {
            if let Some((_, existing_gid)) = groups.iter().find(|(n, _)| *n == acct.name) {
                return Err(UsersError::GroupNameTaken {
                    name: acct.name.clone(),
                    gid: acct.gid,
                    existing_gid: *existing_gid,
                });
            }
            let pw = if gshadow.is_some() { "x" } else { "!" };
            group.append(format!("{}:{pw}:{}:", acct.name, acct.gid));
            if let Some(gs) = gshadow.as_mut() {
                gs.append(format!("{}:!::", acct.name));
            }
            group_changed = true;
        }
        let users = passwd.ids("/etc/passwd")?;
        if !users.iter().any(|(_, uid)| *uid == acct.uid) {
            if let Some((_, existing_uid)) = users.iter().find(|(n, _)| *n == acct.name) {
                return Err(UsersError::UserNameTaken {
                    name: acct.name.clone(),
                    uid: acct.uid,
                    existing_uid: *existing_uid,
                });
            }
            let pw = if shadow.is_some() { "x" } else { "!" };
            passwd.append(format!(
                "{}:{pw}:{}:{}::{}:{shell}",
                acct.name,
                acct.uid,
                acct.gid,
                acct.home.display()
            ));
            if let Some(sh) = shadow.as_mut() {
                let day = last_change_days
                    .filter(|d| *d > 0)
                    .map(|d| d.to_string())
                    .unwrap_or_default();
                sh.append(format!("{}:!:{day}::::::", acct.name));
            }
            passwd_changed = true;
            homes.push((acct.home.clone(), acct.uid, acct.gid));
        }
    }

    Ok(AccountChanges {
        files: AccountFiles {
            passwd: passwd_changed.then(|| passwd.render()),
            group: group_changed.then(|| group.render()),
            shadow: if passwd_changed {
                shadow.map(|t| t.render())
            } else {
                None
            },
            gshadow: if group_changed {
                gshadow.map(|t| t.render())
            } else {
                None
            },
        },
        homes,
    })
}

/// The login shell useradd gives new users: `SHELL=` in `/etc/default/useradd`, else
/// `/bin/sh` (Debian's default).
pub fn default_shell(view: &dyn ImageView) -> String {
    view.read(Path::new("/etc/default/useradd"))
        .and_then(|bytes| {
            String::from_utf8_lossy(&bytes).lines().find_map(|l| {
                l.trim()
                    .strip_prefix("SHELL=")
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            })
        })
        .unwrap_or_else(|| "/bin/sh".to_string())
}

/// Everything the users step of the Privileged phase does, as layer entries sorted by
/// path: the account files (keeping their mode and owner), new home directories with
/// `/etc/skel` copied in, and the `mkdir -p` + `chown` directories. `epoch` is the
/// SOURCE_DATE_EPOCH used for new entries' mtime and the shadow "last change" day.
pub fn user_entries(
    view: &dyn ImageView,
    accounts: &[Account],
    owned_dirs: &[OwnedDir],
    epoch: u64,
) -> Result<Vec<LayerEntry>, UsersError> {
    let files = AccountFiles {
        passwd: view.read(Path::new(PASSWD)),
        group: view.read(Path::new(GROUP)),
        shadow: view.read(Path::new(SHADOW)),
        gshadow: view.read(Path::new(GSHADOW)),
    };
    let shell = default_shell(view);
    let changes = add_accounts(&files, accounts, &shell, Some(epoch / 86_400))?;
    let mut set = EntrySet::new(view, epoch);
    let writes = [
        (PASSWD, changes.files.passwd, 0o644),
        (GROUP, changes.files.group, 0o644),
        (SHADOW, changes.files.shadow, 0o640),
        (GSHADOW, changes.files.gshadow, 0o640),
    ];
    for (path, bytes, mode) in writes {
        if let Some(bytes) = bytes {
            set.file(path, bytes, mode);
        }
    }
    for (home, uid, gid) in &changes.homes {
        let rel = image_relative(home);
        if rel.as_os_str().is_empty() || set.stat(&rel).is_some() {
            continue; // useradd -m leaves an existing home alone
        }
        set.parents(&rel, 0, 0);
        set.put(rel.clone(), EntryKind::Dir, 0o755, *uid, *gid, epoch);
        set.copy_tree(Path::new("etc/skel"), &rel, *uid, *gid);
    }
    for dir in owned_dirs {
        set.mkdir_p(&dir.path, Some((dir.uid, dir.gid)));
    }
    Ok(set.into_entries())
}

/// A Blubber user-creation step recognised in an effective shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStep {
    /// The account the step creates (unless its IDs exist).
    pub account: Account,
    /// The `mkdir -p` + `chown` directories that follow (lives only).
    pub owned_dirs: Vec<OwnedDir>,
}

/// Recognises Blubber's lives/runs macro (§5.2) in an expanded `/bin/sh -c` line, so the
/// executor can apply it natively instead of running shadow-utils. Anything that does
/// not match the template exactly (or whose IDs and names disagree) gives `None` and
/// runs as an ordinary command.
pub fn parse_user_step(line: &str) -> Option<UserStep> {
    use std::sync::OnceLock;
    static HEAD: OnceLock<regex::Regex> = OnceLock::new();
    static TAIL: OnceLock<regex::Regex> = OnceLock::new();
    let head = HEAD.get_or_init(|| {
        regex::Regex::new(concat!(
            r#"^\(getent group "(\d+)" \|\| groupadd -o -g "(\d+)" -r "([^"\\$`]+)"\) && "#,
            r#"\(getent passwd "(\d+)" \|\| useradd -l -o -m -d "([^"\\$`]+)" -r -g "(\d+)" -u "(\d+)" "([^"\\$`]+)"\)"#,
            r#"((?: && mkdir -p "[^"\\$`]+" && chown "\d+":"\d+" "[^"\\$`]+")*)$"#
        ))
        .expect("valid regex")
    });
    let tail = TAIL.get_or_init(|| {
        regex::Regex::new(r#" && mkdir -p "([^"\\$`]+)" && chown "(\d+)":"(\d+)" "([^"\\$`]+)""#)
            .expect("valid regex")
    });
    let c = head.captures(line)?;
    let num = |i: usize| c.get(i)?.as_str().parse::<u32>().ok();
    let (gid, gid2, gid3) = (num(1)?, num(2)?, num(6)?);
    let (uid, uid2) = (num(4)?, num(7)?);
    let (group_name, user_name) = (&c[3], &c[8]);
    if gid != gid2 || gid != gid3 || uid != uid2 || group_name != user_name {
        return None;
    }
    let mut owned_dirs = Vec::new();
    for t in tail.captures_iter(&c[9]) {
        if t[1] != t[4] {
            return None;
        }
        owned_dirs.push(OwnedDir {
            path: PathBuf::from(&t[1]),
            uid: t[2].parse().ok()?,
            gid: t[3].parse().ok()?,
        });
    }
    Some(UserStep {
        account: Account {
            name: user_name.to_string(),
            uid,
            gid,
            home: PathBuf::from(&c[5]),
        },
        owned_dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::view::{EmptyView, LayerStackView};
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
        let err =
            add_accounts(&debian_files(), &[acct("shadow", 5, 77)], "/bin/sh", None).unwrap_err();
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
}
