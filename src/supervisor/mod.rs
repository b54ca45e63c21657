//! The one task that owns the state of every job instance: it starts jobs,
//! carries out the effects [`state::State::apply`] asks for, and stops jobs.

pub mod cleanup;
pub mod engine;
pub mod instance;
pub mod ledger;
pub mod leftovers;
pub mod observer;
pub mod remedy;
pub mod requests;
pub mod run;
pub mod signals;
pub mod state;

pub use state::{
    Applied, Change, Event, Instance, LastRun, Mode, Outcome, Phase, State, StateKind, Step,
    StepStatus, What,
};
