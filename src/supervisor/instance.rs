//! The task that runs one job instance: starts its wrapper shell on its host
//! and turns the shell's raw output into events for the supervisor.

use tokio::sync::mpsc;

use super::state::Event;
use crate::config::Job;
use crate::model::{ExitInfo, InstanceId};
use crate::transport::decode::{Decoder, JobEvent};
use crate::transport::host::Transport;
use crate::transport::script::{self, Nonce};
use crate::transport::{CHUNK_QUEUE, TransportError};

/// An event about one instance, as the supervisor receives it.
pub type Addressed = (InstanceId, Event);

/// Runs `job`'s steps on `transport` and reports everything to `events`.
/// Returns when the job's shell is gone and its output fully read.
pub async fn run_instance(
    id: InstanceId,
    job: Job,
    transport: Transport,
    events: mpsc::Sender<Addressed>,
) {
    let nonce = Nonce::random();
    let script = script::build(&nonce, &job.steps, &job.env);
    let (tx, mut chunks) = mpsc::channel(CHUNK_QUEUE);
    if let Err(error) = transport.start(script, tx).await {
        let event = match error {
            TransportError::Spawn(reason) => Event::LaunchFailed(reason),
            other => Event::Unreachable(other.to_string()),
        };
        let _ = events.send((id, event)).await;
        return;
    }
    if events.send((id.clone(), Event::Launched)).await.is_err() {
        return;
    }
    let mut decoder = Decoder::new(nonce);
    let mut decoded = Vec::new();
    let mut ended = false;
    while let Some(chunk) = chunks.recv().await {
        decoder.feed(chunk, &mut decoded);
        for event in decoded.drain(..) {
            ended |= matches!(event, JobEvent::Ended { .. });
            if events.send((id.clone(), Event::Job(event))).await.is_err() {
                return;
            }
        }
    }
    if !ended {
        // The transport's task died without an exit: say so, never "0".
        let event = Event::Job(JobEvent::Ended {
            exit: ExitInfo::Unknown,
        });
        let _ = events.send((id, event)).await;
    }
}
