//! A human-readable view of a [`Plan`]: each stage with its steps, their phase and,
//! for commands, the user, directory and line that actually run.

use super::dockerfile::render_instruction;
use super::instruction::{Instruction, RunContext};
use super::Plan;

/// The plan as indented text, one line per step (plus one per executed command).
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let images = plan.images();
    if !images.is_empty() {
        out.push_str(&format!("images: {}\n", images.join(", ")));
    }
    for stage in &plan.stages {
        let base = stage.base.as_deref().unwrap_or("scratch");
        out.push_str(&format!("stage {} (from {base})", stage.variant));
        if !stage.depends_on_variants.is_empty() {
            out.push_str(&format!(
                ", reads from: {}",
                stage.depends_on_variants.join(", ")
            ));
        }
        out.push('\n');
        for step in &stage.steps {
            let text = render_instruction(&step.instruction);
            let first = text.lines().next().unwrap_or("");
            let phase = serde_json::to_value(step.phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!("  {phase:<17} {first}\n"));
            if let Some((context, effective)) = executed(&step.instruction) {
                out.push_str(&format!(
                    "  {:<17}   -> as {} in {}: {effective}\n",
                    "", context.user, context.workdir
                ));
            }
        }
        let image = &stage.image;
        out.push_str(&format!(
            "  image: user {}, workdir {}, entrypoint {}\n",
            image.user.as_deref().unwrap_or("(base)"),
            image.working_dir,
            image
                .entrypoint
                .as_ref()
                .map(|e| format!("{e:?}"))
                .unwrap_or_else(|| "(base)".into())
        ));
    }
    out
}

fn executed(instruction: &Instruction) -> Option<(&RunContext, String)> {
    match instruction {
        Instruction::Run {
            effective, context, ..
        }
        | Instruction::RunAll {
            effective, context, ..
        } => Some((context, effective.clone())),
        Instruction::RunScript {
            sha256, context, ..
        } => Some((context, format!("/{sha256}/script"))),
        _ => None,
    }
}
