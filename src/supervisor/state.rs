//! The state of every job instance of a run, and the one function that changes
//! it: [`State::apply`]. No I/O here, so behaviour is tested with scripted
//! events and hand-made instants.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::{Plan, Ready};
use crate::model::{ExitInfo, InstanceId, JobName, StepIndex};
use crate::transport::decode::JobEvent;

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
    /// zap is stopping the job (a timeout, Ctrl+C); the reason is shown.
    StopRequested {
        reason: String,
        counts_as_failure: bool,
    },
}

/// What the supervisor must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Start(InstanceId),
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
    Done(Outcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A step failed, the shell died, or zap stopped it for a reason that is
    /// a failure (a timeout). `step` is the step that was running.
    Failed {
        step: Option<StepIndex>,
        exit: ExitInfo,
        reason: Option<String>,
    },
    Unreachable(String),
    /// Stopped by the user (Ctrl+C), not a failure of the job.
    Stopped(String),
    /// Never started: a job it comes after did not become ready.
    DependencyFailed(JobName),
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: InstanceId,
    pub steps: Vec<Step>,
    pub phase: Phase,
    pub pid: Option<u32>,
    pub pgid: Option<u32>,
    pub restarts: u32,
    pub launched: Option<Instant>,
    pub ended: Option<Instant>,
    /// Reached its `ready` condition (stays true once reached).
    pub ready: bool,
    ready_condition: Ready,
    after: Vec<JobName>,
    /// Set when zap asked the job to stop, so its death is not its fault.
    stop_request: Option<(String, bool)>,
}

impl Instance {
    /// The step that is running now, if any.
    pub fn current_step(&self) -> Option<StepIndex> {
        self.steps
            .iter()
            .position(|step| step.status == StepStatus::Running)
            .map(step_index)
    }

