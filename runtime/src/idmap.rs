//! User-namespace ID modes: which IDs of the host the sandbox's IDs map to, how the maps
//! are written, and how host owners found in a captured diff map back.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use crate::error::RuntimeError;

/// How IDs inside the sandbox map to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdMode {
    /// Pick one: root when the caller is root, subuid when helpers and ranges exist,
    /// single otherwise.
    #[default]
    Auto,
    /// Real root: identity mapping of the full ID range.
    Root,
    /// `newuidmap`/`newgidmap` with the caller's `/etc/subuid` and `/etc/subgid` ranges:
    /// 0 is the caller, 1.. are the subordinate IDs.
    Subuid,
    /// No helper: the caller maps to the step's own user only.
    Single,
}

impl fmt::Display for IdMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdMode::Auto => "auto",
            IdMode::Root => "root",
            IdMode::Subuid => "subuid",
            IdMode::Single => "single",
        })
    }
}

impl FromStr for IdMode {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IdMode::Auto),
            "root" => Ok(IdMode::Root),
            "subuid" => Ok(IdMode::Subuid),
            "single" => Ok(IdMode::Single),
            other => Err(RuntimeError::InvalidSpec(format!(
                "unknown user-namespace mode {other:?} (expected auto, root, subuid or single)"
            ))),
        }
    }
}

/// One line of a `uid_map`/`gid_map`: `count` IDs from `inside` map to `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First ID inside the namespace.
    pub inside: u32,
    /// First ID on the host.
    pub host: u32,
    /// Number of IDs.
    pub count: u32,
}

/// The resolved ID maps of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    /// The mode these maps belong to (never `Auto`).
    pub mode: IdMode,
    /// User ID ranges.
    pub uids: Vec<IdRange>,
    /// Group ID ranges.
    pub gids: Vec<IdRange>,
}

impl IdMaps {
    /// Resolves `mode` (detecting it for `Auto`) for a command that runs as `uid:gid`.
    pub fn resolve(mode: IdMode, uid: u32, gid: u32) -> Result<IdMaps, RuntimeError> {
        let caller_uid = nix::unistd::geteuid().as_raw();
        let caller_gid = nix::unistd::getegid().as_raw();
        let mode = match mode {
            IdMode::Auto => detect(caller_uid),
            other => other,
        };
        let maps = match mode {
            IdMode::Root => {
                if caller_uid != 0 {
                    return Err(RuntimeError::IdMode(
                        "root mode needs real root; use subuid or single".into(),
                    ));
                }
                let full = vec![IdRange {
                    inside: 0,
                    host: 0,
                    count: u32::MAX,
                }];
                IdMaps {
                    mode,
                    uids: full.clone(),
                    gids: full,
                }
            }
            IdMode::Subuid => {
                let name = user_name(caller_uid);
                let (us, uc) = subordinate_range(Path::new("/etc/subuid"), &name, caller_uid)?;
                let (gs, gc) = subordinate_range(Path::new("/etc/subgid"), &name, caller_uid)?;
                if uid > uc || gid > gc {
                    return Err(RuntimeError::IdMode(format!(
                        "user {uid}:{gid} is outside the subordinate ranges of {name} \
                         ({uc} uids, {gc} gids in /etc/subuid, /etc/subgid)"
                    )));
                }
                let two = |caller, start, count| {
                    vec![
                        IdRange {
                            inside: 0,
                            host: caller,
                            count: 1,
                        },
                        IdRange {
                            inside: 1,
                            host: start,
                            count,
                        },
                    ]
                };
                IdMaps {
                    mode,
                    uids: two(caller_uid, us, uc),
                    gids: two(caller_gid, gs, gc),
                }
            }
            IdMode::Single | IdMode::Auto => IdMaps {
                mode: IdMode::Single,
                uids: vec![IdRange {
                    inside: uid,
                    host: caller_uid,
                    count: 1,
                }],
                gids: vec![IdRange {
                    inside: gid,
                    host: caller_gid,
                    count: 1,
                }],
            },
        };
        Ok(maps)
    }

    /// The ID inside the sandbox of host user `host`, if mapped.
    pub fn uid_inside(&self, host: u32) -> Option<u32> {
        map_back(&self.uids, host)
    }

    /// The ID inside the sandbox of host group `host`, if mapped.
    pub fn gid_inside(&self, host: u32) -> Option<u32> {
        map_back(&self.gids, host)
    }

