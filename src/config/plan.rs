//! The typed plan that the rest of zap runs: what `hosts.toml` and `jobs/*.toml`
//! mean once validated. No raw TOML strings travel past this module.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use super::diagnostic::Diagnostic;
use crate::model::{HostName, JobName, Signal, Stream};

/// Everything zap knows from the config folder.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The folder that holds `hosts.toml` and `jobs/`.
    pub dir: PathBuf,
    /// Every host, including the built-in `local` one.
    pub hosts: BTreeMap<HostName, Host>,
    /// Systems in file-name order.
    pub systems: Vec<System>,
    /// Jobs in file order within each system, systems in file-name order.
    pub jobs: Vec<Job>,
    /// Every fixup pack a job may list, by name: the built-in ones and
    /// `jobs/fixups/*.toml` (a file replaces the built-in pack of its name).
    pub fixup_packs: BTreeMap<String, FixupPack>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: HostName,
    pub kind: HostKind,
    /// How often the stats poller samples this host's process table.
    pub stats_every: Duration,
}

#[derive(Debug, Clone)]
pub enum HostKind {
    /// Runs on this machine without SSH.
    Local,
    Ssh(SshHost),
}

/// An SSH host with `[defaults]` already folded in. Values that `~/.ssh/config`
/// may supply stay `None` here; the transport resolves them at connect time.
#[derive(Debug, Clone)]
pub struct SshHost {
    /// An address, a host name, or an alias from `~/.ssh/config`.
    pub address: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// Absolute path (`~` expanded, relative paths taken from the config folder).
    pub identity: Option<PathBuf>,
    /// Absolute path; default `~/.ssh/known_hosts`.
    pub known_hosts: PathBuf,
    pub host_key_check: HostKeyCheck,
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    /// Another host of `hosts.toml` to reach this one through.
    pub jump: Option<HostName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// Unknown and changed keys are refused.
    Strict,
    /// Unknown keys are learned into known_hosts; changed keys are refused.
    AcceptNew,
}

#[derive(Debug, Clone)]
pub struct System {
    pub name: String,
    pub description: Option<String>,
    pub autostart: bool,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub name: JobName,
    /// One instance per host, in the order written.
    pub hosts: Vec<HostName>,
    pub steps: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub pty: bool,
    pub after: Vec<JobName>,
    pub ready: Ready,
    pub restart: RestartPolicy,
    pub restart_on: Regex,
    pub restart_every: Option<Duration>,
    pub backoff: Backoff,
    pub max_restarts: Option<u32>,
    /// Lines of output kept in memory per instance (default 6000).
    pub log_lines: usize,
    pub stop: StopSpec,
    /// Named fixup packs, in the order listed.
    pub fixup_packs: Vec<String>,
    /// Job-local rules, tried before the packs.
    pub fixup_rules: Vec<FixupRule>,
}

#[derive(Debug, Clone)]
pub enum Ready {
    /// Ready when the job exits with this code (one-shot jobs; the default is 0).
    Exit(i32),
    /// Ready when a line of output matches.
    Log(Regex),
    /// Ready when this command, run on the job's host, exits 0.
    Probe { command: String, every: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSpec {
    pub signal: Signal,
    pub timeout: Duration,
    pub scope: StopScope,
}

/// What stopping a job reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopScope {
    /// Every process the job started, wherever it went: its process group
    /// and every process carrying its run's marker in its environment
    /// (`setsid`, `nohup … &`, daemons that fork away). Also what is left
    /// when its shell ends by itself.
    Tree,
    /// Its process group only: what left it (a daemon the job launches on
    /// purpose) is left running.
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFilter {
    Stdout,
    Stderr,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemedyPlace {
    /// The job's own host.
    Host,
    /// This machine.
    Local,
}

#[derive(Debug, Clone)]
pub struct FixupRule {
    /// `pack/rule` for pack rules, `job/N` for job-local ones.
    pub name: String,
    pub when: Regex,
    pub stream: StreamFilter,
    /// Exit codes that must also hold; empty means any.
    pub exit: Vec<i32>,
    /// The remedy, with `{capture}` placeholders (checked against `when`).
    pub run: String,
    pub on: RemedyPlace,
    pub ok_exit: Vec<i32>,
    pub max: u32,
    pub cooldown: Duration,
    pub timeout: Duration,
}

/// A named, shareable set of fixup rules with the cases that prove them.
#[derive(Debug, Clone)]
pub struct FixupPack {
    pub name: String,
    pub description: String,
    /// The tools and versions whose messages the rules match.
    pub source: Option<String>,
    pub origin: PackOrigin,
    /// Named `pack/rule`, in file order.
    pub rules: Vec<FixupRule>,
    pub tests: Vec<PackTest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackOrigin {
    /// Compiled into zap.
    BuiltIn,
    /// `jobs/fixups/NAME.toml`, relative to the config folder.
    File(PathBuf),
}

/// A `[[test]]` case of a pack: a line of real output and what the pack's
/// rules must make of it.
#[derive(Debug, Clone)]
pub struct PackTest {
    pub line: String,
    pub stream: Stream,
    /// The job's exit code, for rules with an `exit` filter.
    pub exit: Option<i32>,
    pub expect: PackExpect,
    /// Where the case is written: a diagnostic whose message is filled in
    /// when the case fails.
    pub at: Diagnostic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackExpect {
    /// No rule of the pack may fire (`match = false`).
    Nothing,
    /// `rule` (its short name, without `pack/`) fires first; its remedy is
    /// exactly `run` when given, and its captures hold `captures`.
    Fires {
        rule: String,
        run: Option<String>,
        captures: BTreeMap<String, String>,
    },
}

impl Plan {
    pub fn job(&self, name: &JobName) -> Option<&Job> {
        self.jobs.iter().find(|job| &job.name == name)
    }

    pub fn system(&self, name: &str) -> Option<&System> {
        self.systems.iter().find(|system| system.name == name)
    }
}
