//! The state of every job instance, and the one function that changes it:
//! [`State::apply`]. No I/O and no clock here: the supervisor passes `now`
//! in and carries out the [`Effect`]s, so lifecycle rules (restart policies,
//! backoff, dependencies, stop order) are tested with scripted events.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Job, Plan, Ready, RestartPolicy};
use crate::fixup::{Attempts, Decision, Matcher, Remedy};
use crate::model::{ExitInfo, HostName, InstanceId, JobName, Signal, StepIndex};
use crate::stats::{HostStats, JobStats, attribute};
use crate::transport::decode::JobEvent;

/// A job that stayed up this long has its backoff reset, as systemd and
/// process-compose do: the next failure starts again from `backoff.initial`.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// `zap run` runs every job once; `zap up` keeps them running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Up,
}

/// What happened to an instance, as the supervisor learns it.
#[derive(Debug, Clone)]
pub enum Event {
    /// The transport accepted the job's shell.
    Launched,
    /// The decoded output of the job's shell.
    Job(JobEvent),
    /// The host could not be reached or authenticated; nothing ran.
    Unreachable(String),
    /// The shell could not be started at all (not a host problem).
    LaunchFailed(String),
    /// The connection to the job's host died under the running job.
    HostLost(String),
    /// The job's host answers again.
    HostBack,
    /// A timer set by [`Effect::Wake`] went off.
    Wake(Wake),
    /// The `ready` probe ran: `true` when it exited 0.
    ProbeDone(bool),
    /// zap (a timeout, Ctrl+C, `zap stop`) stops the job and keeps it stopped.
    Stop {
        reason: String,
        counts_as_failure: bool,
    },
    /// Stop the job if it runs, then start it again (`zap restart`, R,
    /// `restart_on`, `restart_every`).
    Restart { reason: String },
    /// Start a job that is stopped or done (`zap start`).
    Start,
    /// A fixup's remedy ran to its end (`output`: what it printed, both
    /// streams, cut short if long).
    RemedyDone { exit: ExitInfo, output: String },
    /// Send a signal to the job's whole process group, nothing more (the
    /// TUI's signal menu): what follows depends on how the job takes it.
    SendSignal(Signal),
}

/// Why a timer was set. Timers carry the run generation they were set in,
/// so one that outlived its run is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The backoff delay is over: start again.
    BackoffOver,
    /// The stop signal's grace is over: KILL what is left.
    StopGraceOver,
    /// `restart_every` came round.
    ScheduledRestart,
    /// Time to run the `ready` probe again.
    Probe,
    /// A fixup's cooldown is over: run its remedy.
    RemedyDue,
}

/// What the supervisor must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start a new run of the instance's shell.
    Start { id: InstanceId, generation: u64 },
    /// Signal the process group of the instance's shell.
    Signal {
        id: InstanceId,
        pgid: u32,
        signal: Signal,
    },
    /// Send `Event::Wake(why)` for this generation after `after`.
    Wake {
        id: InstanceId,
        generation: u64,
        after: Duration,
        why: Wake,
    },
    /// Run the `ready` probe on the instance's host; answer with
    /// `Event::ProbeDone`.
    Probe {
        id: InstanceId,
        generation: u64,
        command: String,
    },
    /// Run a fixup's remedy (where `remedy.on` says) to completion; answer
    /// with `Event::RemedyDone`. `keep_pgids`: zap's live jobs on the job's
    /// host, which the remedy must spare.
    Remedy {
        id: InstanceId,
        generation: u64,
        remedy: Box<Remedy>,
        keep_pgids: Vec<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    Pending,
    Running,
    Ok,
    Failed(ExitInfo),
    Killed(String),
    Skipped,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub command: String,
    pub status: StepStatus,
    pub started: Option<Instant>,
    pub ended: Option<Instant>,
}

impl Step {
    pub fn duration(&self) -> Option<Duration> {
        Some(self.ended?.saturating_duration_since(self.started?))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Pending,
    /// Held back until these jobs are ready.
    Waiting(Vec<JobName>),
    Starting,
    Running,
    /// Asked to stop; waiting for its shell to end.
    Stopping,
    /// Failed; starts again at `until`.
    Backoff {
        until: Instant,
    },
    /// Its host went away under it; it starts again when the host is back.
    Lost,
    /// Stopped for a fixup: its remedy runs (or waits for its cooldown);
    /// then the job starts again.
    Fixing {
        rule: String,
        command: String,
    },
    Done(Outcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A step failed, the shell died, or zap stopped it for a reason that is
    /// a failure (a timeout, too many restarts). `step` is the failing step.
    Failed {
        step: Option<StepIndex>,
        exit: ExitInfo,
        reason: Option<String>,
    },
    Unreachable(String),
    /// Stopped by the user, not a failure of the job.
    Stopped(String),
    /// Never started: a job it comes after did not become ready.
    DependencyFailed(JobName),
}

/// How the previous run of an instance ended: shown as "last exit" beside
/// the current state, never as the state itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub step: Option<StepIndex>,
    pub exit: ExitInfo,
}

/// One fixup attempt, for `zap status` and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixupRecord {
    pub rule: String,
    pub command: String,
    /// How the remedy ended; `None` while it runs.
    pub exit: Option<ExitInfo>,
    pub healed: bool,
}

