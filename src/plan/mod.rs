//! Compiles a Blubber variant into a plan of instructions and renders it as a Dockerfile.
//!
//! Pure: no I/O.
