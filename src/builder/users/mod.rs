//! Creates the lives and runs users natively, without running `groupadd`/`useradd`;
//! [`step`] recognises Blubber's user-creation line in a Run step, and
//! [`resolve_user`] finds the IDs a step runs as.
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

use crate::builder::layers::entries::EntrySet;
use crate::builder::layers::image_relative;
use crate::builder::layers::view::ImageView;

pub mod step;
pub use step::{native_user_step, parse_user_step, UserStep};

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

/// A user ID and its primary group as the image's `/etc/passwd` gives them (a number
/// missing from it: that UID with GID 0; an unknown name: root).
pub fn resolve_user(view: &dyn ImageView, user: &str) -> (u32, u32) {
    let user = user.split(':').next().unwrap_or_default();
    let passwd = view
        .read(Path::new(PASSWD))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let entries: Vec<Vec<&str>> = passwd.lines().map(|l| l.split(':').collect()).collect();
    let by = |f: &dyn Fn(&Vec<&str>) -> bool| -> Option<(u32, u32)> {
        let e = entries.iter().find(|e| e.len() >= 4 && f(e))?;
        Some((e[2].parse().ok()?, e[3].parse().ok()?))
    };
    match user.parse::<u32>() {
        Ok(uid) => by(&|e| e[2] == user).unwrap_or((uid, 0)),
        Err(_) => by(&|e| e[0] == user).unwrap_or((0, 0)),
    }
}

#[cfg(test)]
mod tests;
