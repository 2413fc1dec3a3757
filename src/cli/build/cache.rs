//! `--cache-from` / `--cache-to` of `flense build`, `flense run VARIANT` and `flense
//! pipeline`, with `FLENSE_CACHE_FROM` / `FLENSE_CACHE_TO` (comma-separated) when the
//! flags are absent, `--cache-mounts` (or `FLENSE_CACHE_MOUNTS=1`) and
//! `--keep-tool-caches`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::builder::FalseyValueParser;
use clap::Args;

use flense::builder::layers::remote::SharedCache;
use flense::image::cache_ref::CacheRef;
use flense::registry::Client;

/// The environment variable `--cache-from` defaults to.
pub const CACHE_FROM_ENV: &str = "FLENSE_CACHE_FROM";
/// The environment variable `--cache-to` defaults to.
pub const CACHE_TO_ENV: &str = "FLENSE_CACHE_TO";
/// The environment variable that turns `--cache-mounts` on (unless 0, false, no, off).
pub const CACHE_MOUNTS_ENV: &str = "FLENSE_CACHE_MOUNTS";

/// Shared build caches and tool caches.
#[derive(Args, Debug, Clone, Default)]
pub struct CacheArgs {
    /// Reuse the steps cached in HOST[:PORT]/REPO[:TAG] or oci:DIR[:TAG] (repeatable;
    /// default: $FLENSE_CACHE_FROM, comma-separated). A missing cache is a warning.
    #[arg(long = "cache-from", value_name = "REF")]
    pub cache_from: Vec<String>,
    /// After a successful build, add its steps to the cache HOST[:PORT]/REPO[:TAG] or
    /// oci:DIR[:TAG] (repeatable; default: $FLENSE_CACHE_TO, comma-separated). A failed
    /// export is a warning.
    #[arg(long = "cache-to", value_name = "REF")]
    pub cache_to: Vec<String>,
    /// With --cache-from/--cache-to: also restore and export the contents of the
    /// steps' cache mounts (builder caches, and the npm, pip, composer and apt caches),
    /// one blob per cache id; only changed ones are exported (default:
    /// $FLENSE_CACHE_MOUNTS).
    #[arg(long, env = CACHE_MOUNTS_ENV, value_parser = FalseyValueParser::new())]
    pub cache_mounts: bool,
    /// Keep package managers' caches (npm, pip, composer, apt archives) and tools' logs
    /// in the layers, byte for byte as Blubber does (default: caches mounted from the
    /// store, logs dropped, so dependency layers are reproducible).
    #[arg(long)]
    pub keep_tool_caches: bool,
}

impl CacheArgs {
    /// The `--cache-from` references (else the environment's), parsed.
    pub fn sources(&self) -> anyhow::Result<Vec<CacheRef>> {
        refs(&self.cache_from, CACHE_FROM_ENV, "--cache-from")
    }

    /// The `--cache-to` references (else the environment's), parsed.
    pub fn targets(&self) -> anyhow::Result<Vec<CacheRef>> {
        refs(&self.cache_to, CACHE_TO_ENV, "--cache-to")
    }

    /// The shared caches of a build, loaded through `client` (`None` when there are
    /// none). A bad reference is an invalid input.
    pub fn open(&self, client: &Client) -> anyhow::Result<Option<Arc<SharedCache>>> {
        let from = self.sources().map_err(super::super::invalid)?;
        let to = self.targets().map_err(super::super::invalid)?;
        if from.is_empty() && to.is_empty() {
            return Ok(None);
        }
        let cache = SharedCache::open(client.clone(), &from, &to).with_mounts(self.cache_mounts);
        Ok(Some(Arc::new(cache)))
    }

    /// The flags again, for a child `flense build` (the environment is inherited).
    pub fn as_args(&self) -> Vec<String> {
        let from = self.cache_from.iter().map(|r| format!("--cache-from={r}"));
        let to = self.cache_to.iter().map(|r| format!("--cache-to={r}"));
        let mounts = self.cache_mounts.then(|| "--cache-mounts".to_string());
        let keep = self
            .keep_tool_caches
            .then(|| "--keep-tool-caches".to_string());
        from.chain(to).chain(mounts).chain(keep).collect()
    }
}

/// `flags`, else the comma-separated list in `env`, as cache references.
fn refs(flags: &[String], env: &str, flag: &str) -> anyhow::Result<Vec<CacheRef>> {
    let from_env;
    let texts: Vec<&str> = if flags.is_empty() {
        from_env = std::env::var(env).unwrap_or_default();
        from_env
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        flags.iter().map(String::as_str).collect()
    };
    let source = if flags.is_empty() { env } else { flag };
    texts
        .into_iter()
        .map(|t| CacheRef::parse(t).with_context(|| format!("{source} {t:?}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_environment_and_lists_are_comma_separated() {
        let flags = vec!["oci:/tmp/c".to_string()];
        let parsed = refs(&flags, "FLENSE_TEST_CACHE_UNSET", "--cache-from").unwrap();
        assert_eq!(parsed, vec![CacheRef::parse("oci:/tmp/c").unwrap()]);
        std::env::set_var("FLENSE_TEST_CACHE_LIST", " reg:5000/a/cache , oci:/x:t,");
        let parsed = refs(&[], "FLENSE_TEST_CACHE_LIST", "--cache-from").unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1], CacheRef::parse("oci:/x:t").unwrap());
        std::env::set_var("FLENSE_TEST_CACHE_BAD", "reg:5000/a@sha256:00");
        let err = refs(&[], "FLENSE_TEST_CACHE_BAD", "--cache-from").unwrap_err();
        assert!(format!("{err:#}").contains("FLENSE_TEST_CACHE_BAD"));
    }

    #[test]
    fn child_builds_get_the_cache_flags_cache_mounts_and_keep_tool_caches() {
        let args = CacheArgs {
            cache_from: vec!["oci:/c".into()],
            cache_to: Vec::new(),
            cache_mounts: true,
            keep_tool_caches: true,
        };
        assert_eq!(
            args.as_args(),
            [
                "--cache-from=oci:/c",
                "--cache-mounts",
                "--keep-tool-caches"
            ]
        );
        assert!(CacheArgs::default().as_args().is_empty());
    }
}
