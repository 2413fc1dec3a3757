//! Validation of `apt`: packages, release keys, sources and proxies.

use super::*;

impl Validator<'_> {
    pub(super) fn apt(&mut self, apt: &AptConfig, path: &str) {
        for (release, packages) in &apt.packages {
            self.apt_packages(release, packages, &format!("{path}.packages[{release}]"));
        }
        for (i, source) in apt.sources.iter().enumerate() {
            self.apt_source(source, &format!("{path}.sources[{i}]"));
        }
        for (i, proxy) in apt.proxies.iter().enumerate() {
            self.apt_proxy(proxy, &format!("{path}.proxies[{i}]"));
        }
    }

    /// The packages of one release (`default` for a plain list).
    fn apt_packages(&mut self, release: &str, packages: &[String], rpath: &str) {
        if release != "default" && !rules::is_debian_release(release) {
            self.err(
                &format!("{rpath}#key"),
                Problem::DebianRelease {
                    field: field_of(rpath),
                    value: release.to_string(),
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

    fn apt_source(&mut self, source: &AptSource, spath: &str) {
        self.required_http_url(&source.url, spath);
        if source.distribution.is_empty() {
            self.err(
                &format!("{spath}.distribution"),
                Problem::Required {
                    field: "distribution".into(),
                },
            );
        } else if !rules::is_debian_release(&source.distribution) {
            self.err(
                &format!("{spath}.distribution"),
                Problem::DebianRelease {
                    field: "distribution".into(),
                    value: source.distribution.clone(),
                },
            );
        }
        for (j, c) in source.components.iter().enumerate() {
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

    fn apt_proxy(&mut self, proxy: &AptProxy, ppath: &str) {
        self.required_http_url(&proxy.url, ppath);
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

    /// The `url` of a source or proxy at `parent`: required, and http(s).
    fn required_http_url(&mut self, url: &str, parent: &str) {
        if url.is_empty() {
            self.err(
                &format!("{parent}.url"),
                Problem::Required {
                    field: "url".into(),
                },
            );
        } else if !rules::is_http_url(url) {
            self.err(
                &format!("{parent}.url"),
                Problem::HttpUrl {
                    field: "url".into(),
                    value: url.to_string(),
                },
            );
        }
    }
}
