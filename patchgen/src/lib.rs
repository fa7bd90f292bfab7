//! patchgen: turns a kernel source fix into a live patch.
//!
//! This crate holds the object differ (`patchgen diff`): it reads the
//! original and the fixed build of one kernel object, finds what changed by
//! meaning, refuses what cannot be live-patched safely, and writes an object
//! with exactly what must be replaced in the running kernel.

pub mod build;
pub mod diff;
pub mod elf;
pub mod input;
pub mod kernel_line;
pub mod keys;
pub mod linkage;
pub mod target_symbols;

pub use diff::{diff, Diff, DiffOptions, Report};
pub use elf::{ObjectFile, ReadError};
