//! One job instance: its steps, its phase, its runs so far. Its phase
//! changes only through [`Instance::enter`], which records the change.

use std::time::{Duration, Instant};

use super::change::{Applied, What};
use super::event::Effect;
use super::phase::{AfterEnd, Outcome, Phase, StateKind};
use crate::config::{Job, Plan, Ready, StopScope};
use crate::fixup::{Attempts, Matcher};
use crate::model::{ExitInfo, InstanceId, JobName, Signal, StepIndex};
use crate::stats::JobStats;

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

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: InstanceId,
    /// Its place in the state's list, which changes name it by.
    pub(super) position: usize,
    pub steps: Vec<Step>,
    phase: Phase,
    /// The shell of the current run, or of the last one once it ended: they
    /// say which process that run was.
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
    pub(super) job: Job,
    /// Dependencies among the selected jobs.
    pub(super) after: Vec<JobName>,
    /// Failures in a row, for the backoff delay.
    pub(super) failures_in_a_row: u32,
    /// Restarts the policy made (not the user), for `max_restarts`.
    pub(super) policy_restarts: u32,
    /// Every fixup attempt, oldest first.
    pub fixups: Vec<FixupRecord>,
    /// The job's fixup rules, watching its output.
    pub(super) matcher: Matcher,
    pub(super) attempts: Attempts,
    /// CPU and memory of its process tree, from the host's last poll; `None`
    /// when it does not run or its host's stats are unavailable.
    pub stats: Option<JobStats>,
    /// The highest CPU% and RSS seen over every run, for the report.
    pub cpu_percent_max: Option<f64>,
    pub rss_bytes_max: Option<u64>,
}