/// What to do when the running shell ends, because zap asked it to end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterEnd {
    /// Nothing asked: the job ended on its own.
    Nothing,
    Stop {
        reason: String,
        counts_as_failure: bool,
    },
    Restart {
        reason: String,
    },
    /// A fixup matched: run its remedy, then start again.
    Fix {
        remedy: Box<Remedy>,
    },
    /// A fixup gave up: the job is failed with this reason.
    Fail {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: InstanceId,
    pub steps: Vec<Step>,
    pub phase: Phase,
    pub pid: Option<u32>,
    pub pgid: Option<u32>,
    /// Starts after the first, for whatever reason.
    pub restarts: u32,
    pub last_run: Option<LastRun>,
    /// Counts runs; events and timers of an older run are ignored.
    pub generation: u64,
    pub launched: Option<Instant>,
    pub ended: Option<Instant>,
    /// This run reached its `ready` condition.
    pub ready: bool,
    /// Why it is in its phase, where the phase alone does not say.
    pub reason: Option<String>,
    job: Job,
    /// Dependencies among the selected jobs.
    after: Vec<JobName>,
    after_end: AfterEnd,
    /// Failures in a row, for the backoff delay.
    failures_in_a_row: u32,
    /// Restarts the policy made (not the user), for `max_restarts`.
    policy_restarts: u32,
    /// Every fixup attempt, oldest first.
    pub fixups: Vec<FixupRecord>,
    /// The job's fixup rules, watching its output.
    matcher: Matcher,
    attempts: Attempts,
    /// A remedy waiting for its rule's cooldown.
    remedy_due: Option<Box<Remedy>>,
    /// CPU and memory of its process tree, from the host's last poll; `None`
    /// when it does not run or its host's stats are unavailable.
    pub stats: Option<JobStats>,
    /// The highest CPU% and RSS seen over every run, for the report.
    pub cpu_percent_max: Option<f64>,
    pub rss_bytes_max: Option<u64>,
}

impl Instance {
    fn new(id: InstanceId, plan: &Plan, job: &Job, selected: &[InstanceId]) -> Self {
        Instance {
            fixups: Vec::new(),
            matcher: Matcher::for_job(plan, job),
            attempts: Attempts::new(),
            remedy_due: None,
            stats: None,
            cpu_percent_max: None,
            rss_bytes_max: None,
            id,
            steps: fresh_steps(job),
            phase: Phase::Pending,
            pid: None,
            pgid: None,
            restarts: 0,
            last_run: None,
            generation: 0,
            launched: None,
            ended: None,
            ready: false,
            reason: None,
            after: job
                .after
                .iter()
                .filter(|dependency| selected.iter().any(|other| &other.job == *dependency))
                .cloned()
                .collect(),
            job: job.clone(),
            after_end: AfterEnd::Nothing,
            failures_in_a_row: 0,
            policy_restarts: 0,
        }
    }

    /// The step that is running now, if any.
    pub fn current_step(&self) -> Option<StepIndex> {
        self.steps
            .iter()
            .position(|step| step.status == StepStatus::Running)
            .map(step_index)
    }

    pub fn step(&self, index: StepIndex) -> Option<&Step> {
        let position = usize::try_from(index.0).ok()?.checked_sub(1)?;
        self.steps.get(position)
    }

    fn step_mut(&mut self, index: StepIndex) -> Option<&mut Step> {
        let position = usize::try_from(index.0).ok()?.checked_sub(1)?;
        self.steps.get_mut(position)
    }

