//! The dry run's platform check: build steps run natively, or, for a foreign target
//! platform, under QEMU emulation ([`crate::builder::emulation`]); so a stage that runs
//! commands needs a base for this machine's architecture or the target's, and the
//! target's needs a usable binfmt_misc handler.

use crate::builder::emulation::check_foreign_platform;
use crate::builder::layers::stage::StageState;
use crate::image::platform::Platform;
use crate::plan::{Instruction, Stage};

use super::DryRunProblem;

/// A stage that runs commands must have a base for this machine, or for the build's
/// foreign `target` platform with emulation available.
pub(super) fn check_architecture(
    st: &StageState,
    reference: &str,
    stage: &Stage,
    target: Option<&Platform>,
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
    let host_arch = Platform::host().architecture;
    if !runs_commands || image_arch == host_arch {
        return Ok(());
    }
    match target {
        Some(target) if target.architecture == image_arch => check_foreign_platform(target)
            .map_err(|e| DryRunProblem::Build(crate::builder::BuildError::Emulation(e))),
        _ => Err(DryRunProblem::ForeignArchitecture {
            reference: reference.to_string(),
            image_arch,
            host_arch,
        }),
    }
}
