//! The state of every job instance, and the one function that changes it:
//! [`State::apply`]. No I/O and no clock here: the supervisor passes `now`
//! in, carries out the [`Effect`]s and hands the [`Change`]s to the front
//! ends, so lifecycle rules (restart policies, backoff, dependencies, stop
//! order) are tested with scripted events.

mod change;
mod event;
mod instance;
mod lifecycle;
mod phase;
mod schedule;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use change::{Applied, Change, What};
pub use event::{Effect, Event, Mode, Wake};
pub use instance::{FixupRecord, Instance, LastRun, Step, StepStatus};
pub use phase::{AfterEnd, Outcome, Phase, StateKind};

use crate::config::{Plan, Ready};
use crate::model::{ExitInfo, HostName, InstanceId};
use crate::stats::{HostStats, attribute};
use crate::transport::decode::JobEvent;

/// A job that stayed up this long has its backoff reset, as systemd and
/// process-compose do: the next failure starts again from `backoff.initial`.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// How long after KILL a stopping job's output may stay open before its run
/// counts as over anyway.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// The position of the instance last looked up by id. Events come in
/// batches about one instance, each looked up by the engine and again by
/// every observer: checking the last one first spares a map search each.
/// Atomic, so that `State` can still be shared between threads.
#[derive(Debug, Default)]
struct LastFound(AtomicUsize);

impl Clone for LastFound {
    fn clone(&self) -> Self {
        LastFound(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

/// Every instance zap was asked to run, in the order they were selected.
#[derive(Debug, Clone)]
pub struct State {
    mode: Mode,
    instances: Vec<Instance>,
    by_id: BTreeMap<InstanceId, usize>,
    last_found: LastFound,
    /// The last poll of each host.
    hosts: BTreeMap<HostName, HostStats>,
    /// zap is shutting down: stop everything, dependents first. The flag
    /// says whether that stop fails the jobs (`zap run --timeout`).
    shutting_down: Option<(String, bool)>,
    /// Ctrl+C, SIGTERM and SIGHUP so far.
    interrupts: u32,
    /// Why job output is not being written to disk now (a full disk).
    log_trouble: Option<String>,
}

/// What an interrupt (Ctrl+C, SIGTERM, SIGHUP) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The first: every job stops in order, as at `zap down`.
    StopsInOrder,
    /// Another: every live job's group is killed at once.
    KillsNow,
}

impl State {
    /// `selected` must name jobs of `plan`; unknown ones are skipped.
    pub fn new(plan: &Plan, selected: &[InstanceId], mode: Mode) -> Self {
        let mut instances: Vec<Instance> = Vec::new();
        for id in selected {
            if let Some(job) = plan.job(&id.job) {
                let position = instances.len();
                instances.push(Instance::new(id.clone(), position, plan, job, selected));
            }
        }
        let by_id = instances
            .iter()
            .enumerate()
            .map(|(position, instance)| (instance.id.clone(), position))
            .collect();
        State {
            mode,
            instances,
            by_id,
            last_found: LastFound::default(),
            hosts: BTreeMap::new(),
            shutting_down: None,
            interrupts: 0,
            log_trouble: None,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    pub fn instance(&self, id: &InstanceId) -> Option<&Instance> {
        self.instances.get(self.position(id)?)
    }

    fn position(&self, id: &InstanceId) -> Option<usize> {
        let last = self.last_found.0.load(Ordering::Relaxed);
        if self
            .instances
            .get(last)
            .is_some_and(|instance| &instance.id == id)
        {
            return Some(last);
        }
        let position = *self.by_id.get(id)?;
        self.last_found.0.store(position, Ordering::Relaxed);
        Some(position)
    }

    /// Nothing runs and nothing will start by itself: `zap run` is over, or
    /// a shutting-down `zap up` may exit.
    pub fn all_done(&self) -> bool {
        match (self.mode, &self.shutting_down) {
            (Mode::Run, _) => self.instances.iter().all(Instance::is_done),
            (Mode::Up, Some(_)) => self.instances.iter().all(|instance| !instance.is_live()),
            (Mode::Up, None) => false,
        }
    }

    /// The last poll of `host`, if any came yet.
    pub fn host_stats(&self, host: &HostName) -> Option<&HostStats> {
        self.hosts.get(host)
    }

    /// The shell pid of each live instance on `host`.
    pub fn live_shells_on(&self, host: &HostName) -> Vec<(InstanceId, u32)> {
        self.instances
            .iter()
            .filter(|instance| &instance.id.host == host && instance.is_live())
            .filter_map(|instance| Some((instance.id.clone(), instance.pid?)))
            .collect()
    }

    /// Takes a poll of a host: each running job on it gets the figures of
    /// its process tree; the others, and all when the poll failed, get none
    /// (never stale numbers).
    pub fn record_stats(&mut self, stats: HostStats) {
        let running = self.live_shells_on(&stats.host);
        let mut figures = attribute(&stats, &running);
        for instance in &mut self.instances {
            if instance.id.host != stats.host {
                continue;
            }
            instance.stats = figures.remove(&instance.id);
            if let Some(now) = &instance.stats {
                if let Some(cpu) = now.cpu_percent {
                    instance.cpu_percent_max =
                        Some(instance.cpu_percent_max.map_or(cpu, |max| max.max(cpu)));
                }
                instance.rss_bytes_max = Some(
                    instance
                        .rss_bytes_max
                        .map_or(now.rss_bytes, |max| max.max(now.rss_bytes)),
                );
            }
        }
        self.hosts.insert(stats.host.clone(), stats);
    }

    /// Why job output is not written to disk now, if it is not.
    pub fn log_trouble(&self) -> Option<&str> {
        self.log_trouble.as_deref()
    }

    pub fn set_log_trouble(&mut self, trouble: Option<String>) {
        self.log_trouble = trouble;
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.is_some()
    }

    /// Starts what can start now: call once at the beginning.
    pub fn begin(&mut self) -> Applied<'static> {
        let mut out = Applied::default();
        self.schedule(&mut out);
        out
    }

    /// Stops every job, dependents before what they depend on. With
    /// `counts_as_failure` (a timeout) the stopped jobs count as failed.
    pub fn shut_down(
        &mut self,
        reason: &str,
        counts_as_failure: bool,
        now: Instant,
    ) -> Applied<'static> {
        let mut out = Applied::default();
        if self.shutting_down.is_none() {
            self.shutting_down = Some((reason.to_string(), counts_as_failure));
        }
        for instance in self.instances.iter_mut().filter(|one| one.is_idle()) {
            instance.stop(reason, counts_as_failure, now, &mut out);
        }
        self.stop_in_order(now, &mut out);
        out
    }

    /// Ctrl+C (or SIGTERM, SIGHUP) with `reason`: the first stops every job
    /// in order; the next kills every live job's process group at once.
    pub fn interrupt(&mut self, reason: &str, now: Instant) -> (Interrupt, Applied<'static>) {
        self.interrupts += 1;
        if self.interrupts == 1 {
            return (Interrupt::StopsInOrder, self.shut_down(reason, false, now));
        }
        let mut out = Applied::default();
        for instance in self.instances.iter().filter(|one| one.is_live()) {
            instance.signal_to_stop(crate::model::Signal::Kill, &mut out);
        }
        (Interrupt::KillsNow, out)
    }

    /// Applies an event about instance `id`, seen during its run `generation`
    /// (events of an older run are ignored), and returns what it asks for and
    /// what it changed.
    pub fn apply<'e>(
        &mut self,
        id: &InstanceId,
        generation: u64,
        event: &'e Event,
        now: Instant,
    ) -> Applied<'e> {
        let mut out = Applied::default();
        self.apply_into(id, generation, event, now, &mut out);
        out
    }

