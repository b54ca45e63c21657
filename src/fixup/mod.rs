//! Fixups: a line of a job's output names a known failure, a remedy command
//! heals it, and the job starts again.
//!
//! This module is the pure part, with no I/O of its own:
//! - `rules`: which rules a job has, in order, and the [`Matcher`] that sees
//!   the job's lines and exit and says when a remedy is due;
//! - `quote`: captures substituted into a remedy as literal shell words;
//! - `remedy`: the [`Remedy`] to run, its environment, and how it is judged;
//! - `attempts`: `max` and `cooldown` per rule within one run of a job;
//! - `packs`: the built-in packs and the test cases every pack carries;
//! - `commands`: `zap fixups list`, `zap fixups test` and the check that
//!   `zap check` runs.
//!
//! The supervisor does the rest: it stops the job, runs the remedy where it
//! says, waits for it, and starts the job again.

mod attempts;
mod commands;
pub mod packs;
mod quote;
mod remedy;
#[cfg(test)]
mod remedy_tests;
mod rules;
#[cfg(test)]
mod testing;

pub use attempts::{Attempts, Decision};
pub use commands::{check_packs, list_command, test_command};
pub use packs::{TestFailure, test_pack};
pub use quote::substitute;
pub use remedy::{Guard, Remedy};
pub use rules::{Matcher, first_match, rules_for};
