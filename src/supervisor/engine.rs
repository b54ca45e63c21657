//! The supervisor loop shared by `zap run` and `zap up`: it owns the
//! [`State`], feeds it events from job tasks, timers, probes, signals and the
//! control socket, and carries out the effects it returns. Everything slow
//! (starting shells, signalling, probing, reconnecting) happens in spawned
//! tasks that report back as events, so the loop never waits on a host.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::cleanup::{Cleared, LeftoverEnd, Pending, clear_on_host};
use super::instance::{Addressed, RunContext, run_instance};
use super::ledger::Leftover;
use super::leftovers::{instance_marker, stop_leftover_command};
use super::remedy::run_remedy;
use super::signals::StopSignals;
use super::state::{Applied, Effect, Event, Interrupt, Mode, Outcome, Phase, State};
use crate::config::{Plan, RemedyPlace, StopScope};
use crate::fixup::Guard;
use crate::logs::LogHealth;
use crate::model::{HostName, InstanceId, Signal};
use crate::stats::{HostStats, spawn_poller};
use crate::transport::TransportError;
use crate::transport::host::Transport;
use crate::words;

pub use super::observer::{Observer, Observers};
pub use super::requests::{NoRequests, Request, Requests, request_for_action};

/// How many batches of events (each up to `BATCH_EVENTS`) may wait for the
/// supervisor. A job that floods output is slowed down at its own channel
/// when this fills, never dropped.
const EVENT_QUEUE: usize = 64;

/// Polls waiting for the supervisor; a slow loop skips none, pollers wait.
const STATS_QUEUE: usize = 64;

/// How long a poller may take to stop its host-side part at the end.
const POLLER_STOP_GRACE: Duration = Duration::from_secs(2);

/// Reconnect attempts to a host that went away: first after this, doubling.
const RECONNECT_FIRST: Duration = Duration::from_secs(1);
/// ... up to this between attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(30);

pub struct Options {
    /// `zap run --timeout`: stop and fail what still runs after this long.
    pub timeout: Option<Duration>,
    /// Marks every job's environment (`ZAP_RUN`) so leftovers of this run
    /// can be told from processes zap did not start.
    pub run_id: String,
    /// What an earlier zap left running: stopped per host before that
    /// host's jobs start (see [`super::cleanup`]).
    pub leftovers: Vec<Leftover>,
    /// How writing the job logs goes, as it changes (`zap up`).
    pub log_health: Option<mpsc::UnboundedReceiver<LogHealth>>,
}

