//! zap's exit codes, the same for every command: 0 all ok, 1 a job
//! failed, 2 a mistake in the command or the config, 3 a host could not be
//! reached.

pub const OK: u8 = 0;
pub const JOB_FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
/// zap itself failed (its terminal UI panicked): sysexits' EX_SOFTWARE,
/// apart from the codes that speak of the jobs.
pub const INTERNAL: u8 = 70;
