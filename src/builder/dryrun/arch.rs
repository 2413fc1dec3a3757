//! The dry run's platform check: build steps run natively, so a stage that runs
//! commands needs a base image for this machine's architecture.

use crate::builder::layers::stage::StageState;
use crate::plan::{Instruction, Stage};

use super::DryRunProblem;

/// Commands run natively: a stage that runs any must have a base for this machine.
pub(super) fn check_architecture(
    st: &StageState,
    reference: &str,
    stage: &Stage,
) -> Result<(), DryRunProblem> {
    let runs_commands = stage.steps.iter().any(|s| {
        matches!(
            s.instruction,
            Instruction::Run { .. } | Instruction::RunAll { .. } | Instruction::RunScript { .. }
        )
    });
    let Some(base) = &st.base else {
        return Ok(());
    };
    let image_arch = base.config.architecture().to_string();
    let host_arch = crate::image::platform::Platform::host().architecture;
    if runs_commands && image_arch != host_arch {
        return Err(DryRunProblem::ForeignArchitecture {
            reference: reference.to_string(),
            image_arch,
            host_arch,
        });
    }
    Ok(())
}
