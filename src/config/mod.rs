//! The `.pipeline/blubber.yaml` (v4) model: parsing, validation, merging and includes.
//!
//! Pure: reads files, never touches the network or spawns processes.
