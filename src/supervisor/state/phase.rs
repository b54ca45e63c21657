//! Where an instance is in its life ([`Phase`]), how a run ended
//! ([`Outcome`]), and the state's name as every front end shows it
//! ([`StateKind`]).

use std::time::Instant;

use crate::fixup::Remedy;
use crate::model::{ExitInfo, JobName, StepIndex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Pending,
    /// Held back until these jobs are ready; `reason` names what holds it
    /// up ("waiting for web.db, which is restarting").
    Waiting {
        on: Vec<JobName>,
        reason: String,
    },
    Starting,
    Running,
    /// Asked to stop; waiting for its shell to end, then `then`.
    Stopping {
        then: AfterEnd,
    },
    /// Failed; starts again at `until`.
    Backoff {
        until: Instant,
    },
    /// Its host went away under it (`reason`); it starts again when the
    /// host is back.
    Lost {
        reason: String,
    },
    /// Stopped for a fixup: its remedy runs (`running`) or waits for its
    /// rule's cooldown; then the job starts again.
    Fixing {
        remedy: Box<Remedy>,
        running: bool,
    },
    Done(Outcome),
}

/// What to do when the running shell ends, because zap asked it to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterEnd {
    Stop {
        reason: String,
        counts_as_failure: bool,
    },
    /// Start again: at once when a person or `restart_every` asked;
    /// `paced` (the job's own output matched `restart_on`) after the backoff
    /// and within `max_restarts`, as a failure would, so a job that keeps
    /// asking cannot spin.
    Restart { reason: String, paced: bool },
    /// A fixup matched: run its remedy, then start again.
    Fix { remedy: Box<Remedy> },
    /// A fixup gave up: the job is failed with this reason.
    Fail { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A step failed, the shell died, or zap stopped it for a reason that is
    /// a failure (a timeout, too many restarts). `step` is the failing step.
    Failed {
        step: Option<StepIndex>,
        exit: ExitInfo,
        reason: Option<String>,
    },
    Unreachable(String),
    /// Stopped by the user, not a failure of the job.
    Stopped(String),
    /// Never started: a job it comes after did not become ready.
    DependencyFailed(JobName),
}

/// A job instance's state as `zap status`, the TUI and the report tell them
/// apart: one name each, taken from the phase, never parsed back from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKind {
    Pending,
    Waiting,
    Starting,
    Running,
    Ready,
    Stopping,
    Fixing,
    Backoff,
    Failed,
    Exited,
    Stopped,
    Lost,
    Unreachable,
}

impl StateKind {
    /// The kind of `phase`; `ready` tells a running job that reached its
    /// `ready` condition.
    pub fn of(phase: &Phase, ready: bool) -> StateKind {
        match phase {
            Phase::Pending => StateKind::Pending,
            Phase::Waiting { .. } => StateKind::Waiting,
            Phase::Starting => StateKind::Starting,
            Phase::Running if ready => StateKind::Ready,
            Phase::Running => StateKind::Running,
            Phase::Stopping { .. } => StateKind::Stopping,
            Phase::Backoff { .. } => StateKind::Backoff,
            Phase::Lost { .. } => StateKind::Lost,
            Phase::Fixing { .. } => StateKind::Fixing,
            Phase::Done(Outcome::Ok) => StateKind::Exited,
            Phase::Done(Outcome::Failed { .. } | Outcome::DependencyFailed(_)) => StateKind::Failed,
            Phase::Done(Outcome::Unreachable(_)) => StateKind::Unreachable,
            Phase::Done(Outcome::Stopped(_)) => StateKind::Stopped,
        }
    }

    /// The name `zap status` prints and `--json` carries.
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Pending => "pending",
            StateKind::Waiting => "waiting",
            StateKind::Starting => "starting",
            StateKind::Running => "running",
            StateKind::Ready => "ready",
            StateKind::Stopping => "stopping",
            StateKind::Fixing => "fixing",
            StateKind::Backoff => "backoff",
            StateKind::Failed => "failed",
            StateKind::Exited => "exited",
            StateKind::Stopped => "stopped",
            StateKind::Lost => "lost",
            StateKind::Unreachable => "unreachable",
        }
    }

    /// How much a row that sums up several instances should show this one:
    /// the worst state wins.
    pub fn severity(self) -> u8 {
        match self {
            StateKind::Failed => 12,
            StateKind::Unreachable => 11,
            StateKind::Lost => 10,
            StateKind::Fixing => 9,
            StateKind::Backoff => 8,
            StateKind::Stopping => 7,
            StateKind::Starting => 6,
            StateKind::Waiting => 5,
            StateKind::Pending => 4,
            StateKind::Running => 3,
            StateKind::Ready => 2,
            StateKind::Stopped => 1,
            StateKind::Exited => 0,
        }
    }

    /// Its shell may be running.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            StateKind::Starting | StateKind::Running | StateKind::Ready | StateKind::Stopping
        )
    }
}
