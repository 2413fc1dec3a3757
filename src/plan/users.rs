//! The lives and runs users (§5.1, §5.2): their build arguments, creation, and the
//! per-phase user switches.

use crate::config::{RunsConfig, UserConfig, VariantConfig};

use super::instruction::{ArgDefault, EnvVar, Owner, Phase};
use super::quote::go_quote;
use super::stage::StageState;
use super::PlanError;

/// The shell lines that create a group and a user unless `getent` finds the numeric IDs.
/// `prefix` is `LIVES` or `RUNS`.
fn create_user_lines(prefix: &str) -> Vec<String> {
    let (name, uid, gid) = (
        format!("${prefix}_AS"),
        format!("${prefix}_UID"),
        format!("${prefix}_GID"),
    );
    vec![
        format!(r#"(getent group "{gid}" || groupadd -o -g "{gid}" -r "{name}")"#),
        format!(
            r#"(getent passwd "{uid}" || useradd -l -o -m -d "/home/{name}" -r -g "{gid}" -u "{uid}" "{name}")"#
        ),
    ]
}

fn user_args(state: &mut StageState, prefix: &str, user: &UserConfig) {
    state.arg(&format!("{prefix}_AS"), ArgDefault::Str(user.name.clone()));
    state.arg(&format!("{prefix}_UID"), ArgDefault::Uint(user.uid));
    state.arg(&format!("{prefix}_GID"), ArgDefault::Uint(user.gid));
}

/// The `lives` instructions of a phase.
pub fn lives(state: &mut StageState, variant: &VariantConfig) {
    let lives = &variant.common.lives;
    match state.phase {
        Phase::Privileged => {
            user_args(state, "LIVES", &lives.user);
            let mut lines = create_user_lines("LIVES");
            for dir in [lives.dir.as_str(), "/opt/lib"] {
                let quoted = go_quote(dir);
                lines.push(format!("mkdir -p {quoted}"));
                lines.push(format!(r#"chown "$LIVES_UID":"$LIVES_GID" {quoted}"#));
            }
            state.run_all(lines);
        }
        Phase::PrivilegeDropped => state.workdir_to(&lives.dir),
        _ => {}
    }
}

/// The `runs` instructions of a phase.
pub fn runs(state: &mut StageState, runs: &RunsConfig) {
    match state.phase {
        Phase::Privileged => {
            user_args(state, "RUNS", &runs.user);
            state.run_all(create_user_lines("RUNS"));
        }
        Phase::PrivilegeDropped if !runs.environment.is_empty() => {
            // BTreeMap iteration is sorted by name, as Blubber sorts them.
            let defs = runs
                .environment
                .iter()
                .map(|(k, v)| EnvVar::new(k.clone(), v.clone()))
                .collect();
            state.env(defs);
        }
        Phase::PostInstall if !runs.dir.is_empty() => state.workdir_to(&runs.dir),
        _ => {}
    }
}

/// Whether the runtime stays the lives user.
fn insecure(variant: &VariantConfig) -> bool {
    variant.common.runs.insecurely == Some(true)
}

/// The user switch at the start of a phase (non-scratch variants only).
pub fn switch_user(state: &mut StageState, variant: &VariantConfig) {
    match state.phase {
        Phase::Privileged => {
            state.user("0");
            state.env(vec![EnvVar::new("HOME", "/root")]);
        }
        Phase::PrivilegeDropped => {
            state.user("$LIVES_UID");
            let home = home_of(&variant.common.lives.user.name);
            state.env(vec![EnvVar::new("HOME", home)]);
        }
        Phase::PostInstall if !insecure(variant) => {
            state.user("$RUNS_UID");
            state.env(vec![EnvVar::new("HOME", "/home/$RUNS_AS")]);
        }
        _ => {}
    }
}

/// `/root` for `root`, `/home/<name>` otherwise (the literal config value: quirk Q16).
fn home_of(name: &str) -> String {
    if name == "root" {
        "/root".into()
    } else {
        format!("/home/{name}")
    }
}

/// The owner of copies made in the current phase; `None` in Privileged and for scratch.
pub fn phase_owner(
    state: &StageState,
    variant: &VariantConfig,
) -> Result<Option<Owner>, PlanError> {
    if variant.is_scratch() {
        return Ok(None);
    }
    let (user, group) = match state.phase {
        Phase::Privileged => return Ok(None),
        Phase::PostInstall if !insecure(variant) => ("$RUNS_UID", "$RUNS_GID"),
        _ => ("$LIVES_UID", "$LIVES_GID"),
    };
    state.owner(user, group).map(Some)
}
