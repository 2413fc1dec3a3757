//! Recognising Blubber's user-creation line (spec §5.2) in a Run step, so the builder
//! writes its effect natively ([`super::user_entries`]) instead of running shadow-utils.

use std::path::PathBuf;

use crate::plan::RunContext;

use super::{Account, OwnedDir};

/// The user-creation step that `effective` is, when the builder writes it natively (as
/// layer entries) instead of running it: a root step without mounts or caches whose
/// command is Blubber's getent/groupadd/useradd line.
pub fn native_user_step(effective: &str, ctx: &RunContext) -> Option<UserStep> {
    if ctx.user == "0" && ctx.mounts.is_empty() && ctx.caches.is_empty() {
        parse_user_step(effective)
    } else {
        None
    }
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
/// builder can apply it natively instead of running shadow-utils. Anything that does
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