impl Instance {
    pub(super) fn new(
        id: InstanceId,
        position: usize,
        plan: &Plan,
        job: &Job,
        selected: &[InstanceId],
    ) -> Self {
        Instance {
            fixups: Vec::new(),
            matcher: Matcher::for_job(plan, job),
            attempts: Attempts::new(),
            stats: None,
            cpu_percent_max: None,
            rss_bytes_max: None,
            id,
            position,
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
            after: job
                .after
                .iter()
                .filter(|dependency| selected.iter().any(|other| &other.job == *dependency))
                .cloned()
                .collect(),
            job: job.clone(),
            failures_in_a_row: 0,
            policy_restarts: 0,
        }
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The state's name, from the phase.
    pub fn kind(&self) -> StateKind {
        StateKind::of(&self.phase, self.ready)
    }

    /// Whether `event`, asked for from outside (`zap start`, `zap stop`),
    /// has nothing to do here: a start of a job that is up (or on its way
    /// up), a stop of one that already ended. Everything else is carried
    /// out, now or once a stop under way is over.
    pub fn has_nothing_to_do(&self, event: &super::Event) -> bool {
        match event {
            super::Event::Start => !matches!(
                self.phase,
                Phase::Done(_) | Phase::Backoff { .. } | Phase::Stopping { .. }
            ),
            super::Event::Stop { .. } => matches!(self.phase, Phase::Done(_)),
            _ => false,
        }
    }

    /// Moves to `phase`, recording the change if it is one.
    pub(super) fn enter(&mut self, phase: Phase, out: &mut Applied<'_>) {
        if self.phase != phase {
            let from = std::mem::replace(&mut self.phase, phase.clone());
            out.change(self.position, What::Phase { from, to: phase });
        }
    }

    /// Marks the run ready, recording it once.
    pub(super) fn become_ready(&mut self, out: &mut Applied<'_>) {
        if !self.ready {
            self.ready = true;
            if self.phase == Phase::Running {
                out.change(self.position, What::Ready);
            }
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

    pub(super) fn step_mut(&mut self, index: StepIndex) -> Option<&mut Step> {
        let position = usize::try_from(index.0).ok()?.checked_sub(1)?;
        self.steps.get_mut(position)
    }

    /// zap asked this job to stop and it has not ended yet.
    pub fn stop_requested(&self) -> bool {
        matches!(self.phase, Phase::Stopping { .. })
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
            Phase::Starting | Phase::Running | Phase::Stopping { .. }
        )
    }

    /// Waits for nothing but zap: pending, waiting, in backoff, lost or
    /// fixing. Stopping it needs no signal.
    pub fn is_idle(&self) -> bool {
        matches!(
            self.phase,
            Phase::Pending
                | Phase::Waiting { .. }
                | Phase::Backoff { .. }
                | Phase::Lost { .. }
                | Phase::Fixing { .. }
        )
    }

    pub fn job(&self) -> &Job {
        &self.job
    }

    /// How long the current run has been up.
    pub fn uptime(&self, now: Instant) -> Option<Duration> {
        match self.phase {
            Phase::Running | Phase::Stopping { .. } => {
                Some(now.saturating_duration_since(self.launched?))
            }
            _ => None,
        }
    }

    /// Sets up a new run: fresh steps, a new generation.
    pub(super) fn begin_run(&mut self, out: &mut Applied<'_>) {
        if self.generation > 0 {
            self.restarts += 1;
        }
        self.generation += 1;
        self.steps = fresh_steps(&self.job);
        self.enter(Phase::Starting, out);
        self.pid = None;
        self.pgid = None;
        self.launched = None;
        self.ended = None;
        self.ready = false;
        self.matcher.reset();
        out.effects.push(Effect::Start {
            id: self.id.clone(),
            generation: self.generation,
        });
    }

    /// Ends an instance that was not running: its steps skipped, `outcome`.
    pub(super) fn finish_idle(&mut self, outcome: Outcome, now: Instant, out: &mut Applied<'_>) {
        self.ended = Some(now);
        self.skip_pending_steps();
        self.enter(Phase::Done(outcome), out);
    }

    /// Records the end of the shell: step statuses and how the run ended.
    /// Returns the outcome as if nothing more were to happen.
    pub(super) fn close_run(&mut self, now: Instant, exit: ExitInfo) -> Outcome {
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
        self.skip_pending_steps();
        let failed_step = self
            .steps
            .iter()
            .position(|step| matches!(step.status, StepStatus::Failed(_) | StepStatus::Killed(_)));
        let all_ran = self.steps.iter().all(|step| step.status == StepStatus::Ok);
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

    pub(super) fn backoff_delay(&self) -> Duration {
        let backoff = self.job.backoff;
        let doublings = self.failures_in_a_row.saturating_sub(1).min(30);
        backoff
            .initial
            .saturating_mul(1u32 << doublings)
            .min(backoff.max)
    }

    /// Sends `signal` to what stopping this job reaches (its `stop.scope`):
    /// its process group, and under `tree` every process it started.
    pub(super) fn signal_to_stop(&self, signal: Signal, out: &mut Applied<'_>) {
        let Some(pgid) = self.pgid else {
            return;
        };
        out.effects.push(Effect::Signal {
            id: self.id.clone(),
            pgid,
            signal,
        });
        if self.job.stop.scope == StopScope::Tree {
            out.effects.push(Effect::SignalMarked {
                id: self.id.clone(),
                generation: self.generation,
                signal,
                spare: None,
            });
        }
    }

    pub(super) fn skip_pending_steps(&mut self) {
        for step in &mut self.steps {
            if matches!(step.status, StepStatus::Pending | StepStatus::Running) {
                step.status = StepStatus::Skipped;
            }
        }
    }

    /// Signals the job's process group (once it has one) and arms the KILL
    /// timer; `then` says what happens when the shell is gone.
    pub(super) fn request_stop(&mut self, then: AfterEnd, out: &mut Applied<'_>) {
        self.enter(Phase::Stopping { then }, out);
        self.signal_to_stop(self.job.stop.signal, out);
        out.effects.push(Effect::Wake {
            id: self.id.clone(),
            generation: self.generation,
            after: self.job.stop.timeout,
            why: super::event::Wake::StopGraceOver,
        });
    }

    /// Already stopping: what follows the end is now `then`.
    pub(super) fn stop_then(&mut self, then: AfterEnd) {
        if let Phase::Stopping { then: already } = &mut self.phase {
            *already = then;
        }
    }

    /// The one way zap stops a job: a live one is signalled (or, already
    /// stopping, told what follows); one that waits for nothing but zap
    /// ends at once; a done one stays as it is.
    pub(super) fn stop(
        &mut self,
        reason: &str,
        counts_as_failure: bool,
        now: Instant,
        out: &mut Applied<'_>,
    ) {
        let then = AfterEnd::Stop {
            reason: reason.to_string(),
            counts_as_failure,
        };
        match &mut self.phase {
            Phase::Starting | Phase::Running => self.request_stop(then, out),
            Phase::Stopping { .. } => self.stop_then(then),
            Phase::Done(_) => {}
            _ => {
                let outcome = if counts_as_failure {
                    Outcome::Failed {
                        step: None,
                        exit: ExitInfo::Unknown,
                        reason: Some(reason.to_string()),
                    }
                } else {
                    Outcome::Stopped(reason.to_string())
                };
                self.finish_idle(outcome, now, out);
            }
        }
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

pub(super) fn step_index(position: usize) -> StepIndex {
    StepIndex(u32::try_from(position + 1).unwrap_or(u32::MAX))
}
