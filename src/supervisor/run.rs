//! `zap run`: start the selected instances (dependencies first), follow them to
//! the end, stop what is still running at the timeout or on Ctrl+C.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::instance::{Addressed, run_instance};
use super::state::{Effect, Event, State};
use crate::config::Plan;
use crate::model::{HostName, InstanceId, Signal};
use crate::transport::decode::JobEvent;
use crate::transport::host::Transport;

/// How many events may wait for the supervisor. A job that floods output is
/// slowed down at its own channel when this fills, never dropped.
const EVENT_QUEUE: usize = 1024;

/// Whoever shows the run as it happens (headless lines, later the TUI).
pub trait Observer {
    /// Called after `event` was applied to `state`.
    fn event(&mut self, state: &State, id: &InstanceId, event: &Event);
    /// Called when no event is waiting: a good moment to flush output.
    fn idle(&mut self) {}
}

pub struct RunOptions {
    /// Jobs still running after this long are stopped and failed.
    pub timeout: Option<Duration>,
}

/// Messages the supervisor sends itself.
enum Timer {
    /// A stopped job's `stop.timeout` passed: KILL it if it is still there.
    KillIfRunning(InstanceId),
}

/// Runs `selected` to completion and returns the final state.
pub async fn run(
    plan: &Plan,
    selected: &[InstanceId],
    transports: &BTreeMap<HostName, Transport>,
    observer: &mut dyn Observer,
    options: RunOptions,
) -> State {
    let mut state = State::new(plan, selected);
    let (events_tx, mut events) = mpsc::channel::<Addressed>(EVENT_QUEUE);
    let (timer_tx, mut timers) = mpsc::unbounded_channel::<Timer>();
    let supervisor = Supervisor {
        plan,
        transports,
        events_tx,
        timer_tx,
    };
    for effect in state.begin() {
        supervisor.carry_out(effect);
    }
    let deadline = options
        .timeout
        .map(|timeout| (Instant::now() + timeout, timeout));
    let mut timed_out = false;
    let mut interrupts = 0u32;
    let mut stop_signals = StopSignals::new();
    while !state.all_done() {
        let timeout_sleep = async {
            match deadline {
                Some((at, _)) if !timed_out => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((id, event)) = events.recv() => {
                supervisor.handle(&mut state, observer, &id, event);
                while let Ok((id, event)) = events.try_recv() {
                    supervisor.handle(&mut state, observer, &id, event);
                }
                observer.idle();
            }
            Some(Timer::KillIfRunning(id)) = timers.recv() => {
                supervisor.signal(&state, &id, Signal::Kill);
            }
            () = timeout_sleep => {
                timed_out = true;
                let seconds = deadline.map(|(_, timeout)| timeout.as_secs_f64()).unwrap_or(0.0);
                supervisor.stop_all(&mut state, observer, &format!("timed out after {seconds}s"), true);
                observer.idle();
            }
            reason = stop_signals.next() => {
                interrupts += 1;
                if interrupts == 1 {
                    supervisor.stop_all(&mut state, observer, reason, false);
                } else {
                    for instance in state.instances() {
                        supervisor.signal(&state, &instance.id, Signal::Kill);
                    }
                }
                observer.idle();
            }
        }
    }
    for transport in transports.values() {
        transport.close().await;
    }
    state
}

/// SIGINT and SIGTERM, listened to for the whole run so none is missed
/// between two turns of the loop.
struct StopSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) -> &'static str {
        async fn wait(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    if signal.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = wait(&mut self.interrupt) => "stopped by Ctrl+C",
            () = wait(&mut self.terminate) => "stopped by SIGTERM",
        }
    }
}

struct Supervisor<'a> {
    plan: &'a Plan,
    transports: &'a BTreeMap<HostName, Transport>,
    events_tx: mpsc::Sender<Addressed>,
    timer_tx: mpsc::UnboundedSender<Timer>,
}

impl Supervisor<'_> {
    fn handle(
        &self,
        state: &mut State,
        observer: &mut dyn Observer,
        id: &InstanceId,
        event: Event,
    ) {
        let spawned = matches!(event, Event::Job(JobEvent::Spawned { .. }));
        let effects = state.apply(id, event.clone(), std::time::Instant::now());
        observer.event(state, id, &event);
        if spawned
            && state
                .instance(id)
                .is_some_and(|instance| instance.stop_requested())
        {
            // It was asked to stop while its shell was still starting.
            self.begin_stop(state, id);
        }
        for effect in effects {
            self.carry_out(effect);
        }
    }

    fn carry_out(&self, effect: Effect) {
        match effect {
            Effect::Start(id) => {
                let (Some(job), Some(transport)) =
                    (self.plan.job(&id.job), self.transports.get(&id.host))
                else {
                    return;
                };
                tokio::spawn(run_instance(
                    id,
                    job.clone(),
                    transport.clone(),
                    self.events_tx.clone(),
                ));
            }
        }
    }

    fn stop_all(
        &self,
        state: &mut State,
        observer: &mut dyn Observer,
        reason: &str,
        failure: bool,
    ) {
        let ids: Vec<InstanceId> = state
            .instances()
            .iter()
            .filter(|instance| !instance.is_done())
            .map(|instance| instance.id.clone())
            .collect();
        for id in ids {
            let event = Event::StopRequested {
                reason: reason.to_string(),
                counts_as_failure: failure,
            };
            self.handle(state, observer, &id, event);
            self.begin_stop(state, &id);
        }
    }

    /// Sends the job's stop signal now and KILL after its `stop.timeout`.
    fn begin_stop(&self, state: &State, id: &InstanceId) {
        let Some(job) = self.plan.job(&id.job) else {
            return;
        };
        self.signal(state, id, job.stop.signal);
        let timer_tx = self.timer_tx.clone();
        let id = id.clone();
        let grace = job.stop.timeout;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = timer_tx.send(Timer::KillIfRunning(id));
        });
    }

    fn signal(&self, state: &State, id: &InstanceId, signal: Signal) {
        let Some(instance) = state.instance(id) else {
            return;
        };
        if instance.is_done() {
            return;
        }
        let (Some(pgid), Some(transport)) = (instance.pgid, self.transports.get(&id.host)) else {
            return;
        };
        let transport = transport.clone();
        tokio::spawn(async move {
            // A group that is already gone needs no signal; nothing to report.
            let _ = transport.signal_group(pgid, signal).await;
        });
    }
}
