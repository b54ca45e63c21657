//! `zap run`: start the selected instances (dependencies first), follow them
//! to the end, stop what is still running at the timeout or on Ctrl+C.

use std::collections::BTreeMap;
use std::time::Duration;

use super::engine::{self, NoRequests, Observer, Options};
use super::state::{Mode, State};
use crate::config::Plan;
use crate::model::{HostName, InstanceId};
use crate::transport::host::Transport;

/// Runs `selected` once to completion and returns the final state.
pub async fn run(
    plan: &Plan,
    selected: &[InstanceId],
    transports: &BTreeMap<HostName, Transport>,
    observer: &mut dyn Observer,
    timeout: Option<Duration>,
) -> State {
    let state = State::new(plan, selected, Mode::Run);
    let options = Options {
        timeout,
        run_id: new_run_id(),
        leftovers: Vec::new(),
        log_health: None,
    };
    engine::supervise(plan, state, transports, observer, &mut NoRequests, options).await
}

/// A random id for one zap run, put in every job's environment.
pub fn new_run_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
