//! The nouns every layer shares: names of hosts, jobs and instances, streams,
//! and how a step or a job ended.

use std::fmt;

/// A host's name as written in `hosts.toml` (`[hosts.NAME]`), or `local`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostName(pub String);

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job's full name: the system (the file stem of `jobs/SYSTEM.toml`) and the
/// job's key in that file. Shown as `system.job`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobName {
    pub system: String,
    pub job: String,
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.system, self.job)
    }
}

/// One job on one host: a job with `hosts = ["n1", "n2"]` has two instances.
/// Shown as `system.job@host`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId {
    pub job: JobName,
    pub host: HostName,
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.job, self.host)
    }
}

/// A step's position in its job, counted from 1 as users count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepIndex(pub u32);

impl fmt::Display for StepIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which of a job's output streams a line came from. They are never merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a process ended, as far as zap could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitInfo {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal (name without `SIG`, e.g. `TERM`).
    Signal(String),
    /// The channel closed without saying how the process ended: never taken
    /// for success.
    Unknown,
}

impl ExitInfo {
    pub fn is_success(&self) -> bool {
        matches!(self, ExitInfo::Code(0))
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitInfo::Code(code) => write!(f, "exit {code}"),
            ExitInfo::Signal(signal) => write!(f, "killed by SIG{signal}"),
            ExitInfo::Unknown => f.write_str("exit unknown"),
        }
    }
}

/// Signal names zap sends, as `kill -s NAME` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
    Int,
    Hup,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Int => "INT",
            Signal::Hup => "HUP",
        }
    }

    pub fn number(self) -> i32 {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Int => libc::SIGINT,
            Signal::Hup => libc::SIGHUP,
        }
    }
}