/// Supervises `state` until it is all done (`zap run`) or shut down
/// (`zap up`), and returns it.
pub async fn supervise(
    plan: &Plan,
    mut state: State,
    transports: &BTreeMap<HostName, Transport>,
    observer: &mut dyn Observer,
    requests: &mut impl Requests,
    options: Options,
) -> State {
    let (events_tx, mut events) = mpsc::channel::<Addressed>(EVENT_QUEUE);
    let (answers_tx, mut answers) = mpsc::channel::<(HostName, Reconnect)>(EVENT_QUEUE);
    let mut engine = Engine {
        plan,
        transports,
        events_tx,
        answers_tx,
        context: RunContext {
            run_id: options.run_id.clone(),
        },
        reconnecting: BTreeSet::new(),
        pending: Pending::default(),
    };
    let (pending, settled) = Pending::new(options.leftovers, |host| transports.contains_key(host));
    engine.pending = pending;
    tell_cleared(observer, &settled);
    for host in engine.pending.hosts() {
        engine.clear_leftovers(&host);
    }
    let begun = state.begin();
    observer.changes(&state, &begun.changes);
    engine.carry_out(begun.effects);
    let (stats_tx, mut stats) = mpsc::channel::<HostStats>(STATS_QUEUE);
    let (pollers, shells) = start_pollers(plan, &state, transports, &stats_tx);
    drop(stats_tx);
    let deadline = options
        .timeout
        .map(|timeout| (Instant::now() + timeout, timeout));
    let mut timed_out = false;
    let mut requests_open = true;
    let mut stop_signals = StopSignals::listen();
    let mut log_health = options.log_health;
    while !state.all_done() {
        let timeout_sleep = async {
            match deadline {
                Some((at, _)) if !timed_out => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((host, news)) = answers.recv() => match news {
                Reconnect::Answers => engine.host_answers(&host, &state),
                Reconnect::Refused(error) => {
                    engine.host_refuses(&mut state, observer, &host, &error);
                }
                Reconnect::Cleared(results) => {
                    engine.leftovers_cleared(&mut state, observer, &host, &results);
                }
            },
            Some((id, generation, batch)) = events.recv() => {
                engine.handle_all(&mut state, observer, &id, generation, &batch);
                // What waits already, but no more than a queue's worth: a
                // job flooding as fast as this loop drains must not keep it
                // from signals, requests and timers.
                for _ in 0..EVENT_QUEUE {
                    let Ok((id, generation, batch)) = events.try_recv() else {
                        break;
                    };
                    engine.handle_all(&mut state, observer, &id, generation, &batch);
                }
            }
            Some(polled) = stats.recv() => {
                let host = polled.host.clone();
                state.record_stats(polled);
                if let Some(shells) = shells.get(&host) {
                    shells.send_replace(state.live_shells_on(&host).into_iter().map(|(_, pid)| pid).collect());
                }
                observer.polled(&state);
            }
            request = requests.next(), if requests_open => match request {
                Some(Request::Apply { targets, event }) => {
                    let mut out = Applied::default();
                    for id in targets {
                        let generation = state.instance(&id).map_or(0, |instance| instance.generation);
                        engine.apply(&mut state, &id, generation, &event, &mut out);
                    }
                    observer.changes(&state, &out.changes);
                }
                Some(Request::ShutDown { reason }) => {
                    observer.note(&format!("{reason}: stopping every job"));
                    let stopped = state.shut_down(&reason, false, std::time::Instant::now());
                    observer.changes(&state, &stopped.changes);
                    engine.carry_out(stopped.effects);
                }
                Some(Request::Inspect(look)) => look(&state),
                None => requests_open = false,
            },
            () = timeout_sleep => {
                timed_out = true;
                let seconds = deadline.map_or(0.0, |(_, timeout)| timeout.as_secs_f64());
                let reason = format!("timed out after {seconds}s");
                observer.note(&format!("{reason}: stopping every job still running"));
                let stopped = state.shut_down(&reason, true, std::time::Instant::now());
                observer.changes(&state, &stopped.changes);
                engine.carry_out(stopped.effects);
            }
            Some(health) = async {
                match log_health.as_mut() {
                    Some(news) => news.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                observer.note(&words::log_health(&health));
                state.set_log_trouble(match health {
                    LogHealth::Failing(error) => Some(error),
                    LogHealth::Writing => None,
                });
                observer.polled(&state);
            }
            reason = stop_signals.next() => {
                let (interrupt, stopped) = state.interrupt(reason, std::time::Instant::now());
                observer.note(&match interrupt {
                    Interrupt::StopsInOrder => {
                        format!("{reason}: stopping every job (again to kill them at once)")
                    }
                    Interrupt::KillsNow => "killing every job now".to_string(),
                });
                observer.changes(&state, &stopped.changes);
                engine.carry_out(stopped.effects);
            }
        }
        observer.idle();
    }
    // Dropping the receiver tells each poller to stop its host-side part;
    // give them a moment to do so before the connections close.
    drop(stats);
    for poller in pollers {
        let _ = tokio::time::timeout(POLLER_STOP_GRACE, poller).await;
    }
    // All at once: each waits for its server to see the disconnect.
    futures::future::join_all(transports.values().map(Transport::close)).await;
    state
}

/// Where to tell each host's stats poller the shells of its jobs.
type ShellsByHost = BTreeMap<HostName, watch::Sender<Vec<u32>>>;

/// One stats poller per host that runs jobs, at the host's `stats_every`,
/// and per host where to tell it the jobs' shells (after each of its
/// snapshots: a job's start is known long before its processes settle).
fn start_pollers(
    plan: &Plan,
    state: &State,
    transports: &BTreeMap<HostName, Transport>,
    tx: &mpsc::Sender<HostStats>,
) -> (Vec<tokio::task::JoinHandle<()>>, ShellsByHost) {
    let hosts: BTreeSet<&HostName> = state
        .instances()
        .iter()
        .map(|instance| &instance.id.host)
        .collect();
    let mut pollers = Vec::new();
    let mut shells = BTreeMap::new();
    for host in hosts {
        let (Some(transport), Some(config)) = (transports.get(host), plan.hosts.get(host)) else {
            continue;
        };
        let (shells_tx, shells_rx) = watch::channel(Vec::new());
        let every = config.stats_every;
        pollers.push(spawn_poller(
            host.clone(),
            transport.clone(),
            every,
            tx.clone(),
            shells_rx,
        ));
        shells.insert(host.clone(), shells_tx);
    }
    (pollers, shells)
}

struct Engine<'a> {
    plan: &'a Plan,
    transports: &'a BTreeMap<HostName, Transport>,
    events_tx: mpsc::Sender<Addressed>,
    context: RunContext,
    /// Where a reconnect loop says how its host answered.
    answers_tx: mpsc::Sender<(HostName, Reconnect)>,
    /// Hosts a reconnect loop is running for.
    reconnecting: BTreeSet<HostName>,
    /// An earlier zap's leftovers not stopped yet, and the starts waiting
    /// for them.
    pending: Pending,
}

impl Engine<'_> {
    /// Applies one batch of events about one run of an instance and tells
    /// the observer what the whole batch changed.
    fn handle_all(
        &mut self,
        state: &mut State,
        observer: &mut dyn Observer,
        id: &InstanceId,
        generation: u64,
        batch: &[Event],
    ) {
        let mut out = Applied::default();
        for event in batch {
            self.apply(state, id, generation, event, &mut out);
        }
        observer.changes(state, &out.changes);
    }

    /// Applies `event`, carries out its effects at once (a stop signal must
    /// not wait for the rest of a batch) and keeps its changes in `out`.
    fn apply<'e>(
        &mut self,
        state: &mut State,
        id: &InstanceId,
        generation: u64,
        event: &'e Event,
        out: &mut Applied<'e>,
    ) {
        let lost_host = matches!(event, Event::HostLost(_) | Event::Unreachable(_));
        if matches!(event, Event::HostBack) {
            self.reconnecting.remove(&id.host);
        }
        state.apply_into(id, generation, event, std::time::Instant::now(), out);
        self.carry_out(std::mem::take(&mut out.effects));
        if lost_host && state.mode() == Mode::Up && !state.is_shutting_down() {
            self.reconnect(&id.host);
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Start { id, generation } => {
                    if self.pending.hold(&id, generation) {
                        continue;
                    }
                    let (Some(job), Some(transport)) =
                        (self.plan.job(&id.job), self.transports.get(&id.host))
                    else {
                        continue;
                    };
                    tokio::spawn(run_instance(
                        id,
                        generation,
                        job.clone(),
                        transport.clone(),
                        self.context.clone(),
                        self.events_tx.clone(),
                    ));
                }
                Effect::Signal { id, pgid, signal } => self.signal(&id, pgid, signal),
                Effect::SignalMarked {
                    id,
                    generation,
                    signal,
                    spare,
                } => self.signal_marked(&id, generation, signal, spare),
                Effect::Wake {
                    id,
                    generation,
                    after,
                    why,
                } => {
                    let events = self.events_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = events.send((id, generation, vec![Event::Wake(why)])).await;
                    });
                }
                Effect::Probe {
                    id,
                    generation,
                    command,
                } => {
                    let Some(transport) = self.transports.get(&id.host).cloned() else {
                        continue;
                    };
                    let events = self.events_tx.clone();
                    tokio::spawn(async move {
                        let ok = matches!(
                            transport.run_capture(&command).await,
                            Ok((exit, _, _)) if exit.is_success()
                        );
                        let _ = events
                            .send((id, generation, vec![Event::ProbeDone(ok)]))
                            .await;
                    });
                }
                Effect::Remedy {
                    id,
                    generation,
                    remedy,
                    keep_pgids,
                } => {
                    let transport = match remedy.on {
                        RemedyPlace::Host => self.transports.get(&id.host).cloned(),
                        RemedyPlace::Local => Some(Transport::local()),
                    };
                    let (Some(transport), Some(job)) = (transport, self.plan.job(&id.job)) else {
                        continue;
                    };
                    let guard = Guard {
                        zap_pid: transport.is_this_machine().then(std::process::id),
                        keep_pgids,
                    };
                    let env = remedy.env(&job.env, &id, &guard);
                    let events = self.events_tx.clone();
                    tokio::spawn(async move {
                        let (exit, output) = run_remedy(&transport, &remedy, &env).await;
                        let done = Event::RemedyDone { exit, output };
                        let _ = events.send((id, generation, vec![done])).await;
                    });
                }
            }
        }
    }

    fn signal(&self, id: &InstanceId, pgid: u32, signal: Signal) {
        let Some(transport) = self.transports.get(&id.host).cloned() else {
            return;
        };
        tokio::spawn(async move {
            // A group that is already gone needs no signal; nothing to report.
            let _ = transport.signal_group(pgid, signal).await;
        });
    }

    /// Signals every process run `generation` of `id` started (see
    /// [`super::leftovers::signal_marked`]): one short command on the host.
    fn signal_marked(&self, id: &InstanceId, generation: u64, signal: Signal, spare: Option<u32>) {
        let Some(transport) = self.transports.get(&id.host).cloned() else {
            return;
        };
        let marker = super::leftovers::instance_marker(&self.context.run_id, id, generation);
        let command = super::leftovers::signal_marked(signal, &marker, spare);
        tokio::spawn(async move {
            // Nothing marked is left: nothing to report either.
            let _ = transport.run_capture(&command).await;
        });
    }

    /// Stops the leftovers pending on `host`, all at once; its jobs' starts
    /// wait until then (see [`Engine::leftovers_cleared`]).
    fn clear_leftovers(&mut self, host: &HostName) {
        let (Some(leftovers), Some(transport)) = (
            self.pending.begin_clearing(host),
            self.transports.get(host).cloned(),
        ) else {
            return;
        };
        let answers = self.answers_tx.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let cleared = clear_on_host(transport, leftovers).await;
            let _ = answers.send((host, Reconnect::Cleared(cleared))).await;
        });
    }

    /// `host`'s leftovers were dealt with: its held starts go ahead. If the
    /// host did not answer, they wait as unreachable, and the reconnect
    /// loop clears the leftovers first when it answers.
    fn leftovers_cleared(
        &mut self,
        state: &mut State,
        observer: &mut dyn Observer,
        host: &HostName,
        results: &[Cleared],
    ) {
        tell_cleared(observer, results);
        let (held, clear) = self.pending.cleared(host, results);
        // Only starts still wanted: a stop or a shutdown meanwhile moved
        // the instance on, and a shell started now would run unowned.
        let held: Vec<(InstanceId, u64)> = held
            .into_iter()
            .filter(|(id, generation)| {
                state.instance(id).is_some_and(|instance| {
                    instance.generation == *generation && *instance.phase() == Phase::Starting
                })
            })
            .collect();
        if clear {
            let starts = held
                .into_iter()
                .map(|(id, generation)| Effect::Start { id, generation });
            self.carry_out(starts.collect());
            return;
        }
        let why = results
            .iter()
            .find_map(|cleared| match &cleared.end {
                LeftoverEnd::NotYet(why) => Some(why.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let event = Event::Unreachable(format!(
            "cannot stop what an earlier zap left on {host} yet: {why}"
        ));
        let mut out = Applied::default();
        for (id, generation) in held {
            self.apply(state, &id, generation, &event, &mut out);
        }
        observer.changes(state, &out.changes);
    }

    /// Tries to reach `host` again, with capped backoff, until it answers;
    /// then tells the loop (see [`Engine::host_answers`]).
    fn reconnect(&mut self, host: &HostName) {
        if !self.reconnecting.insert(host.clone()) {
            return;
        }
        let Some(transport) = self.transports.get(host).cloned() else {
            return;
        };
        let answers = self.answers_tx.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let mut delay = RECONNECT_FIRST;
            loop {
                tokio::time::sleep(delay).await;
                match transport.ensure_connected().await {
                    Ok(()) => break,
                    Err(error) => {
                        let news = (host.clone(), Reconnect::Refused(error));
                        if answers.send(news).await.is_err() {
                            return;
                        }
                    }
                }
                delay = (delay * 2).min(RECONNECT_MAX);
            }
            let _ = answers.send((host, Reconnect::Answers)).await;
        });
    }

    /// A reconnect to `host` failed with `error`. A refusal that waiting
    /// will not mend (a changed host key, refused authentication) makes its
    /// lost jobs unreachable, saying why and what to do; any other keeps
    /// them lost, with the latest reason. The loop keeps trying either way:
    /// once the user mended it, the jobs start again.
    fn host_refuses(
        &mut self,
        state: &mut State,
        observer: &mut dyn Observer,
        host: &HostName,
        error: &TransportError,
    ) {
        let lasting = matches!(
            error,
            TransportError::HostKey(_) | TransportError::Auth { .. }
        );
        let event = if lasting {
            Event::Refused(format!("reconnecting: {error}"))
        } else {
            Event::StillLost(format!("reconnecting: {error}"))
        };
        let lost: Vec<InstanceId> = state
            .instances()
            .iter()
            .filter(|instance| &instance.id.host == host)
            .filter(|instance| matches!(instance.phase(), Phase::Lost { .. }))
            .map(|instance| instance.id.clone())
            .collect();
        let mut out = Applied::default();
        for id in lost {
            let generation = state
                .instance(&id)
                .map_or(0, |instance| instance.generation);
            state.apply_into(&id, generation, &event, std::time::Instant::now(), &mut out);
        }
        observer.changes(state, &out.changes);
        self.carry_out(out.effects);
    }

    /// `host` answers again: stop what every instance lost with it left
    /// running there (only processes of this run), all at once, and only
    /// then tell each instance of the host that it is back. Which instances
    /// were lost is read now, not when the connection dropped: the others
    /// learn of the loss one by one.
    fn host_answers(&mut self, host: &HostName, state: &State) {
        let Some(transport) = self.transports.get(host).cloned() else {
            return;
        };
        let run_id = &self.context.run_id;
        let mut stops = Vec::new();
        let mut on_host = Vec::new();
        for instance in state.instances() {
            if &instance.id.host != host {
                continue;
            }
            // Lost, or lost and then refused (see `host_refuses`).
            let left_behind = matches!(
                instance.phase(),
                Phase::Lost { .. } | Phase::Done(Outcome::Unreachable(_))
            );
            if let (true, Some(pgid)) = (left_behind, instance.pgid) {
                let marker = (instance.job().stop.scope == StopScope::Tree)
                    .then(|| instance_marker(run_id, &instance.id, instance.generation));
                stops.push(stop_leftover_command(pgid, run_id, marker.as_deref()));
            }
            on_host.push((instance.id.clone(), instance.generation));
        }
        // An earlier zap's leftovers there go first too.
        let leftovers = self.pending.begin_clearing(host).unwrap_or_default();
        let events = self.events_tx.clone();
        let answers = self.answers_tx.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let stops = stops.into_iter().map(|command| {
                let transport = transport.clone();
                async move { transport.run_capture(&command).await }
            });
            let (_, cleared) = futures::future::join(
                futures::future::join_all(stops),
                clear_on_host(transport.clone(), leftovers),
            )
            .await;
            let _ = answers.send((host, Reconnect::Cleared(cleared))).await;
            for (id, generation) in on_host {
                let _ = events.send((id, generation, vec![Event::HostBack])).await;
            }
        });
    }
}

/// What a reconnect loop learned of its host.
enum Reconnect {
    Answers,
    Refused(TransportError),
    /// An earlier zap's leftovers there were dealt with (or not reached).
    Cleared(Vec<Cleared>),
}

/// Says how each of an earlier zap's leftovers ended; the ledger forgets
/// those settled.
fn tell_cleared(observer: &mut dyn Observer, results: &[Cleared]) {
    for cleared in results {
        if let Some(note) = words::leftover(cleared) {
            observer.note(&note);
        }
        if cleared.is_settled() {
            observer.leftover_settled(&cleared.leftover);
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
