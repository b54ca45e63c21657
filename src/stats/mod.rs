//! Remote and local CPU and memory per job and host, from the hosts' process tables.
//!
//! - `parse`: the snapshot text the host-side poller (`poll.awk`) prints → [`Snapshot`];
//! - `procstat`: one process's `/proc/PID/statm` and `stat` lines, which the
//!   poller hands on unparsed → [`ProcSample`];
//! - `frame`: cuts that output into snapshots by their nonce-carrying frame lines;
//! - `poller`: one long-lived channel per host running `poll.awk`, this
//!   machine included (through the local transport): one reader and one
//!   parser, so local jobs get exactly the figures remote ones get;
//! - `rate`: CPU% as the recent rate between two snapshots → [`HostStats`];
//! - `tree`: which processes belong to which job instance → [`JobStats`].
//!
//! Pollers only send [`HostStats`]; the supervisor calls [`attribute`] with
//! the shell pids it knows.

pub mod frame;
pub mod parse;
pub mod poller;
pub mod procstat;
pub mod rate;
pub mod tree;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod fleet_tests;
#[cfg(test)]
mod local_tests;

use std::time::Instant;

use crate::model::HostName;

pub use parse::{ParseError, ProcSample, Snapshot, parse_snapshot};
pub use poller::spawn_poller;
pub use tree::attribute;

/// What one poll of one host says, CPU rates included. Sent by a poller
/// after every snapshot, and when the poller fails (then `unavailable` says
/// why and every figure is empty: a failed host never shows stale numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct HostStats {
    pub host: HostName,
    /// When zap read the snapshot (or saw the failure): the figures' age.
    pub at: Instant,
    /// Load average over 1, 5 and 15 minutes.
    pub load: Option<[f64; 3]>,
    /// The whole host's CPU use over the last interval, 0–100 (100 = every
    /// core busy); `None` on the first snapshot of a poller.
    pub cpu_percent: Option<f64>,
    pub cores: Option<u32>,
    /// Bytes in use: total minus what the kernel calls available.
    pub mem_used: Option<u64>,
    pub mem_total: Option<u64>,
    pub unavailable: Option<String>,
    /// Every process of the host, with its own CPU% and RSS: the host view
    /// draws each job's tree from this.
    pub processes: Vec<ProcessStats>,
}

impl HostStats {
    /// The figures of a host whose poller failed: none.
    pub fn unavailable(host: HostName, at: Instant, reason: String) -> HostStats {
        HostStats {
            host,
            at,
            load: None,
            cpu_percent: None,
            cores: None,
            mem_used: None,
            mem_total: None,
            unavailable: Some(reason),
            processes: Vec::new(),
        }
    }
}

/// One process of a host.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    /// 0 when the source does not tell (`ps` mode).
    pub sid: u32,
    pub state: char,
    pub comm: String,
    /// Its CPU use since the last snapshot (100 = one core); `None` when
    /// there is nothing to compare with yet (first sight of a process that
    /// already ran before the last snapshot, or the poller's first snapshot).
    pub cpu_percent: Option<f64>,
    pub rss_bytes: u64,
}

/// A job instance's share of its host: the whole process tree under its
/// shell (see [`tree`] for which processes count).
#[derive(Debug, Clone, PartialEq)]
pub struct JobStats {
    /// Sum over its processes; `None` while none of them has a rate yet.
    pub cpu_percent: Option<f64>,
    pub rss_bytes: u64,
    pub procs: u32,
    /// The time of the host sample these come from: the figures' age.
    pub at: Instant,
}
