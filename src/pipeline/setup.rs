//! The `setup` bindings (§3.3): read from the local git checkout with `git` child
//! processes, plus `--param` values, the timestamp and the log URL.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_yaml::{Mapping, Value};

use super::interp::Namespace;

/// What the setup stage binds, before it becomes a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupInfo {
    /// The remote URL's path without leading `/`, `r/` and `.git` (or the directory name).
    pub project: String,
    /// The last component of `project`.
    pub project_short_name: String,
    /// HEAD's commit.
    pub commit: String,
    /// The local branch (empty when detached).
    pub branch: String,
    /// The remote URL.
    pub remote: String,
    /// The tag HEAD points at exactly, or "".
    pub tag: String,
    /// `yyyy-MM-dd-HHmmss` UTC.
    pub timestamp: String,
    /// `GIT_*` variables.
    pub git: BTreeMap<String, String>,
    /// `--param NAME=VALUE`.
    pub params: BTreeMap<String, String>,
    /// `file://` URL of the log directory.
    pub log_url: String,
    /// `--http-proxy`, bound only when given.
    pub http_proxy: Option<String>,
}

fn git(dir: &Path, args: &[&str]) -> String {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// PipelineLib's project name from a remote URL: the path without its leading `/`
/// and any `r/` (flense also drops a trailing `.git`).
pub fn project_from_remote(url: &str) -> String {
    let path = if let Some((_, rest)) = url.split_once("://") {
        rest.split_once('/').map(|(_, p)| p).unwrap_or("")
    } else if let Some((host, p)) = url.split_once(':') {
        if host.contains('/') {
            url
        } else {
            p
        }
    } else {
        url
    };
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("r/").unwrap_or(path);
    path.trim_end_matches('/')
        .trim_end_matches(".git")
        .to_string()
}

/// A URL without its `user:password@` part: CI checkouts (GitLab's
/// `https://gitlab-ci-token:TOKEN@host/...`) keep the job's token there, and the remote
/// is bound as `${setup.remote}`.
pub fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The current UTC time as `yyyy-MM-dd-HHmmss`.
pub fn timestamp_now() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]-[hour][minute][second]");
    time::OffsetDateTime::now_utc()
        .format(fmt)
        .unwrap_or_default()
}

impl SetupInfo {
    /// Reads the git checkout at `dir` (missing git or repository: empty values).
    pub fn from_git(dir: &Path) -> SetupInfo {
        let remote_name = git(dir, &["remote"])
            .lines()
            .next()
            .unwrap_or("origin")
            .to_string();
        let remote = without_userinfo(&git(
            dir,
            &["config", "--get", &format!("remote.{remote_name}.url")],
        ));
        let commit = git(dir, &["rev-parse", "HEAD"]);
        let branch = git(dir, &["symbolic-ref", "--short", "-q", "HEAD"]);
        let tag = git(dir, &["describe", "--exact-match", "--tags", "HEAD"]);
        let mut project = project_from_remote(&remote);
        if project.is_empty() {
            let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            project = abs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        let mut gitvars = BTreeMap::new();
        gitvars.insert("GIT_COMMIT".into(), commit.clone());
        gitvars.insert(
            "GIT_PREVIOUS_COMMIT".into(),
            git(dir, &["rev-parse", "-q", "--verify", "HEAD~1"]),
        );
        gitvars.insert("GIT_LOCAL_BRANCH".into(), branch.clone());
        gitvars.insert(
            "GIT_BRANCH".into(),
            if branch.is_empty() {
                String::new()
            } else {
                format!("{remote_name}/{branch}")
            },
        );
        gitvars.insert("GIT_URL".into(), remote.clone());
        let who = git(dir, &["log", "-1", "--format=%an%x00%ae%x00%cn%x00%ce"]);
        let mut parts = who.split('\0');
        for key in [
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "GIT_COMMITTER_NAME",
            "GIT_COMMITTER_EMAIL",
        ] {
            gitvars.insert(key.into(), parts.next().unwrap_or_default().to_string());
        }
        SetupInfo {
            project_short_name: project.rsplit('/').next().unwrap_or(&project).to_string(),
            project,
            commit,
            branch,
            remote,
            tag,
            timestamp: timestamp_now(),
            git: gitvars,
            ..SetupInfo::default()
        }
    }

    /// The `setup` namespace for pipeline `pipeline`.
    pub fn namespace(&self, pipeline: &str) -> Namespace {
        let s = |v: &str| Value::String(v.to_string());
        let mut ns = Namespace::new();
        ns.insert("stage".into(), s("setup"));
        ns.insert("pipeline".into(), s(pipeline));
        ns.insert("project".into(), s(&self.project));
        ns.insert("projectShortName".into(), s(&self.project_short_name));
        ns.insert("commit".into(), s(&self.commit));
        ns.insert("branch".into(), s(&self.branch));
        ns.insert("remote".into(), s(&self.remote));
        ns.insert("tag".into(), s(&self.tag));
        ns.insert("timestamp".into(), s(&self.timestamp));
        ns.insert("logURL".into(), s(&self.log_url));
        for (k, v) in &self.git {
            ns.insert(k.clone(), s(v));
        }
        for (k, v) in &self.params {
            ns.insert(format!("params.{k}"), s(v));
        }
        let mut labels = Mapping::new();
        labels.insert(s("ci.project"), s(&self.project));
        labels.insert(s("ci.pipeline"), s(pipeline));
        labels.insert(s("vcs.commit"), s(&self.commit));
        ns.insert("imageLabels".into(), Value::Mapping(labels));
        if let Some(p) = &self.http_proxy {
            ns.insert("httpProxy".into(), s(p));
        }
        ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert_eq!(
            project_from_remote("https://gerrit.wikimedia.org/r/mediawiki/services/mathoid"),
            "mediawiki/services/mathoid"
        );
        assert_eq!(
            project_from_remote("ssh://foo.server:123/foo/project"),
            "foo/project"
        );
        assert_eq!(
            project_from_remote("git@gitlab.example:blubber-doc/example/helloworld.git"),
            "blubber-doc/example/helloworld"
        );
        assert_eq!(project_from_remote(""), "");
        assert_eq!(
            without_userinfo("https://gitlab-ci-token:s3cret@gitlab.example/g/p.git"),
            "https://gitlab.example/g/p.git"
        );
        assert_eq!(
            without_userinfo("git@gitlab.example:g/p.git"),
            "git@gitlab.example:g/p.git"
        );
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp_now();
        assert_eq!(t.len(), 17, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "-");
    }
}