    /// zap asked this job to stop and it has not ended yet.
    pub fn stop_requested(&self) -> bool {
        self.stop_request.is_some()
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    fn step_mut(&mut self, index: StepIndex) -> Option<&mut Step> {
        let position = usize::try_from(index.0).ok()?.checked_sub(1)?;
        self.steps.get_mut(position)
    }

    fn finish(&mut self, now: Instant, exit: ExitInfo) {
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
        for step in &mut self.steps {
            if step.status == StepStatus::Pending {
                step.status = StepStatus::Skipped;
            }
        }
        let failed_step = self
            .steps
            .iter()
            .position(|step| matches!(step.status, StepStatus::Failed(_) | StepStatus::Killed(_)));
        let all_ran = self.steps.iter().all(|step| step.status == StepStatus::Ok);
        self.ended = Some(now);
        let stop_request = self.stop_request.take();
        self.phase = Phase::Done(match (stop_request, failed_step) {
            // The shell ended 0 with no failed step: the job finished (or a
            // step ran `exit 0`), even if a stop was on its way.
            (_, None) if exit.is_success() => Outcome::Ok,
            (Some((reason, true)), _) => Outcome::Failed {
                step: running.or(failed_step.map(step_index)),
                exit,
                reason: Some(reason),
            },
            (Some((reason, false)), _) => Outcome::Stopped(reason),
            (None, Some(position)) => Outcome::Failed {
                step: Some(step_index(position)),
                exit,
                reason: None,
            },
            (None, None) if all_ran => Outcome::Failed {
                step: None,
                exit,
                reason: Some("the shell ended badly after the last step".into()),
            },
            (None, None) => Outcome::Failed {
                step: None,
                exit,
                reason: Some("the job's shell ended before its first step".into()),
            },
        });
        if let Ready::Exit(code) = self.ready_condition
            && matches!(
                self.phase,
                Phase::Done(Outcome::Ok | Outcome::Failed { .. })
            )
        {
            let exited_with = match &self.phase {
                Phase::Done(Outcome::Ok) => Some(0),
                Phase::Done(Outcome::Failed {
                    exit: ExitInfo::Code(code),
                    reason: None,
                    ..
                }) => Some(*code),
                _ => None,
            };
            self.ready |= exited_with == Some(code);
        }
    }
}

fn step_index(position: usize) -> StepIndex {
    StepIndex(u32::try_from(position + 1).unwrap_or(u32::MAX))
}

/// Every instance of the run, in the order they were selected.
#[derive(Debug, Clone)]
pub struct State {
    instances: Vec<Instance>,
    by_id: BTreeMap<InstanceId, usize>,
}

impl State {
    /// `selected` must name jobs of `plan`; unknown ones are skipped.
    pub fn new(plan: &Plan, selected: &[InstanceId]) -> Self {
        let mut instances = Vec::new();
        for id in selected {
            let Some(job) = plan.job(&id.job) else {
                continue;
            };
            instances.push(Instance {
                id: id.clone(),
                steps: job
                    .steps
                    .iter()
                    .map(|command| Step {
                        command: command.clone(),
                        status: StepStatus::Pending,
                        started: None,
                        ended: None,
                    })
                    .collect(),
                phase: Phase::Pending,
                pid: None,
                pgid: None,
                restarts: 0,
                launched: None,
                ended: None,
                ready: false,
                ready_condition: job.ready.clone(),
                // Only jobs of this run are waited for.
                after: job
                    .after
                    .iter()
                    .filter(|dependency| selected.iter().any(|other| &other.job == *dependency))
                    .cloned()
                    .collect(),
                stop_request: None,
            });
        }
        let by_id = instances
            .iter()
            .enumerate()
            .map(|(position, instance)| (instance.id.clone(), position))
            .collect();
        State { instances, by_id }
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    pub fn instance(&self, id: &InstanceId) -> Option<&Instance> {
        self.instances.get(*self.by_id.get(id)?)
    }

    pub fn all_done(&self) -> bool {
        self.instances.iter().all(Instance::is_done)
    }

    /// Starts what can start now: call once at the beginning.
    pub fn begin(&mut self) -> Vec<Effect> {
        self.schedule()
    }

    pub fn apply(&mut self, id: &InstanceId, event: Event, now: Instant) -> Vec<Effect> {
        let Some(&position) = self.by_id.get(id) else {
            return Vec::new();
        };
        let instance = &mut self.instances[position];
        match event {
            Event::Launched => {
                if instance.phase == Phase::Starting {
                    instance.launched = Some(now);
                }
            }
            Event::Job(job_event) => apply_job_event(instance, job_event, now),
            Event::Unreachable(reason) => {
                instance.ended = Some(now);
                mark_pending_skipped(instance);
                instance.phase = Phase::Done(Outcome::Unreachable(reason));
            }
            Event::LaunchFailed(reason) => {
                instance.ended = Some(now);
                mark_pending_skipped(instance);
                instance.phase = Phase::Done(Outcome::Failed {
                    step: None,
                    exit: ExitInfo::Unknown,
                    reason: Some(reason),
                });
            }
            Event::StopRequested {
                reason,
                counts_as_failure,
            } => match instance.phase {
                Phase::Pending | Phase::Waiting(_) => {
                    instance.ended = Some(now);
                    mark_pending_skipped(instance);
                    instance.phase = Phase::Done(if counts_as_failure {
                        Outcome::Failed {
                            step: None,
                            exit: ExitInfo::Unknown,
                            reason: Some(reason),
                        }
                    } else {
                        Outcome::Stopped(reason)
                    });
                }
                Phase::Starting | Phase::Running => {
                    instance.stop_request = Some((reason, counts_as_failure));
                }
                Phase::Done(_) => {}
            },
        }
        self.schedule()
    }

    /// Moves pending instances on: start those whose dependencies are ready,
    /// give up on those whose dependencies can no longer become ready.
    fn schedule(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
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
                    let of_dependency = self
                        .instances
                        .iter()
                        .filter(|other| &other.id.job == dependency);
                    for other in of_dependency {
                        if other.ready {
                            continue;
                        }
                        if other.is_done() {
                            broken = Some(dependency.clone());
                        } else if !waiting_on.contains(dependency) {
                            waiting_on.push(dependency.clone());
                        }
                    }
                }
                let instance = &mut self.instances[position];
                if let Some(dependency) = broken {
                    mark_pending_skipped(instance);
                    instance.phase = Phase::Done(Outcome::DependencyFailed(dependency));
                    changed = true;
                } else if waiting_on.is_empty() {
                    instance.phase = Phase::Starting;
                    effects.push(Effect::Start(instance.id.clone()));
                    changed = true;
                } else if instance.phase != Phase::Waiting(waiting_on.clone()) {
                    instance.phase = Phase::Waiting(waiting_on);
                }
            }
            if !changed {
                return effects;
            }
        }
    }
}

fn mark_pending_skipped(instance: &mut Instance) {
    for step in &mut instance.steps {
        if matches!(step.status, StepStatus::Pending | StepStatus::Running) {
            step.status = StepStatus::Skipped;
        }
    }
}

fn apply_job_event(instance: &mut Instance, event: JobEvent, now: Instant) {
    match event {
        JobEvent::Spawned { pid, pgid } => {
            instance.pid = Some(pid);
            instance.pgid = Some(pgid);
            if instance.launched.is_none() {
                instance.launched = Some(now);
            }
            if instance.phase == Phase::Starting {
                instance.phase = Phase::Running;
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
        JobEvent::Line { text, .. } => {
            if let Ready::Log(pattern) = &instance.ready_condition
                && !instance.ready
                && pattern.is_match(&text)
            {
                instance.ready = true;
            }
        }
        JobEvent::Ended { exit } => instance.finish(now, exit),
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
