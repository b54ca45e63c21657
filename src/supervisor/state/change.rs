//! What one event changed, typed: the front ends (headless lines, the log
//! book, the ledger, the TUI's news) act on these instead of comparing
//! what they saw before with what they see now.

use std::time::Duration;

use super::event::Effect;
use super::phase::Phase;
use crate::model::{ExitInfo, StepIndex, Stream};
use crate::transport::decode::LineCut;

/// One change to the instance at `instance` (its position in
/// [`super::State::instances`]). `'e` is the event's lifetime: output text
/// is lent, never copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<'e> {
    pub instance: usize,
    pub what: What<'e>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum What<'e> {
    /// Its phase went from `from` to `to` (several in one event come in
    /// order: backoff → pending → starting).
    Phase {
        from: Phase,
        to: Phase,
    },
    /// The running job reached its `ready` condition.
    Ready,
    /// Its shell runs; `restart` counts the runs before this one.
    Spawned {
        pid: u32,
        pgid: u32,
        restart: u32,
    },
    StepStarted {
        step: StepIndex,
    },
    StepExited {
        step: StepIndex,
        code: i32,
        took: Option<Duration>,
    },
    /// A line (or a piece of one) of the job's output.
    Output {
        stream: Stream,
        step: Option<StepIndex>,
        text: &'e str,
        cut: LineCut,
    },
    /// zap was asked to stop it (`zap stop`, a timeout, Ctrl+C).
    StopAsked {
        reason: &'e str,
    },
    /// zap was asked to restart it.
    RestartAsked {
        reason: &'e str,
    },
    /// Its host answers again.
    HostBack,
    /// A fixup's remedy ended.
    FixupEnded {
        rule: String,
        exit: &'e ExitInfo,
        healed: bool,
        output: &'e str,
    },
    /// The shell of the run that spawned as `pid`/`pgid` is gone: nothing of
    /// it is left to stop.
    ShellGone {
        pid: u32,
        pgid: u32,
    },
}

/// What applying events gave: effects for the supervisor to carry out, and
/// changes for the front ends, in the order they happened.
#[derive(Debug, Default)]
pub struct Applied<'e> {
    pub effects: Vec<Effect>,
    pub changes: Vec<Change<'e>>,
}

impl<'e> Applied<'e> {
    pub fn change(&mut self, instance: usize, what: What<'e>) {
        self.changes.push(Change { instance, what });
    }
}
