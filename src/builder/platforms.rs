//! Multi-platform builds (`flense build --platform linux/amd64,linux/arm64`): the
//! variant is built once per platform — base images resolved for it, copies and users
//! written for it, commands of a foreign platform run under QEMU emulation
//! ([`super::emulation`]) — a few platforms at a time, and the images are tagged
//! together as one OCI image index.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::image::platform::Platform;
use crate::store::Store;

use super::emulation::check_foreign_platform;
use super::events::{BuildEvent, EventSink};
use super::project::{build_project, ProjectBuild, ProjectError};
use super::run::runner::StepRunner;
use super::stage::{BuiltImage, ImageSource};
use super::BuildError;

/// One platform of a multi-platform build and where its images come from.
pub struct PlatformImages<'a> {
    /// The platform.
    pub platform: Platform,
    /// Its base and source images ([`super::images::PullingImages`] for it).
    pub images: &'a (dyn ImageSource + Sync),
}

/// How many platforms build at once: one per core, at most one per platform.
pub fn parallel_builds(platforms: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(platforms).max(1)
}

/// Builds `req` for every platform, [`parallel_builds`] at a time (after checking
/// that every foreign platform can be emulated), then stores an
/// index over the images and tags it as `req.settings.tag`. Returns the index as a
/// [`BuiltImage`] whose `manifest` is the index descriptor and whose `config` is the
/// first platform's. The first failing platform's error is returned (the others
/// finish their running step first).
pub fn build_platforms(
    store: &Store,
    runner: &(dyn StepRunner + Sync),
    events: &(dyn EventSink + Sync),
    req: &ProjectBuild,
    platforms: &[PlatformImages<'_>],
) -> Result<BuiltImage, ProjectError> {
    // Before any platform runs a step: emulation for each foreign one.
    for p in platforms {
        check_foreign_platform(&p.platform).map_err(BuildError::from)?;
    }
    let _hold = store.hold_blobs().map_err(BuildError::from)?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<BuiltImage, ProjectError>>>> =
        Mutex::new(platforms.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..parallel_builds(platforms.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(p) = platforms.get(i) else { break };
                let result = build_one(store, runner, events, req, p);
                let failed = result.is_err();
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
                if failed {
                    next.store(platforms.len(), Ordering::SeqCst);
                }
            });
        }
    });
    let mut built = Vec::new();
    for (p, result) in platforms
        .iter()
        .zip(results.into_inner().unwrap_or_else(|e| e.into_inner()))
    {
        if let Some(result) = result {
            built.push((p.platform.clone(), result?));
        }
    }
    let manifests: Vec<_> = built
        .iter()
        .map(|(p, b)| (b.manifest.clone(), p.clone()))
        .collect();
    let tag = req.settings.tag.as_deref();
    let index = store
        .commit_index(tag, &manifests)
        .map_err(BuildError::from)?;
    let (_, first) = built.into_iter().next().ok_or_else(|| BuildError::Image {
        reference: req.variant.clone(),
        detail: "no platform to build it for".into(),
    })?;
    let reference = tag.map(str::to_string);
    events.event(&BuildEvent::Image {
        variant: req.variant.clone(),
        digest: index.digest().clone(),
        reference: reference.clone(),
    });
    Ok(BuiltImage {
        manifest: index,
        reference,
        ..first
    })
}

/// Builds one platform's image, untagged, its events' variant names marked with the
/// platform.
fn build_one(
    store: &Store,
    runner: &dyn StepRunner,
    events: &(dyn EventSink + Sync),
    req: &ProjectBuild,
    p: &PlatformImages<'_>,
) -> Result<BuiltImage, ProjectError> {
    let mut req = req.clone();
    req.platform = Some(p.platform.clone());
    req.settings.tag = None;
    req.settings.foreign_platform = Some(p.platform.clone()).filter(|p| !p.is_host());
    let events = PlatformEvents {
        platform: p.platform.to_string(),
        inner: events,
    };
    build_project(store, runner, p.images, &events, &req).map_err(|e| ProjectError::Platform {
        platform: p.platform.to_string(),
        source: Box::new(e),
    })
}

/// Marks each event's variant with the platform: `test (linux/arm64)`.
struct PlatformEvents<'a> {
    platform: String,
    inner: &'a (dyn EventSink + Sync),
}

impl EventSink for PlatformEvents<'_> {
    fn event(&self, event: &BuildEvent) {
        let mut marked = event.clone();
        match &mut marked {
            BuildEvent::Stage { variant, .. }
            | BuildEvent::Step { variant, .. }
            | BuildEvent::Image { variant, .. } => {
                *variant = format!("{variant} ({})", self.platform);
            }
            BuildEvent::Warning { .. } => {}
        }
        self.inner.event(&marked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_is_bounded_by_platforms_and_cores() {
        assert_eq!(parallel_builds(1), 1);
        assert!(parallel_builds(8) >= 1);
        assert!(parallel_builds(2) <= 2);
    }
}