    /// zap asked this job to stop and it has not ended yet.
    pub fn stop_requested(&self) -> bool {
        !matches!(self.after_end, AfterEnd::Nothing)
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    /// An output line may make it ready (`ready = { log = … }`).
    pub fn ready_by_log(&self) -> bool {
        matches!(self.job.ready, Ready::Log(_))
    }

    /// Its shell may be running on its host.
    pub fn is_live(&self) -> bool {
        matches!(
            self.phase,
            Phase::Starting | Phase::Running | Phase::Stopping
        )
    }

    pub fn job(&self) -> &Job {
        &self.job
    }

    /// How long the current run has been up.
    pub fn uptime(&self, now: Instant) -> Option<Duration> {
        match self.phase {
            Phase::Running | Phase::Stopping => Some(now.saturating_duration_since(self.launched?)),
            _ => None,
        }
    }

    /// Sets up a new run: fresh steps, a new generation.
    fn begin_run(&mut self) -> Effect {
        if self.generation > 0 {
            self.restarts += 1;
        }
        self.generation += 1;
        self.steps = fresh_steps(&self.job);
        self.phase = Phase::Starting;
        self.pid = None;
        self.pgid = None;
        self.launched = None;
        self.ended = None;
        self.ready = false;
        self.reason = None;
        self.after_end = AfterEnd::Nothing;
        self.matcher.reset();
        Effect::Start {
            id: self.id.clone(),
            generation: self.generation,
        }
    }

    /// Records the end of the shell: step statuses and how the run ended.
    /// Returns the outcome as if nothing more were to happen.
    fn close_run(&mut self, now: Instant, exit: ExitInfo) -> Outcome {
        let running = self.current_step();
        if let Some(index) = running
            && let Some(step) = self.step_mut(index)
        {
            step.ended = Some(now);
            step.status = match &exit {
                ExitInfo::Code(0) => StepStatus::Ok,
                ExitInfo::Signal(signal) => StepStatus::Killed(signal.clone()),
                other => StepStatus::Failed(other.clone()),
            };
        }
        mark_pending_skipped(self);
        let failed_step = self
            .steps
            .iter()
            .position(|step| matches!(step.status, StepStatus::Failed(_) | StepStatus::Killed(_)));
        let all_ran = self.steps.iter().all(|step| step.status == StepStatus::Ok);
        // pid and pgid stay: they say which process this run was.
        self.ended = Some(now);
        let outcome = match failed_step {
            // The shell ended 0 with no failed step: the job finished (or a
            // step ran `exit 0`).
            None if exit.is_success() => Outcome::Ok,
            Some(position) => Outcome::Failed {
                step: Some(step_index(position)),
                exit: exit.clone(),
                reason: None,
            },
            None if all_ran => Outcome::Failed {
                step: None,
                exit: exit.clone(),
                reason: Some("the shell ended badly after the last step".into()),
            },
            None => Outcome::Failed {
                step: None,
                exit: exit.clone(),
                reason: Some("the job's shell ended before its first step".into()),
            },
        };
        self.last_run = Some(LastRun {
            step: match &outcome {
                Outcome::Failed { step, .. } => *step,
                _ => None,
            },
            exit: exit.clone(),
        });
        if let Ready::Exit(code) = self.job.ready
            && exit == ExitInfo::Code(code)
            && (code != 0 || outcome == Outcome::Ok)
        {
            self.ready = true;
        }
        outcome
    }

    fn backoff_delay(&self) -> Duration {
        let backoff = self.job.backoff;
        let doublings = self.failures_in_a_row.saturating_sub(1).min(30);
        backoff
            .initial
            .saturating_mul(1u32 << doublings)
            .min(backoff.max)
    }
}

fn fresh_steps(job: &Job) -> Vec<Step> {
    job.steps
        .iter()
        .map(|command| Step {
            command: command.clone(),
            status: StepStatus::Pending,
            started: None,
            ended: None,
        })
        .collect()
}

fn step_index(position: usize) -> StepIndex {
    StepIndex(u32::try_from(position + 1).unwrap_or(u32::MAX))
}

fn mark_pending_skipped(instance: &mut Instance) {
    for step in &mut instance.steps {
        if matches!(step.status, StepStatus::Pending | StepStatus::Running) {
            step.status = StepStatus::Skipped;
        }
    }
}

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
}

impl State {
    /// `selected` must name jobs of `plan`; unknown ones are skipped.
    pub fn new(plan: &Plan, selected: &[InstanceId], mode: Mode) -> Self {
        let instances: Vec<Instance> = selected
            .iter()
            .filter_map(|id| {
                Some(Instance::new(
                    id.clone(),
                    plan,
                    plan.job(&id.job)?,
                    selected,
                ))
            })
            .collect();
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

    /// Takes a poll of a host: each running job on it gets the figures of
    /// its process tree; the others, and all when the poll failed, get none
    /// (never stale numbers).
    /// The shell of each live instance on `host`.
    pub fn live_shells_on(&self, host: &HostName) -> Vec<(InstanceId, u32)> {
        self.instances
            .iter()
            .filter(|instance| &instance.id.host == host && instance.is_live())
            .filter_map(|instance| Some((instance.id.clone(), instance.pid?)))
            .collect()
    }

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

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.is_some()
    }

