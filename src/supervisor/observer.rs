//! Whoever watches the supervisor loop: the headless printer, the log book,
//! the ledger, the TUI. They are told what changed and never change it.

use super::ledger::Leftover;
use super::state::{Change, State};

/// Whoever shows the supervision as it happens (headless lines, the log
/// book, the ledger, the TUI): it acts on what changed, never on a copy of
/// what it saw before.
pub trait Observer {
    /// What one batch of events changed, in order; `state` is as they left
    /// it.
    fn changes(&mut self, state: &State, changes: &[Change<'_>]);
    /// A host's stats came in: figures changed, no phase did.
    fn polled(&mut self, _state: &State) {}
    /// A line of zap's own about the whole run (not one job).
    fn note(&mut self, _text: &str) {}
    /// A process group an earlier zap left was stopped (or found gone).
    fn leftover_settled(&mut self, _leftover: &Leftover) {}
    /// Called when no event is waiting: a good moment to flush output.
    fn idle(&mut self) {}
}

/// Several observers, each told of every change in turn.
pub struct Observers<'a>(pub Vec<&'a mut dyn Observer>);

impl Observer for Observers<'_> {
    fn changes(&mut self, state: &State, changes: &[Change<'_>]) {
        for observer in &mut self.0 {
            observer.changes(state, changes);
        }
    }

    fn polled(&mut self, state: &State) {
        for observer in &mut self.0 {
            observer.polled(state);
        }
    }

    fn note(&mut self, text: &str) {
        for observer in &mut self.0 {
            observer.note(text);
        }
    }

    fn leftover_settled(&mut self, leftover: &Leftover) {
        for observer in &mut self.0 {
            observer.leftover_settled(leftover);
        }
    }

    fn idle(&mut self) {
        for observer in &mut self.0 {
            observer.idle();
        }
    }
}
