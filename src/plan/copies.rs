//! `copies` (Install phase) and builder `requirements` (§2.8, §5.2, §5.10). Requirement
//! normalisation and grouping come from [`crate::config::group_requirements`].

use crate::config::{group_requirements, Artifact, LOCAL};

use super::instruction::{CopySource, Owner};
use super::stage::StageState;
use super::StageEnv;

/// Emits the copy instructions of builder requirements, owned by `owner`.
pub(crate) fn emit_requirements(
    state: &mut StageState,
    env: &StageEnv,
    requirements: &[Artifact],
    owner: Option<Owner>,
) {
    for g in group_requirements(requirements) {
        let mut destination = g.destination;
        if g.sources.len() > 1 && !destination.ends_with('/') {
            destination.push('/');
        }
        let spec = state.copy_spec(g.sources, destination, g.exclude, owner.clone());
        emit_copy(state, env, &g.from, spec);
    }
}

/// Emits the `copies` of the Install phase: one instruction per expanded artifact.
pub(crate) fn emit_copies(
    state: &mut StageState,
    env: &StageEnv,
    copies: &[Artifact],
    owner: Option<Owner>,
) {
    for c in copies {
        let spec = state.copy_spec(
            vec![c.source.clone()],
            c.destination.clone(),
            c.exclude.clone(),
            owner.clone(),
        );
        emit_copy(state, env, &c.from, spec);
    }
}

fn emit_copy(state: &mut StageState, env: &StageEnv, from: &str, spec: super::CopySpec) {
    // Blubber treats an empty `from` in requirements as the build context too.
    if from == LOCAL || from.is_empty() {
        state.copy(spec);
    } else if env.is_variant(from) {
        let workdir = env.final_workdir(from);
        state.copy_from(CopySource::Variant(from.to_string()), workdir, spec);
    } else {
        state.copy_from(CopySource::Image(from.to_string()), None, spec);
    }
}