    /// Starts what can start now: call once at the beginning.
    pub fn begin(&mut self) -> Vec<Effect> {
        self.schedule()
    }

    /// Stops every job, dependents before what they depend on. With
    /// `counts_as_failure` (a timeout) the stopped jobs count as failed.
    pub fn shut_down(
        &mut self,
        reason: &str,
        counts_as_failure: bool,
        now: Instant,
    ) -> Vec<Effect> {
        if self.shutting_down.is_none() {
            self.shutting_down = Some((reason.to_string(), counts_as_failure));
        }
        let mut effects = Vec::new();
        for position in 0..self.instances.len() {
            let instance = &mut self.instances[position];
            if matches!(
                instance.phase,
                Phase::Pending
                    | Phase::Waiting(_)
                    | Phase::Backoff { .. }
                    | Phase::Lost
                    | Phase::Fixing { .. }
            ) {
                instance.ended = Some(now);
                mark_pending_skipped(instance);
                instance.phase = Phase::Done(if counts_as_failure {
                    Outcome::Failed {
                        step: None,
                        exit: ExitInfo::Unknown,
                        reason: Some(reason.to_string()),
                    }
                } else {
                    Outcome::Stopped(reason.to_string())
                });
            }
        }
        self.stop_in_order(&mut effects);
        effects
    }

    /// During shutdown: stop each live instance that no live instance
    /// depends on.
    fn stop_in_order(&mut self, effects: &mut Vec<Effect>) {
        let Some((reason, counts_as_failure)) = self.shutting_down.clone() else {
            return;
        };
        let needed: Vec<JobName> = self
            .instances
            .iter()
            .filter(|instance| instance.is_live())
            .flat_map(|instance| instance.after.clone())
            .collect();
        for position in 0..self.instances.len() {
            let instance = &self.instances[position];
            let is_needed = needed.contains(&instance.id.job);
            if !is_needed
                && matches!(instance.phase, Phase::Starting | Phase::Running)
                && !instance.stop_requested()
            {
                let instance = &mut self.instances[position];
                request_stop(
                    instance,
                    AfterEnd::Stop {
                        reason: reason.clone(),
                        counts_as_failure,
                    },
                    effects,
                );
            }
        }
    }

