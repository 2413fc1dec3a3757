//! Platforms (`os/arch[/variant]`, OCI naming) and picking one manifest out of an index.
//! The one platform type of flense: the plan's `BUILD*`/`TARGET*` variables, the
//! registry client's choice from a multi-platform image and the CLI's `--platform`.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex};

/// An `os/arch[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, Go's GOOS names (`linux`).
    pub os: String,
    /// CPU architecture, Go's GOARCH names (`amd64`, `arm64`).
    pub architecture: String,
    /// CPU variant (`v8`, `v7`), if any.
    pub variant: Option<String>,
}

/// A platform that is not of the form `os/arch[/variant]`.
#[derive(Debug, thiserror::Error)]
#[error("platform {0:?} is not of the form os/arch[/variant] (e.g. linux/amd64)")]
pub struct PlatformError(pub String);

impl Platform {
    /// The platform of the machine flense runs on, in OCI naming, with the variant
    /// Docker reports for it (`linux/arm64/v8`, `linux/amd64`).
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Self {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// The same os and architecture with any variant (see [`Platform::matches`]): what
    /// pulls for this machine ask for, as images often leave the variant out.
    pub fn without_variant(self) -> Self {
        Self {
            variant: None,
            ..self
        }
    }

    /// Whether this is the machine's own platform (os and architecture; the variant
    /// is left out, as [`Platform::without_variant`] pulls do): steps of any other
    /// run under emulation.
    pub fn is_host(&self) -> bool {
        let host = Self::host();
        self.os == host.os && self.architecture == host.architecture
    }

    /// The platform an image config declares.
    pub fn of_config(config: &oci_spec::image::ImageConfiguration) -> Self {
        Self {
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            variant: config.variant().clone(),
        }
    }

    /// Whether an image config declares this platform (a missing variant on our side
    /// matches any, as in [`Platform::matches`]).
    pub fn matches_config(&self, config: &oci_spec::image::ImageConfiguration) -> bool {
        let found = Self::of_config(config);
        found.os == self.os
            && found.architecture == self.architecture
            && (self.variant.is_none() || found.variant == self.variant)
    }

    /// This platform as an index entry's `platform`.
    pub fn to_oci(&self) -> oci_spec::image::Platform {
        let mut p = oci_spec::image::Platform::default();
        p.set_os(oci_spec::image::Os::from(self.os.as_str()));
        p.set_architecture(oci_spec::image::Arch::from(self.architecture.as_str()));
        p.set_variant(self.variant.clone());
        p
    }

    /// Parses a comma-separated list (`linux/amd64,linux/arm64`), each platform once.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, PlatformError> {
        let mut platforms: Vec<Self> = Vec::new();
        for item in list.split(',').map(str::trim) {
            let platform: Self = item.parse()?;
            if !platforms.contains(&platform) {
                platforms.push(platform);
            }
        }
        Ok(platforms)
    }

    /// Whether an index entry's platform is this one. A missing variant on our side
    /// matches any variant (arm64 images are often tagged `v8`).
    pub fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        let os = p.os().to_string();
        let arch = p.architecture().to_string();
        os == self.os
            && arch == self.architecture
            && match &self.variant {
                None => true,
                Some(v) => p.variant().as_deref() == Some(v.as_str()),
            }
    }

    /// The descriptor in `index` for this platform: the first exact match.
    pub fn select<'a>(&self, index: &'a ImageIndex) -> Option<&'a Descriptor> {
        index
            .manifests()
            .iter()
            .find(|d| d.platform().as_ref().is_some_and(|p| self.matches(p)))
    }
}

/// A human-readable list of the platforms an index offers.
pub fn describe_platforms(index: &ImageIndex) -> String {
    let list: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        // BuildKit's attestation manifests sit beside the images as unknown/unknown.
        .filter(|p| !(p.os().to_string() == "unknown" && p.architecture().to_string() == "unknown"))
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    /// Parses `os/arch[/variant]`, e.g. `linux/arm64/v8`; each part is alphanumerics
    /// and `_`.
    fn from_str(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len())
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(PlatformError(s.to_string()));
        }
        Ok(Self {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl fmt::Display for Platform {
    /// `os/arch[/variant]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let arm: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(arm.variant.as_deref(), Some("v8"));
        assert_eq!(arm.to_string(), "linux/arm64/v8");
        assert_eq!(arm.clone().without_variant().to_string(), "linux/arm64");
        for bad in ["linux", "linux/amd64/v1/x", "linux//v8", "linux/amd-64", ""] {
            let err = bad.parse::<Platform>().unwrap_err().to_string();
            assert!(err.contains("os/arch"), "{err}");
        }
    }

    #[test]
    fn selects_from_an_index() {
        let index: ImageIndex = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
             "digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
             "platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,
             "digest":"sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
             "platform":{"os":"linux","architecture":"amd64"}}]}"#,
        )
        .unwrap();
        let amd: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(amd.select(&index).unwrap().size(), 2);
        let arm: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(arm.select(&index).unwrap().size(), 1);
        let armv7: Platform = "linux/arm64/v7".parse().unwrap();
        assert!(armv7.select(&index).is_none());
        assert_eq!(describe_platforms(&index), "linux/arm64/v8, linux/amd64");
    }

    #[test]
    fn attestation_manifests_are_not_platforms() {
        let index: ImageIndex = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
             "digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
             "platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,
             "digest":"sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
             "annotations":{"vnd.docker.reference.type":"attestation-manifest"},
             "platform":{"os":"unknown","architecture":"unknown"}}]}"#,
        )
        .unwrap();
        assert_eq!(describe_platforms(&index), "linux/amd64");
    }

    #[test]
    fn lists_and_oci_platforms() {
        let list = Platform::parse_list("linux/amd64, linux/arm64,linux/amd64").unwrap();
        let names: Vec<String> = list.iter().map(Platform::to_string).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"]);
        assert!(Platform::parse_list("linux/amd64,").is_err());
        let oci = list[1].to_oci();
        assert!(list[1].matches(&oci));
        assert!(!list[0].matches(&oci));
        assert!(Platform::host().is_host());
    }
}
