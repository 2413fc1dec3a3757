//! Requirement normalisation and grouping (spec §2.8): which files a builder copies in
//! before it runs, and where they land.

use serde::Serialize;

use super::model::Artifact;
use super::paths;

/// One copy instruction for requirements: all sources from one `from` that land in
/// one destination, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyGroup {
    /// `local`, a variant or an image.
    pub from: String,
    /// Normalised sources (directories end with `/`).
    pub sources: Vec<String>,
    /// Normalised destination (relative to the working directory unless absolute).
    pub destination: String,
    /// Exclude patterns of all the group's requirements, concatenated.
    pub exclude: Vec<String>,
}

fn source_is_dir(source: &str) -> bool {
    source.is_empty() || source.ends_with('/') || paths::clean(source) == "."
}

/// `path.Clean(source)`, plus a trailing `/` for a directory (`""` gives `./`).
pub fn normalized_source(a: &Artifact) -> String {
    let cleaned = paths::clean(&a.source);
    if source_is_dir(&a.source) && !cleaned.ends_with('/') {
        format!("{cleaned}/")
    } else {
        cleaned
    }
}

/// Where a requirement lands (§2.8): the source as written for a directory, the
/// source's directory for a file, or the cleaned destination (with a `/` when either
/// side is a directory).
pub fn normalized_destination(a: &Artifact) -> String {
    if a.destination.is_empty() {
        if source_is_dir(&a.source) {
            if a.source.is_empty() {
                "./".to_string()
            } else {
                a.source.clone()
            }
        } else {
            let dir = paths::dir(&normalized_source(a));
            if dir.ends_with('/') {
                dir
            } else {
                format!("{dir}/")
            }
        }
    } else {
        let cleaned = paths::clean(&a.destination);
        let dir_like = a.destination.ends_with('/')
            || a.destination == "."
            || a.source.ends_with('/')
            || a.source == ".";
        if dir_like && !cleaned.ends_with('/') {
            format!("{cleaned}/")
        } else {
            cleaned
        }
    }
}

/// The path a file requirement has after copying, as Python's `-r` arguments use it:
/// the destination, plus the source's base name when the destination is a directory
/// and the source a file.
pub fn effective_destination(a: &Artifact) -> String {
    let dest = normalized_destination(a);
    if dest.ends_with('/') && !source_is_dir(&a.source) {
        paths::join(&dest, &paths::base(&a.source))
    } else {
        dest
    }
}

/// Groups requirements into copies: per `from` (first appearance), then per
/// normalised destination (first appearance).
pub fn group_requirements(reqs: &[Artifact]) -> Vec<CopyGroup> {
    let mut froms: Vec<&str> = Vec::new();
    for r in reqs {
        if !froms.contains(&r.from.as_str()) {
            froms.push(&r.from);
        }
    }
    let mut out = Vec::new();
    for from in froms {
        let mut groups: Vec<CopyGroup> = Vec::new();
        for r in reqs.iter().filter(|r| r.from == from) {
            let destination = normalized_destination(r);
            let i = match groups.iter().position(|g| g.destination == destination) {
                Some(i) => i,
                None => {
                    groups.push(CopyGroup {
                        from: from.to_string(),
                        sources: Vec::new(),
                        destination,
                        exclude: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            groups[i].sources.push(normalized_source(r));
            groups[i].exclude.extend(r.exclude.iter().cloned());
        }
        out.extend(groups);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::LOCAL;

    fn req(source: &str, destination: &str) -> Artifact {
        Artifact {
            from: LOCAL.into(),
            source: source.into(),
            destination: destination.into(),
            exclude: Vec::new(),
        }
    }

    #[test]
    fn normalisation_matches_spec_examples() {
        assert_eq!(normalized_destination(&req("package.json", "")), "./");
        assert_eq!(
            normalized_destination(&req("docs/requirements.txt", "")),
            "docs/"
        );
        assert_eq!(normalized_destination(&req("src", "")), "./");
        assert_eq!(normalized_destination(&req("lib/", "")), "lib/");
        assert_eq!(normalized_source(&req("", "")), "./");
        assert_eq!(normalized_destination(&req("", "")), "./");
        assert_eq!(normalized_destination(&req("a/", "/x")), "/x/");
        assert_eq!(normalized_destination(&req("a", "/")), "/");
        assert_eq!(
            effective_destination(&req("requirements.txt", "")),
            "requirements.txt"
        );
        assert_eq!(
            effective_destination(&req("docs/requirements.txt", "")),
            "docs/requirements.txt"
        );
    }

    #[test]
    fn grouping_by_from_then_destination() {
        let mut other = req("/srv/app/x", "");
        other.from = "build".into();
        let groups = group_requirements(&[
            req("package.json", ""),
            other,
            req("package-lock.json", ""),
            req("docs/a.txt", ""),
        ]);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].sources, ["package.json", "package-lock.json"]);
        assert_eq!(groups[0].destination, "./");
        assert_eq!(groups[1].destination, "docs/");
        assert_eq!(groups[2].from, "build");
        assert_eq!(groups[2].destination, "/srv/app/");
    }
}
