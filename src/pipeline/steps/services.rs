//! A stage's `services:` (docs/services.md), resolved for its run step: variants built
//! from the stage's Blubber file (with the stage's build context), images as given
//! (pulled by the run when missing, as the stage's `imagePullPolicy` says).

use serde_yaml::{Mapping, Value};

use super::super::exec::ServiceRequest;
use super::super::interp::Scope;
use super::super::model::{services_of, Stage};
use super::super::output::StageLog;
use super::build_run::{build_image, pull_policy};
use super::{StageCtx, StepResult};

/// The services of `stage` (its `services:` value, interpolated), images built or
/// named, in start order.
pub(super) fn resolve(
    ctx: &StageCtx,
    stage: &Stage,
    services: &Value,
    scope: &Scope,
    log: &StageLog,
) -> StepResult<Vec<ServiceRequest>> {
    let services = scope.interpolate(services)?;
    let pull = match &stage.build {
        Some(build) => pull_policy(&scope.interpolate(&build["imagePullPolicy"])?)?,
        None => None,
    };
    let mut out = Vec::new();
    for def in services_of(&services) {
        let (image, origin) = match (&def.build, &def.image) {
            (Some(variant), _) => {
                log.line(&format!(
                    "service {}: building variant '{variant}'",
                    def.name
                ));
                let build = service_build(stage, variant);
                let (id, local) = build_image(ctx, stage, &build, scope, log)?;
                let image = ctx.shared.local_image(&id).unwrap_or(local);
                (image, format!("variant {variant}"))
            }
            (None, Some(image)) => (image.clone(), format!("image {image}")),
            (None, None) => {
                return Err(format!("service `{}` has neither build nor image", def.name).into())
            }
        };
        out.push(ServiceRequest {
            name: def.name,
            image,
            origin,
            env: def.env,
            arguments: def.arguments,
            ready: def.ready,
            timeout: def.timeout,
            pull,
        });
    }
    Ok(out)
}

/// The build of a service variant: the stage's build (context, excludes, pull policy)
/// with the variant replaced.
fn service_build(stage: &Stage, variant: &str) -> Value {
    let mut m = stage
        .build
        .as_ref()
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_else(|| {
            let mut m = Mapping::new();
            m.insert("context".into(), ".".into());
            m.insert("imagePullPolicy".into(), "always".into());
            m
        });
    m.insert("variant".into(), variant.into());
    Value::Mapping(m)
}