    /// Applies an event about instance `id`, seen during its run `generation`
    /// (events of an older run are ignored). The event may be lent: the
    /// supervisor shows it to its observers afterwards, and output lines are
    /// too many to copy.
    pub fn apply(
        &mut self,
        id: &InstanceId,
        generation: u64,
        event: impl std::borrow::Borrow<Event>,
        now: Instant,
    ) -> Vec<Effect> {
        let event = event.borrow();
        let Some(position) = self.position(id) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        let instance = &mut self.instances[position];
        if generation != instance.generation && is_about_a_run(event) {
            return effects;
        }
        match event {
            Event::Launched => {}
            Event::Job(job_event) => {
                let changed = self.apply_job_event(position, job_event, now, &mut effects);
                if !changed {
                    // Most output lines: nothing to start or stop, and with
                    // hundreds of jobs looking over all of them per line
                    // would cost more than the line itself.
                    return effects;
                }
            }
            Event::Unreachable(reason) => {
                instance.ended = Some(now);
                mark_pending_skipped(instance);
                instance.phase = Phase::Done(Outcome::Unreachable(reason.clone()));
                // In `zap up` the host may come back: HostBack restarts it.
            }
            Event::LaunchFailed(reason) => {
                let outcome = Outcome::Failed {
                    step: None,
                    exit: ExitInfo::Unknown,
                    reason: Some(reason.clone()),
                };
                instance.ended = Some(now);
                mark_pending_skipped(instance);
                self.after_run(position, outcome, now, &mut effects);
            }
            Event::HostLost(reason) => {
                if instance.is_live() {
                    let stop = std::mem::replace(&mut instance.after_end, AfterEnd::Nothing);
                    instance.close_run(now, ExitInfo::Unknown);
                    instance.reason = Some(reason.clone());
                    instance.phase = match (self.mode, stop) {
                        (_, AfterEnd::Stop { reason, .. }) => Phase::Done(Outcome::Stopped(reason)),
                        (Mode::Up, _) if self.shutting_down.is_none() => Phase::Lost,
                        _ => {
                            Phase::Done(Outcome::Unreachable(format!("connection lost: {reason}")))
                        }
                    };
                }
            }
            Event::HostBack => {
                let back = self.mode == Mode::Up && self.shutting_down.is_none();
                match &instance.phase {
                    // A job that was lost with its host starts again only if
                    // its restart policy says so: being cut off is a failure.
                    Phase::Lost if back && instance.job.restart == RestartPolicy::Never => {
                        let reason = instance.reason.take().unwrap_or_default();
                        instance.phase = Phase::Done(Outcome::Failed {
                            step: instance.last_run.as_ref().and_then(|last| last.step),
                            exit: ExitInfo::Unknown,
                            reason: Some(format!(
                                "lost with its host ({reason}); restart = \"never\""
                            )),
                        });
                    }
                    // Lost under a restart policy, or never reached at all.
                    Phase::Lost | Phase::Done(Outcome::Unreachable(_)) if back => {
                        instance.phase = Phase::Pending;
                        instance.reason = None;
                    }
                    _ => {}
                }
            }
            Event::Wake(why) => self.wake(position, *why, now, &mut effects),
            Event::ProbeDone(ok) => {
                let instance = &mut self.instances[position];
                if *ok {
                    instance.ready = true;
                } else if let (Ready::Probe { every, .. }, Phase::Running) =
                    (&instance.job.ready, &instance.phase)
                {
                    effects.push(Effect::Wake {
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
            } => match instance.phase {
                Phase::Starting | Phase::Running => request_stop(
                    instance,
                    AfterEnd::Stop {
                        reason: reason.clone(),
                        counts_as_failure: *counts_as_failure,
                    },
                    &mut effects,
                ),
                Phase::Stopping => {
                    instance.after_end = AfterEnd::Stop {
                        reason: reason.clone(),
                        counts_as_failure: *counts_as_failure,
                    };
                }
                Phase::Done(_) => {}
                Phase::Pending
                | Phase::Waiting(_)
                | Phase::Backoff { .. }
                | Phase::Lost
                | Phase::Fixing { .. } => {
                    instance.ended = Some(now);
                    mark_pending_skipped(instance);
                    instance.phase = Phase::Done(if *counts_as_failure {
                        Outcome::Failed {
                            step: None,
                            exit: ExitInfo::Unknown,
                            reason: Some(reason.clone()),
                        }
                    } else {
                        Outcome::Stopped(reason.clone())
                    });
                }
            },
            Event::Restart { reason } => {
                instance.attempts.reset();
                match instance.phase {
                    Phase::Starting | Phase::Running => {
                        let reason = reason.clone();
                        request_stop(instance, AfterEnd::Restart { reason }, &mut effects);
                    }
                    Phase::Stopping => {
                        instance.after_end = AfterEnd::Restart {
                            reason: reason.clone(),
                        }
                    }
                    Phase::Pending | Phase::Waiting(_) | Phase::Lost | Phase::Fixing { .. } => {}
                    Phase::Backoff { .. } | Phase::Done(_) => {
                        instance.failures_in_a_row = 0;
                        instance.policy_restarts = 0;
                        instance.phase = Phase::Pending;
                    }
                }
            }
            Event::RemedyDone { exit, .. } => {
                let healed = instance.remedy_due.take().is_some_and(|remedy| {
                    instance.attempts.finished(&remedy, now);
                    remedy.healed(exit)
                });
                if let Some(record) = instance.fixups.last_mut()
                    && record.exit.is_none()
                {
                    record.exit = Some(exit.clone());
                    record.healed = healed;
                }
                if matches!(instance.phase, Phase::Fixing { .. }) {
                    // Healed or not, the job gets its next try: a remedy that
                    // did not help shows again as the same failure, until the
                    // rule's `max` is spent.
                    instance.reason = None;
                    instance.phase = Phase::Pending;
                }
            }
            Event::SendSignal(signal) => {
                if let (true, Some(pgid)) = (instance.is_live(), instance.pgid) {
                    effects.push(Effect::Signal {
                        id: instance.id.clone(),
                        pgid,
                        signal: *signal,
                    });
                }
            }
            Event::Start => {
                if matches!(instance.phase, Phase::Done(_) | Phase::Backoff { .. }) {
                    instance.attempts.reset();
                    instance.failures_in_a_row = 0;
                    instance.policy_restarts = 0;
                    instance.phase = Phase::Pending;
                }
            }
        }
        effects.extend(self.schedule());
        self.stop_in_order(&mut effects);
        effects
    }

    /// Returns whether the event may have changed what can start or must
    /// stop; only an output line that matched nothing did not.
    fn apply_job_event(
        &mut self,
        position: usize,
        event: &JobEvent,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let instance = &mut self.instances[position];
        match *event {
            JobEvent::Spawned { pid, pgid } => {
                instance.pid = Some(pid);
                instance.pgid = Some(pgid);
                instance.launched = Some(now);
                match instance.phase {
                    Phase::Starting => {
                        instance.phase = Phase::Running;
                        let generation = instance.generation;
                        if let Some(every) = instance.job.restart_every
                            && self.mode == Mode::Up
                        {
                            effects.push(Effect::Wake {
                                id: instance.id.clone(),
                                generation,
                                after: every,
                                why: Wake::ScheduledRestart,
                            });
                        }
                        if let Ready::Probe { command, .. } = &instance.job.ready {
                            effects.push(Effect::Probe {
                                id: instance.id.clone(),
                                generation,
                                command: command.clone(),
                            });
                        }
                    }
                    // Asked to stop while its shell was starting: now it
                    // has a process group to signal.
                    Phase::Stopping => effects.push(Effect::Signal {
                        id: instance.id.clone(),
                        pgid,
                        signal: instance.job.stop.signal,
                    }),
                    _ => {}
                }
            }
            JobEvent::StepStarted { step } => {
                if let Some(step) = instance.step_mut(step) {
                    step.status = StepStatus::Running;
                    step.started = Some(now);
                }
            }
            JobEvent::StepExited { step, code } => {
                if let Some(step) = instance.step_mut(step) {
                    step.ended = Some(now);
                    step.status = if code == 0 {
                        StepStatus::Ok
                    } else {
                        StepStatus::Failed(ExitInfo::Code(code))
                    };
                }
            }
            JobEvent::Line {
                ref text, stream, ..
            } => {
                if instance.phase == Phase::Running
                    && !instance.stop_requested()
                    && let Some(remedy) = instance.matcher.line(text, stream)
                {
                    let after_end = fixup_decision(instance, remedy, now);
                    request_stop(instance, after_end, effects);
                    return true;
                }
                let mut changed = false;
                if let Ready::Log(pattern) = &instance.job.ready
                    && !instance.ready
                    && pattern.is_match(text)
                {
                    instance.ready = true;
                    changed = true;
                }
                if self.mode == Mode::Up
                    && instance.phase == Phase::Running
                    && instance.job.restart_on.is_match(text)
                {
                    let reason = format!("output matched restart_on: {text}");
                    request_stop(instance, AfterEnd::Restart { reason }, effects);
                    changed = true;
                }
                return changed;
            }
            JobEvent::Ended { ref exit } => {
                if !instance.stop_requested()
                    && let Some(remedy) = instance.matcher.exit(exit)
                {
                    instance.after_end = fixup_decision(instance, remedy, now);
                }
                let outcome = instance.close_run(now, exit.clone());
                self.after_run(position, outcome, now, effects);
            }
        }
        true
    }

    /// Decides what follows a run that ended with `outcome`.
    fn after_run(
        &mut self,
        position: usize,
        outcome: Outcome,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        let mode = self.mode;
        let shutting_down = self.shutting_down.is_some();
        let instance = &mut self.instances[position];
        let stayed_up = instance
            .launched
            .is_some_and(|launched| now.saturating_duration_since(launched) >= BACKOFF_RESET_AFTER);
        if stayed_up {
            instance.failures_in_a_row = 0;
            instance.attempts.reset();
        }
        let after_end = std::mem::replace(&mut instance.after_end, AfterEnd::Nothing);
        let failed = !matches!(outcome, Outcome::Ok);
        let after_end = match after_end {
            AfterEnd::Fix { remedy } if !shutting_down => {
                let keep_pgids = self.live_groups_on(position);
                let instance = &mut self.instances[position];
                begin_fixing(instance, remedy, keep_pgids, now, effects);
                return;
            }
            AfterEnd::Fail { reason } => {
                let (step, exit) = match outcome {
                    Outcome::Failed { step, exit, .. } => (step, exit),
                    _ => (None, ExitInfo::Unknown),
                };
                instance.phase = Phase::Done(Outcome::Failed {
                    step,
                    exit,
                    reason: Some(reason),
                });
                return;
            }
            other => other,
        };
        instance.phase = match (after_end, outcome) {
            (AfterEnd::Stop { .. }, Outcome::Ok) if mode == Mode::Run => Phase::Done(Outcome::Ok),
            (
                AfterEnd::Stop {
                    reason,
                    counts_as_failure: true,
                },
                Outcome::Failed { step, exit, .. },
            ) => Phase::Done(Outcome::Failed {
                step,
                exit,
                reason: Some(reason),
            }),
            (AfterEnd::Stop { reason, .. }, _) => Phase::Done(Outcome::Stopped(reason)),
            (AfterEnd::Restart { reason }, _) if !shutting_down => {
                instance.reason = Some(reason);
                Phase::Pending
            }
            (_, outcome) if mode == Mode::Run || shutting_down => Phase::Done(outcome),
            (_, outcome) => {
                let policy_restarts = match instance.job.restart {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => failed,
                    RestartPolicy::Never => false,
                };
                let limit = instance.job.max_restarts;
                if !policy_restarts {
                    Phase::Done(outcome)
                } else if limit.is_some_and(|limit| instance.policy_restarts >= limit) {
                    let (step, exit) = match outcome {
                        Outcome::Failed { step, exit, .. } => (step, exit),
                        _ => (None, ExitInfo::Code(0)),
                    };
                    Phase::Done(Outcome::Failed {
                        step,
                        exit,
                        reason: Some(format!(
                            "gave up after {} restarts (max_restarts)",
                            instance.policy_restarts
                        )),
                    })
                } else {
                    instance.policy_restarts += 1;
                    if failed {
                        instance.failures_in_a_row += 1;
                    } else {
                        instance.failures_in_a_row = 0;
                    }
                    let delay = if failed {
                        instance.backoff_delay()
                    } else {
                        instance.job.backoff.initial
                    };
                    effects.push(Effect::Wake {
                        id: instance.id.clone(),
                        generation: instance.generation,
                        after: delay,
                        why: Wake::BackoffOver,
                    });
                    Phase::Backoff { until: now + delay }
                }
            }
        };
    }

    fn wake(&mut self, position: usize, why: Wake, now: Instant, effects: &mut Vec<Effect>) {
        let instance = &mut self.instances[position];
        match why {
            Wake::BackoffOver => {
                if matches!(instance.phase, Phase::Backoff { until } if until <= now) {
                    instance.phase = Phase::Pending;
                }
            }
            Wake::StopGraceOver => {
                if let (Phase::Stopping, Some(pgid)) = (&instance.phase, instance.pgid) {
                    effects.push(Effect::Signal {
                        id: instance.id.clone(),
                        pgid,
                        signal: Signal::Kill,
                    });
                }
            }
            Wake::ScheduledRestart => {
                if instance.phase == Phase::Running {
                    let reason = "scheduled restart (restart_every)".to_string();
                    request_stop(instance, AfterEnd::Restart { reason }, effects);
                }
            }
            Wake::RemedyDue => {
                if matches!(instance.phase, Phase::Fixing { .. })
                    && let Some(remedy) = instance.remedy_due.take()
                {
                    let keep_pgids = self.live_groups_on(position);
                    let instance = &mut self.instances[position];
                    begin_fixing(instance, remedy, keep_pgids, now, effects);
                }
            }
            Wake::Probe => {
                if instance.phase == Phase::Running
                    && !instance.ready
                    && let Ready::Probe { command, .. } = &instance.job.ready
                {
                    effects.push(Effect::Probe {
                        id: instance.id.clone(),
                        generation: instance.generation,
                        command: command.clone(),
                    });
                }
            }
        }
    }

    /// Moves pending instances on: start those whose dependencies are ready,
    /// hold the others as waiting (with the reason), and in `zap run` give
    /// up on those whose dependencies can no longer become ready.
    fn schedule(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.shutting_down.is_some() {
            return effects;
        }
        loop {
            let mut changed = false;
            for position in 0..self.instances.len() {
                let instance = &self.instances[position];
                if !matches!(instance.phase, Phase::Pending | Phase::Waiting(_)) {
                    continue;
                }
                let mut waiting_on = Vec::new();
                let mut broken = None;
                for dependency in &instance.after {
                    for other in self
                        .instances
                        .iter()
                        .filter(|other| &other.id.job == dependency)
                    {
                        if other.ready {
                            continue;
                        }
                        if other.is_done() && self.mode == Mode::Run {
                            broken = Some(dependency.clone());
                        } else if !waiting_on.contains(dependency) {
                            waiting_on.push(dependency.clone());
                        }
                    }
                }
                let reason = self.waiting_reason(&waiting_on);
                let instance = &mut self.instances[position];
                if let Some(dependency) = broken {
                    mark_pending_skipped(instance);
                    instance.phase = Phase::Done(Outcome::DependencyFailed(dependency));
                    changed = true;
                } else if waiting_on.is_empty() {
                    effects.push(instance.begin_run());
                    changed = true;
                } else {
                    // The reason changes as what it waits for fails or
                    // restarts, even when the list of names does not.
                    instance.phase = Phase::Waiting(waiting_on);
                    instance.reason = Some(reason);
                }
            }
            if !changed {
                return effects;
            }
        }
    }

    /// The process groups of zap's other live jobs on the same host as
    /// instance `position`: a remedy there must spare them.
    fn live_groups_on(&self, position: usize) -> Vec<u32> {
        let host = &self.instances[position].id.host;
        self.instances
            .iter()
            .enumerate()
            .filter(|(other, instance)| {
                *other != position && &instance.id.host == host && instance.is_live()
            })
            .filter_map(|(_, instance)| instance.pgid)
            .collect()
    }

    /// "waiting for web.db (failed at step 2)", naming what holds it up.
    fn waiting_reason(&self, waiting_on: &[JobName]) -> String {
        let parts: Vec<String> = waiting_on
            .iter()
            .map(|name| {
                let trouble = self
                    .instances
                    .iter()
                    .filter(|other| &other.id.job == name)
                    .find_map(|other| match &other.phase {
                        Phase::Done(Outcome::Ok) => None,
                        Phase::Done(_) => Some("which ended without becoming ready"),
                        Phase::Backoff { .. } => Some("which is restarting"),
                        Phase::Lost => Some("whose host is down"),
                        _ => None,
                    });
                match trouble {
                    Some(trouble) => format!("{name}, {trouble}"),
                    None => name.to_string(),
                }
            })
            .collect();
        format!("waiting for {}", parts.join(" and "))
    }
}

/// Events that belong to one run of the shell, as opposed to requests.
fn is_about_a_run(event: &Event) -> bool {
    matches!(
        event,
        Event::Launched
            | Event::Job(_)
            | Event::Unreachable(_)
            | Event::LaunchFailed(_)
            | Event::HostLost(_)
            | Event::Wake(_)
            | Event::ProbeDone(_)
            | Event::RemedyDone { .. }
    )
}

/// What a matching fixup asks for: its remedy, or giving up when the rule's
/// `max` attempts are spent.
fn fixup_decision(instance: &Instance, remedy: Remedy, now: Instant) -> AfterEnd {
    match instance.attempts.decide(&remedy, now) {
        Decision::GiveUp { reason } => AfterEnd::Fail { reason },
        Decision::Run { .. } | Decision::Wait { .. } => AfterEnd::Fix {
            remedy: Box::new(remedy),
        },
    }
}

/// The job's shell is gone: run the remedy now, or once its rule's cooldown
/// is over.
fn begin_fixing(
    instance: &mut Instance,
    remedy: Box<Remedy>,
    keep_pgids: Vec<u32>,
    now: Instant,
    effects: &mut Vec<Effect>,
) {
    instance.phase = Phase::Fixing {
        rule: remedy.rule.clone(),
        command: remedy.command.clone(),
    };
    instance.reason = Some(format!("{} matched: {}", remedy.rule, remedy.line));
    match instance.attempts.decide(&remedy, now) {
        Decision::Run { .. } => {
            instance.attempts.started(&remedy, now);
            instance.fixups.push(FixupRecord {
                rule: remedy.rule.clone(),
                command: remedy.command.clone(),
                exit: None,
                healed: false,
            });
            instance.remedy_due = Some(remedy.clone());
            effects.push(Effect::Remedy {
                id: instance.id.clone(),
                generation: instance.generation,
                remedy,
                keep_pgids,
            });
        }
        Decision::Wait { until } => {
            effects.push(Effect::Wake {
                id: instance.id.clone(),
                generation: instance.generation,
                after: until.saturating_duration_since(now),
                why: Wake::RemedyDue,
            });
            instance.remedy_due = Some(remedy);
        }
        Decision::GiveUp { reason } => {
            instance.reason = None;
            instance.phase = Phase::Done(Outcome::Failed {
                step: instance.last_run.as_ref().and_then(|last| last.step),
                exit: instance
                    .last_run
                    .as_ref()
                    .map_or(ExitInfo::Unknown, |last| last.exit.clone()),
                reason: Some(reason),
            });
        }
    }
}

/// Signals the job's process group (once it has one) and arms the KILL
/// timer; `after_end` says what happens when the shell is gone.
fn request_stop(instance: &mut Instance, after_end: AfterEnd, effects: &mut Vec<Effect>) {
    instance.after_end = after_end;
    instance.phase = Phase::Stopping;
    if let Some(pgid) = instance.pgid {
        effects.push(Effect::Signal {
            id: instance.id.clone(),
            pgid,
            signal: instance.job.stop.signal,
        });
    }
    effects.push(Effect::Wake {
        id: instance.id.clone(),
        generation: instance.generation,
        after: instance.job.stop.timeout,
        why: Wake::StopGraceOver,
    });
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
