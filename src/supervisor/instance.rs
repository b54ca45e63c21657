//! The task that runs one job instance: starts its wrapper shell on its host
//! and turns the shell's raw output into events for the supervisor.

use tokio::sync::mpsc;

use super::leftovers::RUN_ID_VARIABLE;
use super::state::Event;
use crate::config::Job;
use crate::model::{ExitInfo, InstanceId};
use crate::transport::decode::{Decoder, JobEvent};
use crate::transport::host::Transport;
use crate::transport::pty;
use crate::transport::script::{self, Nonce};
use crate::transport::{CHUNK_QUEUE, Chunk, TransportError};

/// Events about one run (generation) of one instance, in order. A job's
/// output comes as one batch per chunk read, so a fast job costs one send
/// and one wake-up of the supervisor per chunk, not per line.
pub type Addressed = (InstanceId, u64, Vec<Event>);

/// The most events in one batch, so a huge chunk of short lines does not
/// hold the supervisor for long at once.
pub const BATCH_EVENTS: usize = 256;

/// What every job of one zap run shares.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Put in each job's environment as `ZAP_RUN`, so leftovers can be told
    /// apart from processes zap did not start.
    pub run_id: String,
}

/// Runs `job`'s steps on `transport` and reports everything to `events`.
/// Returns when the job's shell is gone and its output fully read.
pub async fn run_instance(
    id: InstanceId,
    generation: u64,
    job: Job,
    transport: Transport,
    context: RunContext,
    events: mpsc::Sender<Addressed>,
) {
    let nonce = Nonce::random();
    let mut env = job.env.clone();
    env.insert("ZAP_JOB".to_string(), id.to_string());
    let script = script::build_for(&nonce, &job.steps, &env, job.pty);
    let base = if job.pty {
        pty::launch_command(script.len())
    } else {
        script::LAUNCH_COMMAND.to_string()
    };
    // The run id goes into the shell's own environment, where a later zap
    // can read it (`/proc/PID/environ`) to recognise its leftovers.
    let launch =
        script::launch_command_with(&base, RUN_ID_VARIABLE, &context.run_id).unwrap_or(base);
    let (tx, mut chunks) = mpsc::channel(CHUNK_QUEUE);
    let send = |batch: Vec<Event>| events.send((id.clone(), generation, batch));
    if let Err(error) = transport.launch(&launch, script, job.pty, tx).await {
        let event = match error {
            TransportError::Spawn(reason) => Event::LaunchFailed(reason),
            other => Event::Unreachable(other.to_string()),
        };
        let _ = send(vec![event]).await;
        return;
    }
    let mut decoder = Decoder::new(nonce);
    let mut decoded = Vec::new();
    let mut ended = false;
    while let Some(chunk) = chunks.recv().await {
        let lost = match &chunk {
            Chunk::Lost(reason) => Some(reason.clone()),
            _ => None,
        };
        decoder.feed(chunk, &mut decoded);
        let mut batch = Vec::with_capacity(decoded.len().min(BATCH_EVENTS));
        for event in decoded.drain(..) {
            let event = match (event, &lost) {
                (JobEvent::Ended { .. }, Some(reason)) => Event::HostLost(reason.clone()),
                (event, _) => Event::Job(event),
            };
            ended |= matches!(
                event,
                Event::Job(JobEvent::Ended { .. }) | Event::HostLost(_)
            );
            batch.push(event);
            if batch.len() == BATCH_EVENTS && send(std::mem::take(&mut batch)).await.is_err() {
                return;
            }
        }
        if !batch.is_empty() && send(batch).await.is_err() {
            return;
        }
    }
    if !ended {
        // The transport's task died without an exit: say so, never "0".
        let _ = send(vec![Event::Job(JobEvent::Ended {
            exit: ExitInfo::Unknown,
        })])
        .await;
    }
}
