//! `.pipeline/config.yaml`: model, execution graph, interpolation, stage runner, reports.
