//! What the supervisor tells the state ([`Event`]) and what the state asks
//! of the supervisor in return ([`Effect`]).

use std::time::Duration;

use crate::fixup::Remedy;
use crate::model::{ExitInfo, InstanceId, Signal};
use crate::transport::decode::JobEvent;

/// `zap run` runs every job once; `zap up` keeps them running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Up,
}

/// What happened to an instance, as the supervisor learns it.
#[derive(Debug, Clone)]
pub enum Event {
    /// The decoded output of the job's shell.
    Job(JobEvent),
    /// The host could not be reached or authenticated; nothing ran.
    Unreachable(String),
    /// The shell could not be started at all (not a host problem).
    LaunchFailed(String),
    /// The connection to the job's host died under the running job.
    HostLost(String),
    /// The job's host answers again, and what its lost run left there was
    /// stopped.
    HostBack,
    /// Reconnecting to the lost job's host failed, for a reason waiting will
    /// not mend (a changed host key, refused authentication): unreachable.
    Refused(String),
    /// Reconnecting to the lost job's host failed for now: still lost.
    StillLost(String),
    /// A timer set by [`Effect::Wake`] went off.
    Wake(Wake),
    /// The `ready` probe ran: `true` when it exited 0.
    ProbeDone(bool),
    /// zap (a timeout, Ctrl+C, `zap stop`) stops the job and keeps it stopped.
    Stop {
        reason: String,
        counts_as_failure: bool,
    },
    /// Stop the job if it runs, then start it again (`zap restart`, R,
    /// `restart_on`, `restart_every`).
    Restart { reason: String },
    /// Start a job that is stopped or done (`zap start`).
    Start,
    /// A fixup's remedy ran to its end (`output`: what it printed, both
    /// streams, cut short if long).
    RemedyDone { exit: ExitInfo, output: String },
    /// Send a signal to the job's whole process group, nothing more (the
    /// TUI's signal menu): what follows depends on how the job takes it.
    SendSignal(Signal),
}

impl Event {
    /// Events that belong to one run of the shell, as opposed to requests:
    /// those of an older run are ignored.
    pub fn is_about_a_run(&self) -> bool {
        matches!(
            self,
            Event::Job(_)
                | Event::Unreachable(_)
                | Event::LaunchFailed(_)
                | Event::HostLost(_)
                | Event::Wake(_)
                | Event::ProbeDone(_)
                | Event::RemedyDone { .. }
        )
    }
}

/// Why a timer was set. Timers carry the run generation they were set in,
/// so one that outlived its run is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The backoff delay is over: start again.
    BackoffOver,
    /// The stop signal's grace is over: KILL what is left.
    StopGraceOver,
    /// KILL was sent a while ago and the shell's output is still open (a
    /// child that left the group holds it): the run is over all the same.
    KillGraceOver,
    /// The shell's last step ended a while ago (`stop.timeout` under
    /// `scope = "tree"`, after what it left behind was signalled) and the
    /// output is still open: KILL what it left (tree), or end the run.
    ShellEnding,
    /// What the ended shell left was KILLed a while ago and the output is
    /// still open (a process that cleared its marker holds it): the run is
    /// over all the same.
    LeftBehindKilled,
    /// `restart_every` came round.
    ScheduledRestart,
    /// Time to run the `ready` probe again.
    Probe,
    /// A fixup's cooldown is over: run its remedy.
    RemedyDue,
}

/// What the supervisor must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start a new run of the instance's shell.
    Start { id: InstanceId, generation: u64 },
    /// Signal the process group of the instance's shell.
    Signal {
        id: InstanceId,
        pgid: u32,
        signal: Signal,
    },
    /// Signal every process that run `generation` of the instance started,
    /// wherever it went (it carries the run's marker in its environment),
    /// but `spare`: the job's shell when it ends by itself.
    SignalMarked {
        id: InstanceId,
        generation: u64,
        signal: Signal,
        spare: Option<u32>,
    },
    /// Send `Event::Wake(why)` for this generation after `after`.
    Wake {
        id: InstanceId,
        generation: u64,
        after: Duration,
        why: Wake,
    },
    /// Run the `ready` probe on the instance's host; answer with
    /// `Event::ProbeDone`.
    Probe {
        id: InstanceId,
        generation: u64,
        command: String,
    },
    /// Run a fixup's remedy (where `remedy.on` says) to completion; answer
    /// with `Event::RemedyDone`. `keep_pgids`: zap's live jobs on the job's
    /// host, which the remedy must spare.
    Remedy {
        id: InstanceId,
        generation: u64,
        remedy: Box<Remedy>,
        keep_pgids: Vec<u32>,
    },
}
