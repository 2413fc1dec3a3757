//! Validation of `apt`: packages, release keys, sources and proxies.

use super::*;

impl Validator<'_> {
    pub(super) fn apt(&mut self, apt: &AptConfig, path: &str) {
        for (release, packages) in &apt.packages {
            let rpath = format!("{path}.packages[{release}]");
            if release != "default" && !rules::is_debian_release(release) {
                self.err(
                    &format!("{rpath}#key"),
                    Problem::DebianRelease {
                        field: field_of(&rpath),
                        value: release.clone(),
                    },
                );
            }
            for (i, pkg) in packages.iter().enumerate() {
                if !rules::is_debian_package(pkg) {
                    let ppath = format!("{rpath}[{i}]");
                    self.err(
                        &ppath,
                        Problem::DebianPackage {
                            field: field_of(&ppath),
                            value: pkg.clone(),
                        },
                    );
                }
            }
        }
        for (i, s) in apt.sources.iter().enumerate() {
            let spath = format!("{path}.sources[{i}]");
            if s.url.is_empty() {
                self.err(
                    &format!("{spath}.url"),
                    Problem::Required {
                        field: "url".into(),
                    },
                );
            } else if !rules::is_http_url(&s.url) {
                self.err(
                    &format!("{spath}.url"),
                    Problem::HttpUrl {
                        field: "url".into(),
                        value: s.url.clone(),
                    },
                );
            }
            if s.distribution.is_empty() {
                self.err(
                    &format!("{spath}.distribution"),
                    Problem::Required {
                        field: "distribution".into(),
                    },
                );
            } else if !rules::is_debian_release(&s.distribution) {
                self.err(
                    &format!("{spath}.distribution"),
                    Problem::DebianRelease {
                        field: "distribution".into(),
                        value: s.distribution.clone(),
                    },
                );
            }
            for (j, c) in s.components.iter().enumerate() {
                if !rules::is_debian_component(c) {
                    self.err(
                        &format!("{spath}.components[{j}]"),
                        Problem::DebianComponent {
                            field: format!("components[{j}]"),
                            value: c.clone(),
                        },
                    );
                }
            }
        }
        for (i, proxy) in apt.proxies.iter().enumerate() {
            let ppath = format!("{path}.proxies[{i}]");
            if proxy.url.is_empty() {
                self.err(
                    &format!("{ppath}.url"),
                    Problem::Required {
                        field: "url".into(),
                    },
                );
            } else if !rules::is_http_url(&proxy.url) {
                self.err(
                    &format!("{ppath}.url"),
                    Problem::HttpUrl {
                        field: "url".into(),
                        value: proxy.url.clone(),
                    },
                );
            }
            if let Some(source) = proxy.source.as_deref().filter(|s| !s.is_empty()) {
                if !rules::is_http_url(source) {
                    self.err(
                        &format!("{ppath}.source"),
                        Problem::HttpUrl {
                            field: "source".into(),
                            value: source.into(),
                        },
                    );
                }
            }
        }
    }
}
