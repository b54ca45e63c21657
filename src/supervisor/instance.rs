//! One run of a job instance: starts its wrapper shell on its host, and
//! turns the shell's raw output into events for the supervisor where the
//! transport reads it.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use tokio::sync::mpsc::{self, OwnedPermit};

use super::leftovers::{INSTANCE_VARIABLE, RUN_ID_VARIABLE, instance_marker};
use super::state::Event;
use crate::config::Job;
use crate::model::{ExitInfo, InstanceId};
use crate::transport::consumer::ChunkConsumer;
use crate::transport::decode::{Decoder, JobEvent};
use crate::transport::host::Transport;
use crate::transport::pty;
use crate::transport::script::{self, Nonce};
use crate::transport::{Chunk, TransportError};

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

/// Starts `job`'s steps on `transport`; its output is decoded where the
/// transport reads it and reported to `events` (see [`Decoding`]). Returns
/// once the shell was started, or could not be (which is reported too).
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
    // The run id and this run of the instance go into the shell's own
    // environment, which everything it starts inherits, through `setsid`
    // and double forks: a stop finds them there (`/proc/PID/environ`), and
    // so does a later zap looking for leftovers.
    let marker = instance_marker(&context.run_id, &id, generation);
    let variables = [
        (RUN_ID_VARIABLE, context.run_id.as_str()),
        (INSTANCE_VARIABLE, marker.as_str()),
    ];
    let launch = script::launch_command_with(&base, &variables).unwrap_or(base);
    let decoding = Box::new(Decoding {
        id: id.clone(),
        generation,
        decoder: Decoder::new(nonce),
        events: events.clone(),
        permit: None,
        waiting: VecDeque::new(),
        decoded: Vec::new(),
        ended: false,
    });
    if let Err(error) = transport
        .launch_into(&launch, script, job.pty, decoding)
        .await
    {
        let event = match error {
            TransportError::Spawn(reason) => Event::LaunchFailed(reason),
            other => Event::Unreachable(other.to_string()),
        };
        let _ = events.send((id, generation, vec![event])).await;
    }
}

/// One run's output decoded in the task that reads it: chunks become
/// events, in batches of at most [`BATCH_EVENTS`], one send to the
/// supervisor per chunk. The reader waits (and so, past its own buffer,
/// the job) while the supervisor's queue is full.
struct Decoding {
    id: InstanceId,
    generation: u64,
    decoder: Decoder,
    events: mpsc::Sender<Addressed>,
    /// A place in the supervisor's queue, taken by `ready`.
    permit: Option<OwnedPermit<Addressed>>,
    /// Batches of a chunk beyond its first, sent before the next chunk.
    waiting: VecDeque<Vec<Event>>,
    /// Reused between chunks.
    decoded: Vec<JobEvent>,
    /// The shell's end (or the host's loss) was reported.
    ended: bool,
}

impl Decoding {
    /// Sends the batches still waiting; `false` if the supervisor is gone.
    /// Safe to cancel (the reader's `select!` does): a batch leaves the
    /// queue only once it has a place to go.
    async fn send_waiting(&mut self) -> bool {
        while !self.waiting.is_empty() {
            let Ok(permit) = self.events.reserve().await else {
                return false;
            };
            if let Some(batch) = self.waiting.pop_front() {
                permit.send((self.id.clone(), self.generation, batch));
            }
        }
        true
    }
}

impl ChunkConsumer for Decoding {
    fn ready(&mut self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            if !self.send_waiting().await {
                return false;
            }
            if self.permit.is_none() {
                self.permit = self.events.clone().reserve_owned().await.ok();
            }
            self.permit.is_some()
        })
    }

    fn take(&mut self, chunk: Chunk) {
        let lost = match &chunk {
            Chunk::Lost(reason) => Some(reason.clone()),
            _ => None,
        };
        self.decoder.feed(chunk, &mut self.decoded);
        let mut batch = Vec::with_capacity(self.decoded.len().min(BATCH_EVENTS));
        for event in self.decoded.drain(..) {
            let event = match (event, &lost) {
                (JobEvent::Ended { .. }, Some(reason)) => Event::HostLost(reason.clone()),
                (event, _) => Event::Job(event),
            };
            self.ended |= matches!(
                event,
                Event::Job(JobEvent::Ended { .. }) | Event::HostLost(_)
            );
            batch.push(event);
            if batch.len() == BATCH_EVENTS {
                self.waiting.push_back(std::mem::take(&mut batch));
            }
        }
        if !batch.is_empty() {
            self.waiting.push_back(batch);
        }
        // The first batch takes the place `ready` reserved; the rest wait
        // for the next `ready` (or `finish`).
        if let Some(permit) = self.permit.take()
            && let Some(first) = self.waiting.pop_front()
        {
            permit.send((self.id.clone(), self.generation, first));
        }
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.permit = None;
            if !self.send_waiting().await || self.ended {
                return;
            }
            // The reader ended without an exit: say so, never "0".
            let ended = Event::Job(JobEvent::Ended {
                exit: ExitInfo::Unknown,
            });
            let _ = self
                .events
                .send((self.id.clone(), self.generation, vec![ended]))
                .await;
        })
    }
}
