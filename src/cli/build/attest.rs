//! `flense build --sbom --provenance`: builds while recording what provenance needs
//! (the steps, the stages' bases, every image read with its digest), then stores the
//! statements as an attestation manifest in an index tagged in place of the image
//! manifest. The image manifest itself is the one a build without them writes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use flense::attest::attach::{store_attestations, Attestation};
use flense::attest::intoto::{Statement, Subject, SLSA_PROVENANCE_V1};
use flense::attest::provenance::{self, BuildRecord, RecordingEvents, RecordingImages};
use flense::attest::{now_epoch, sbom_document, SbomFormat};
use flense::builder::project::build_project;
use flense::builder::stage::BuiltImage;
use flense::image::digest::digest_of;
use flense::image::oci::rfc3339;
use flense::image::platform::Platform;
use flense::store::Store;
use oci_spec::image::Descriptor;

use super::{prepare, BuildArgs, Output, Printer};
use crate::cli::Globals;

/// Which attestations to attach.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// An SPDX SBOM.
    pub sbom: bool,
    /// SLSA provenance.
    pub provenance: bool,
}

/// Builds `args.variant` and attaches the wanted attestations; returns the store, the
/// built image and the index (now tagged) that holds both.
pub fn build_attested(
    globals: &Globals,
    args: &BuildArgs,
    format: flense::image::oci::ImageFormat,
    output: Output,
    wanted: Wanted,
) -> anyhow::Result<(Store, BuiltImage, Descriptor)> {
    let options = &args.options;
    let p = prepare(globals, &args.variant, options, args.tag.clone(), format)?;
    if !p.platforms.is_empty() {
        return Err(crate::cli::invalid(anyhow::anyhow!(
            "--sbom and --provenance work on one platform per build for now; build each \
             platform with its own --platform, or leave them out of a multi-platform build"
        )));
    }
    crate::cli::progress::install(output != Output::Human);
    let printer = Printer(output);
    let events = RecordingEvents::new(&printer);
    let images = RecordingImages::new(&p.images);
    let started = rfc3339(now_epoch());
    let built = build_project(&p.store, &p.runner, &images, &events, &p.req)
        .map_err(super::project_error)?;
    let finished = rfc3339(now_epoch());
    let name = built
        .reference
        .as_deref()
        .map(flense::store::parse_name)
        .transpose()
        .map_err(crate::cli::invalid)?;
    let mut image = p.store.image_at(&built.manifest)?;
    image.reference = name.clone();
    let subject = Subject::image(name.as_deref(), built.manifest.digest());
    let mut attestations = Vec::new();
    if wanted.sbom {
        let doc = sbom_document(&p.store, &image, SbomFormat::SpdxJson)
            .context("reading the built image's packages")?;
        let predicate_type = SbomFormat::SpdxJson.predicate_type();
        let statement = Statement::new(subject.clone(), predicate_type, doc);
        attestations.push(Attestation {
            predicate_type: predicate_type.into(),
            statement: serde_json::to_vec(&statement)?,
        });
    }
    if wanted.provenance {
        let config_bytes = std::fs::read(&p.req.config_file)
            .with_context(|| format!("reading {}", p.req.config_file.display()))?;
        let record = BuildRecord {
            config_path: relative_to(&p.req.config_file, &options.project.context),
            config_digest: digest_of(&config_bytes),
            variant: args.variant.clone(),
            build_args: p.req.build_args.clone(),
            labels: p.req.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            platform: p
                .req
                .platform
                .clone()
                .unwrap_or_else(|| Platform::host().without_variant())
                .to_string(),
            git_commit: provenance::git_commit(&options.project.context),
            images: images.inputs(&events.bases()),
            steps: events.steps(),
            started,
            finished,
        };
        let statement = Statement::new(subject, SLSA_PROVENANCE_V1, provenance::predicate(&record));
        attestations.push(Attestation {
            predicate_type: SLSA_PROVENANCE_V1.into(),
            statement: serde_json::to_vec(&statement)?,
        });
    }
    let index = store_attestations(&p.store, &image, &attestations)?;
    if let Some(name) = &name {
        p.store.set_tag(name, &index)?;
    }
    Ok((p.store, built, index))
}

/// `file` relative to `dir` when it is inside it, else as given.
fn relative_to(file: &Path, dir: &Path) -> String {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (file, dir) = (canon(file), canon(dir));
    file.strip_prefix(&dir)
        .unwrap_or(&file)
        .display()
        .to_string()
}
