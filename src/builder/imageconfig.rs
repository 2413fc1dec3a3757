//! The image config a stage produces (spec §5.11): the base image's config with the
//! stage's user, working directory, entrypoint (clearing `Cmd`), env and labels applied,
//! `rootfs` and history extended by the new layers, and `created` at the epoch.

use std::collections::HashMap;

use oci_spec::image::{
    Arch, Config, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, Os, RootFsBuilder,
};

use crate::image::digest::Digest;
use crate::image::oci::{rfc3339, DEFAULT_PATH};
use crate::plan::expand::{expand, Unknown};
use crate::plan::{EnvVar, ImageConfig};

use crate::builder::BuildError;

/// Splits `K=V` env entries.
pub fn env_pairs(env: &[String]) -> Vec<(String, String)> {
    env.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

/// Sets `name` in an ordered env list: replaced in place, else appended.
pub fn set_env(env: &mut Vec<(String, String)>, name: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name.to_string(), value)),
    }
}

/// The runtime config of a scratch image: working dir `/` and the default PATH.
pub fn scratch_config() -> Config {
    let mut c = Config::default();
    c.set_working_dir(Some("/".into()));
    c.set_env(Some(vec![format!("PATH={DEFAULT_PATH}")]));
    c
}

/// One new layer and its history text.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// `sha256:` of the uncompressed tar.
    pub diff_id: Digest,
    /// History `created_by`.
    pub created_by: String,
}

/// Builds the final image config from the base config (`None` = scratch), the stage's
/// config changes, extra labels (the plan's, for the exported image) and the new layers.
pub fn final_config(
    base: Option<&ImageConfiguration>,
    stage: &ImageConfig,
    extra_labels: &[EnvVar],
    new_layers: &[NewLayer],
    epoch: u64,
) -> Result<ImageConfiguration, BuildError> {
    let mut runtime = match base {
        Some(b) => b.config().clone().unwrap_or_default(),
        None => scratch_config(),
    };
    let base_env = env_pairs(runtime.env().as_deref().unwrap_or_default());
    let base_lookup: HashMap<String, String> = base_env.iter().cloned().collect();
    let mut env = base_env.clone();
    for var in &stage.env {
        // The plan keeps references to base variables it could not know as `$NAME`.
        let value = expand(&var.value, |n| base_lookup.get(n).cloned(), Unknown::Empty);
        set_env(&mut env, &var.name, value);
    }
    runtime.set_env(Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()));
    if let Some(user) = &stage.user {
        runtime.set_user(Some(user.clone()));
    }
    runtime.set_working_dir(Some(stage.working_dir.clone()));
    if let Some(ep) = &stage.entrypoint {
        runtime.set_entrypoint(Some(ep.clone()));
        runtime.set_cmd(None);
    }
    let mut labels = runtime.labels().clone().unwrap_or_default();
    for l in stage.labels.iter().chain(extra_labels) {
        labels.insert(l.name.clone(), l.value.clone());
    }
    runtime.set_labels((!labels.is_empty()).then_some(labels));

    let created = rfc3339(epoch);
    let mut diff_ids: Vec<String> = base
        .map(|b| b.rootfs().diff_ids().clone())
        .unwrap_or_default();
    diff_ids.extend(new_layers.iter().map(|l| l.diff_id.to_string()));
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(diff_ids)
        .build()
        .map_err(BuildError::Config)?;
    let mut history = base.and_then(|b| b.history().clone()).unwrap_or_default();
    for l in new_layers {
        history.push(
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(l.created_by.clone())
                .comment("flense")
                .build()
                .map_err(BuildError::Config)?,
        );
    }
    let (arch, os) = match base {
        Some(b) => (b.architecture().clone(), b.os().clone()),
        None => (Arch::default(), Os::Linux),
    };
    let mut builder = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(arch)
        .os(os)
        .rootfs(rootfs)
        .history(history)
        .config(runtime);
    if let Some(v) = base.and_then(|b| b.variant().clone()) {
        builder = builder.variant(v);
    }
    builder.build().map_err(BuildError::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> ImageConfig {
        ImageConfig {
            user: Some("900".into()),
            working_dir: "/srv/app".into(),
            entrypoint: Some(vec!["npm".into(), "test".into()]),
            env: vec![
                EnvVar::new("HOME", "/home/runuser"),
                EnvVar::new("PATH", "/opt/lib/venv/bin:$PATH"),
            ],
            labels: vec![EnvVar::new("blubber.variant", "test")],
        }
    }

    #[test]
    fn scratch_gets_default_path_and_root_workdir_semantics() {
        let mut s = stage();
        s.user = None;
        s.env.clear();
        s.working_dir = "/".into();
        let c = final_config(None, &s, &[], &[], 0).unwrap();
        let rc = c.config().clone().unwrap();
        assert_eq!(
            rc.env().clone().unwrap(),
            vec![format!("PATH={DEFAULT_PATH}")]
        );
        assert_eq!(rc.working_dir().as_deref(), Some("/"));
        assert_eq!(c.created().as_deref(), Some("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn base_env_is_kept_in_order_and_entrypoint_clears_cmd() {
        let mut base_rc = Config::default();
        base_rc.set_env(Some(vec![
            "PATH=/usr/bin:/bin".into(),
            "LANG=C.UTF-8".into(),
        ]));
        base_rc.set_cmd(Some(vec!["bash".into()]));
        let base = ImageConfigurationBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec!["sha256:aa".to_string()])
                    .build()
                    .unwrap(),
            )
            .config(base_rc)
            .build()
            .unwrap();
        let new_diff_id = crate::image::digest::digest_of(b"new layer");
        let layers = vec![NewLayer {
            diff_id: new_diff_id.clone(),
            created_by: "COPY . .".into(),
        }];
        let extra = vec![EnvVar::new("blubber.version", "flense-0.1.0")];
        let c = final_config(Some(&base), &stage(), &extra, &layers, 0).unwrap();
        let rc = c.config().clone().unwrap();
        assert_eq!(
            rc.env().clone().unwrap(),
            vec![
                "PATH=/opt/lib/venv/bin:/usr/bin:/bin".to_string(),
                "LANG=C.UTF-8".into(),
                "HOME=/home/runuser".into()
            ]
        );
        assert!(rc.cmd().is_none());
        assert_eq!(rc.user().as_deref(), Some("900"));
        assert_eq!(
            c.rootfs().diff_ids(),
            &vec!["sha256:aa".to_string(), new_diff_id.to_string()]
        );
        let labels = rc.labels().clone().unwrap();
        assert_eq!(
            labels.get("blubber.variant").map(String::as_str),
            Some("test")
        );
        assert_eq!(
            labels.get("blubber.version").map(String::as_str),
            Some("flense-0.1.0")
        );
    }
}
