//! The one task that owns the state of every job instance: it starts jobs,
//! carries out the effects [`state::State::apply`] asks for, and stops jobs.

pub mod instance;
pub mod run;
pub mod state;

pub use state::{Event, Instance, Outcome, Phase, State, Step, StepStatus};
