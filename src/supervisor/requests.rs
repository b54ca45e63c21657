//! What front ends ask of the supervisor loop (the control socket, the
//! TUI), in the one vocabulary of job actions.

use tokio::sync::mpsc;

use super::state::{Event, State};
use crate::action::Action;
use crate::model::InstanceId;

/// A request from outside the loop (the control socket, the TUI) answered
/// with the state in hand.
pub trait Requests {
    /// Waits for the next request; `None` when there will be no more.
    fn next(&mut self) -> impl std::future::Future<Output = Option<Request>> + Send;
}

/// Something the loop is asked to do by a front end.
pub enum Request {
    /// Apply `event` to every instance in `targets`.
    Apply {
        targets: Vec<InstanceId>,
        event: Event,
    },
    /// Stop everything and end the loop.
    ShutDown { reason: String },
    /// Run `f` on the state (e.g. to answer `zap status`).
    Inspect(Box<dyn FnOnce(&State) + Send>),
}

impl Requests for mpsc::Receiver<Request> {
    async fn next(&mut self) -> Option<Request> {
        self.recv().await
    }
}

/// The request that carries out a job action of the shared vocabulary on
/// `targets`, for the control socket and the TUI alike; `reason` is shown
/// with the state it leads to. `None` for actions that only read.
pub fn request_for_action(
    action: &Action,
    targets: Vec<InstanceId>,
    reason: String,
) -> Option<Request> {
    let event = match action {
        Action::Restart { .. } => Event::Restart { reason },
        Action::Stop { .. } => Event::Stop {
            reason,
            counts_as_failure: false,
        },
        Action::Start { .. } => Event::Start,
        Action::Down => return Some(Request::ShutDown { reason }),
        Action::Status | Action::Logs { .. } => return None,
    };
    Some(Request::Apply { targets, event })
}

/// A `Requests` that never has any (`zap run`).
pub struct NoRequests;

impl Requests for NoRequests {
    async fn next(&mut self) -> Option<Request> {
        None
    }
}
