//! `apt` (§5.4): proxies, keyrings, sources and package installs, as root.

use crate::config::AptConfig;

use super::instruction::{EnvVar, Phase};
use super::quote::{go_quote, shell_line};
use super::stage::StageState;

/// The apt proxy configuration file (removed again at the end of the install RUN).
pub const PROXIES_FILE: &str = "/etc/apt/apt.conf.d/99blubber-proxies";
/// The extra sources list.
pub const SOURCES_FILE: &str = "/etc/apt/sources.list.d/99blubber.list";

/// The keyring path of a `signed-by` key: `/etc/apt/keyrings/<sha256 hex>.asc`.
pub fn keyring_path(signed_by: &str) -> String {
    format!(
        "/etc/apt/keyrings/{}.asc",
        crate::image::digest::sha256(signed_by.as_bytes())
    )
}

/// Scheme and host of a URL; validation already ensured it is http(s).
fn scheme_and_host(text: &str) -> (String, String) {
    match url::Url::parse(text) {
        Ok(u) => (
            u.scheme().to_string(),
            u.host_str().unwrap_or("").to_string(),
        ),
        Err(_) => {
            let scheme = text.split("://").next().unwrap_or("http").to_string();
            (scheme, String::new())
        }
    }
}

/// The proxies file text: one `Acquire::` line per proxy, each ending in a newline.
fn proxies_text(apt: &AptConfig) -> String {
    let mut lines = Vec::new();
    for proxy in &apt.proxies {
        let line = match proxy.source.as_deref().filter(|s| !s.is_empty()) {
            Some(source) => {
                let (scheme, host) = scheme_and_host(source);
                format!("Acquire::{scheme}::Proxy::{host} {};", go_quote(&proxy.url))
            }
            None => {
                let (scheme, _) = scheme_and_host(&proxy.url);
                format!("Acquire::{scheme}::Proxy {};", go_quote(&proxy.url))
            }
        };
        lines.push(line);
    }
    lines.join("\n") + "\n"
}

/// The sources list text: one `deb` line per source, each ending in a newline.
fn sources_text(apt: &AptConfig) -> String {
    let lines: Vec<String> = apt
        .sources
        .iter()
        .map(|s| {
            let mut words = vec!["deb".to_string()];
            if !s.signed_by.is_empty() {
                words.push(format!("[signed-by={}]", keyring_path(&s.signed_by)));
            }
            words.push(s.url.clone());
            words.push(s.distribution.clone());
            words.extend(s.components.iter().cloned());
            words.join(" ")
        })
        .collect();
    lines.join("\n") + "\n"
}

/// Emits the apt instructions (Privileged phase only, and only when apt has content).
pub fn emit(state: &mut StageState, apt: &AptConfig) {
    if state.phase != Phase::Privileged || apt.is_empty() {
        return;
    }
    state.env(vec![EnvVar::new("DEBIAN_FRONTEND", "noninteractive")]);
    if !apt.proxies.is_empty() {
        state.file(PROXIES_FILE, proxies_text(apt), 0o644);
    }
    for source in apt.sources.iter().filter(|s| !s.signed_by.is_empty()) {
        state.file(
            &keyring_path(&source.signed_by),
            source.signed_by.clone(),
            0o644,
        );
    }
    if !apt.sources.is_empty() {
        state.run_all(vec![
            "apt-get update".into(),
            shell_line("apt-get install -y", &["ca-certificates".into()]),
        ]);
        state.file(SOURCES_FILE, sources_text(apt), 0o644);
    }
    let mut chain = Vec::new();
    let releases: Vec<(&String, &Vec<String>)> =
        apt.packages.iter().filter(|(_, p)| !p.is_empty()).collect();
    if !releases.is_empty() {
        chain.push("apt-get update".to_string());
    }
    for (release, packages) in releases {
        if release == "default" {
            chain.push(shell_line("apt-get install -y", packages));
        } else {
            let mut args = vec![release.clone()];
            args.extend(packages.iter().cloned());
            chain.push(shell_line("apt-get install -y -t", &args));
        }
    }
    chain.push("rm -rf /var/lib/apt/lists/*".into());
    if !apt.proxies.is_empty() {
        chain.push(shell_line("rm -f", &[PROXIES_FILE.into()]));
    }
    state.run_all(chain);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_name_is_the_sha256_of_the_key_text() {
        assert_eq!(
            keyring_path("foo"),
            "/etc/apt/keyrings/2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae.asc"
        );
    }
}