    /// Writes the maps of process `pid` (which has unshared its user namespace).
    pub(crate) fn apply(&self, pid: i32) -> Result<(), RuntimeError> {
        match self.mode {
            IdMode::Subuid => {
                run_map_helper("newuidmap", pid, &self.uids)?;
                run_map_helper("newgidmap", pid, &self.gids)
            }
            _ => {
                let proc_dir = PathBuf::from(format!("/proc/{pid}"));
                if self.mode == IdMode::Single {
                    write_proc(&proc_dir.join("setgroups"), "deny")?;
                }
                write_proc(&proc_dir.join("uid_map"), &map_text(&self.uids))?;
                write_proc(&proc_dir.join("gid_map"), &map_text(&self.gids))
            }
        }
    }
}

fn map_back(ranges: &[IdRange], host: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let offset = host.checked_sub(r.host)?;
        (offset < r.count).then(|| r.inside + offset)
    })
}

fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.host, r.count))
        .collect()
}

fn write_proc(path: &Path, text: &str) -> Result<(), RuntimeError> {
    std::fs::write(path, text).map_err(|source| RuntimeError::Io {
        what: format!("write {text:?} to {}", path.display()),
        source,
    })
}

fn run_map_helper(helper: &str, pid: i32, ranges: &[IdRange]) -> Result<(), RuntimeError> {
    let mut cmd = Command::new(helper);
    cmd.arg(pid.to_string());
    for r in ranges {
        cmd.args([
            r.inside.to_string(),
            r.host.to_string(),
            r.count.to_string(),
        ]);
    }
    let out = cmd.output().map_err(|source| RuntimeError::Io {
        what: format!("run {helper}"),
        source,
    })?;
    if !out.status.success() {
        return Err(RuntimeError::IdMode(format!(
            "{helper} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Picks the mode for a caller: root, then subuid when its helpers and ranges exist.
fn detect(caller_uid: u32) -> IdMode {
    if caller_uid == 0 {
        return IdMode::Root;
    }
    let name = user_name(caller_uid);
    let helpers = ["newuidmap", "newgidmap"].iter().all(|h| find_in_path(h));
    let ranges = subordinate_range(Path::new("/etc/subuid"), &name, caller_uid).is_ok()
        && subordinate_range(Path::new("/etc/subgid"), &name, caller_uid).is_ok();
    if helpers && ranges {
        IdMode::Subuid
    } else {
        tracing::info!(
            "single ID mode: {} (only the step's own user is mapped; install uidmap and \
             give {name} /etc/subuid and /etc/subgid ranges for subuid mode)",
            if helpers {
                "no subordinate ID range"
            } else {
                "no newuidmap/newgidmap"
            }
        );
        IdMode::Single
    }
}

fn find_in_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// The first `start:count` range of `name` (or its numeric uid) in a subid file.
fn subordinate_range(file: &Path, name: &str, uid: u32) -> Result<(u32, u32), RuntimeError> {
    let text = std::fs::read_to_string(file).map_err(|source| RuntimeError::Io {
        what: format!("read {}", file.display()),
        source,
    })?;
    parse_subordinate(&text, name, uid).ok_or_else(|| {
        RuntimeError::IdMode(format!(
            "{} has no range for {name} (uid {uid})",
            file.display()
        ))
    })
}

fn parse_subordinate(text: &str, name: &str, uid: u32) -> Option<(u32, u32)> {
    let uid_text = uid.to_string();
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let owner = parts.next()?;
        if owner != name && owner != uid_text {
            return None;
        }
        let start = parts.next()?.parse().ok()?;
        let count: u32 = parts.next()?.parse().ok()?;
        (count > 0).then_some((start, count))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_lines_match_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:1000\nbad line\n";
        assert_eq!(
            parse_subordinate(text, "alice", 1000),
            Some((100000, 65536))
        );
        assert_eq!(parse_subordinate(text, "bob", 1001), Some((200000, 1000)));
        assert_eq!(parse_subordinate(text, "carol", 1002), None);
    }

    #[test]
    fn host_ids_map_back_through_ranges() {
        let ranges = vec![
            IdRange {
                inside: 0,
                host: 1000,
                count: 1,
            },
            IdRange {
                inside: 1,
                host: 100000,
                count: 65536,
            },
        ];
        assert_eq!(map_back(&ranges, 1000), Some(0));
        assert_eq!(map_back(&ranges, 100032), Some(33));
        assert_eq!(map_back(&ranges, 5), None);
        assert_eq!(map_text(&ranges), "0 1000 1\n1 100000 65536\n");
    }

    #[test]
    fn modes_parse_and_print() {
        for mode in ["auto", "root", "subuid", "single"] {
            assert_eq!(mode.parse::<IdMode>().unwrap().to_string(), mode);
        }
        assert!("both".parse::<IdMode>().is_err());
    }
}