    /// [`State::apply`] into `out`, so that a batch of events shares one.
    pub fn apply_into<'e>(
        &mut self,
        id: &InstanceId,
        generation: u64,
        event: &'e Event,
        now: Instant,
        out: &mut Applied<'e>,
    ) {
        let Some(position) = self.position(id) else {
            return;
        };
        let mode = self.mode;
        let back = mode == Mode::Up && self.shutting_down.is_none();
        let instance = &mut self.instances[position];
        if generation != instance.generation && event.is_about_a_run() {
            return;
        }
        match event {
            Event::Job(job_event) => {
                if !self.apply_job_event(position, job_event, now, out) {
                    // Most output lines: nothing to start or stop, and with
                    // hundreds of jobs looking over all of them per line
                    // would cost more than the line itself.
                    return;
                }
            }
            Event::Unreachable(reason) => {
                // In `zap up` the host may come back: HostBack restarts it.
                instance.finish_idle(Outcome::Unreachable(reason.clone()), now, out);
            }
            Event::LaunchFailed(reason) => {
                let outcome = Outcome::Failed {
                    step: None,
                    exit: ExitInfo::Unknown,
                    reason: Some(reason.clone()),
                };
                instance.ended = Some(now);
                instance.skip_pending_steps();
                self.after_run(position, outcome, None, now, out);
            }
            Event::HostLost(reason) => self.host_lost(position, reason, now, out),
            Event::HostBack => {
                out.change(position, What::HostBack);
                let shell_was_left = matches!(
                    instance.phase(),
                    Phase::Lost { .. } | Phase::Done(Outcome::Unreachable(_))
                );
                if let (true, Some(pid), Some(pgid)) = (shell_was_left, instance.pid, instance.pgid)
                {
                    out.change(position, What::ShellGone { pid, pgid });
                }
                match instance.phase() {
                    // A job that was lost with its host starts again only if
                    // its restart policy says so: being cut off is a failure.
                    Phase::Lost { reason }
                        if back && instance.job.restart == crate::config::RestartPolicy::Never =>
                    {
                        let outcome = Outcome::Failed {
                            step: instance.last_run.as_ref().and_then(|last| last.step),
                            exit: ExitInfo::Unknown,
                            reason: Some(format!(
                                "lost with its host ({reason}); restart = \"never\""
                            )),
                        };
                        instance.enter(Phase::Done(outcome), out);
                    }
                    // Lost under a restart policy, or never reached at all.
                    Phase::Lost { .. } | Phase::Done(Outcome::Unreachable(_)) if back => {
                        instance.enter(Phase::Pending, out);
                    }
                    _ => {}
                }
            }
            Event::Refused(reason) => {
                if let Phase::Lost { .. } = instance.phase() {
                    instance.enter(Phase::Done(Outcome::Unreachable(reason.clone())), out);
                }
            }
            Event::StillLost(latest) => {
                if let Phase::Lost { reason } = instance.phase() {
                    // Why it was lost, then the latest try's answer.
                    let lost = reason.split("; reconnecting: ").next().unwrap_or("");
                    let reason = format!("{lost}; {latest}");
                    instance.enter(Phase::Lost { reason }, out);
                }
            }
            Event::Wake(why) => self.wake(position, *why, now, out),
            Event::ProbeDone(ok) => {
                if *ok {
                    instance.become_ready(out);
                } else if let (Ready::Probe { every, .. }, Phase::Running) =
                    (&instance.job.ready, instance.phase())
                {
                    out.effects.push(Effect::Wake {
                        id: instance.id.clone(),
                        generation: instance.generation,
                        after: *every,
                        why: Wake::Probe,
                    });
                }
            }
            Event::Stop {
                reason,
                counts_as_failure,
            } => {
                if !instance.is_done() {
                    out.change(position, What::StopAsked { reason });
                }
                instance.stop(reason, *counts_as_failure, now, out);
            }
            Event::Restart { reason } => {
                out.change(position, What::RestartAsked { reason });
                self.restart(position, reason, out);
            }
            Event::RemedyDone { exit, output } => {
                self.remedy_done(position, exit, output, now, out)
            }
            Event::SendSignal(signal) => {
                if let (true, Some(pgid)) = (instance.is_live(), instance.pgid) {
                    out.effects.push(Effect::Signal {
                        id: instance.id.clone(),
                        pgid,
                        signal: *signal,
                    });
                }
            }
            Event::Start => match instance.phase() {
                Phase::Done(_) | Phase::Backoff { .. } => {
                    instance.attempts.reset();
                    instance.failures_in_a_row = 0;
                    instance.policy_restarts = 0;
                    instance.enter(Phase::Pending, out);
                }
                // Asked to start while a stop is under way (`zap stop` then
                // `zap start`): it starts once the stop is over.
                Phase::Stopping {
                    then: AfterEnd::Stop { .. },
                } => {
                    instance.attempts.reset();
                    instance.stop_then(AfterEnd::Restart {
                        reason: "zap start".into(),
                        paced: false,
                    });
                }
                _ => {}
            },
        }
        self.schedule(out);
        self.stop_in_order(now, out);
    }

    /// Returns whether the event may have changed what can start or must
    /// stop; only an output line that matched nothing did not.
    fn apply_job_event<'e>(
        &mut self,
        position: usize,
        event: &'e JobEvent,
        now: Instant,
        out: &mut Applied<'e>,
    ) -> bool {
        let mode = self.mode;
        let instance = &mut self.instances[position];
        match event {
            JobEvent::Spawned { pid, pgid } => {
                let (pid, pgid) = (*pid, *pgid);
                instance.pid = Some(pid);
                instance.pgid = Some(pgid);
                instance.launched = Some(now);
                out.change(
                    position,
                    What::Spawned {
                        pid,
                        pgid,
                        restart: instance.restarts,
                    },
                );
                self.spawned(position, out);
            }
            JobEvent::StepStarted { step } => {
                if let Some(found) = instance.step_mut(*step) {
                    found.status = StepStatus::Running;
                    found.started = Some(now);
                }
                out.change(position, What::StepStarted { step: *step });
            }
            JobEvent::StepExited { step, code } => {
                let mut took = None;
                if let Some(found) = instance.step_mut(*step) {
                    found.ended = Some(now);
                    found.status = if *code == 0 {
                        StepStatus::Ok
                    } else {
                        StepStatus::Failed(ExitInfo::Code(*code))
                    };
                    took = found.duration();
                }
                out.change(
                    position,
                    What::StepExited {
                        step: *step,
                        code: *code,
                        took,
                    },
                );
                let last = usize::try_from(step.0).map_or(true, |n| n >= instance.steps.len());
                if *code != 0 || last {
                    self.shell_ending(position, out);
                }
            }
            JobEvent::Line {
                text,
                stream,
                step,
                cut,
            } => {
                out.change(
                    position,
                    What::Output {
                        stream: *stream,
                        step: *step,
                        text,
                        cut: *cut,
                    },
                );
                return self.line(position, text, *stream, mode, now, out);
            }
            JobEvent::Ended { exit } => {
                let fix = match instance.phase() {
                    Phase::Stopping { .. } => None,
                    _ => instance.matcher.exit(exit),
                };
                let then = fix.map(|remedy| lifecycle::fixup_decision(instance, remedy, now));
                let outcome = instance.close_run(now, exit.clone());
                if let (Some(pid), Some(pgid)) = (instance.pid, instance.pgid) {
                    out.change(position, What::ShellGone { pid, pgid });
                }
                self.after_run(position, outcome, then, now, out);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
