//! What the UI shows of the supervisor's state, copied out of it in one go
//! (inside the loop, through `Request::Inspect`) so that drawing and key
//! handling never hold the state and never change it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::figures::{self, HostFigures, JobFigures};
use crate::model::{ExitInfo, HostName, InstanceId, StepIndex};
use crate::supervisor::{Instance, Outcome, Phase, State, StepStatus};

pub use crate::supervisor::StateKind;

/// The header's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub instances: usize,
    /// Starting, running, ready or stopping.
    pub running: usize,
    pub failed: usize,
    pub fixing: usize,
    pub backoff: usize,
    /// Pending or waiting on `after`.
    pub waiting: usize,
    /// Not done: what quitting would stop.
    pub not_done: usize,
    pub hosts_down: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    /// The command's first line.
    pub command: String,
    pub status: StepStatus,
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    pub id: InstanceId,
    pub kind: StateKind,
    /// The state's name, as `zap status` prints it.
    pub state: &'static str,
    pub steps: Vec<StepView>,
    /// The step running now, or the one the last run failed at.
    pub step: Option<StepIndex>,
    /// How the previous run ended.
    pub last_exit: Option<ExitInfo>,
    pub restarts: u32,
    pub uptime: Option<Duration>,
    pub pid: Option<u32>,
    /// Why it is in its state: "waiting for web.db", "restarting in 4s",
    /// "failed at step 2: exit 1".
    pub info: Option<String>,
    pub figures: Option<JobFigures>,
    /// `pty = true`: shown through the same ANSI path for now.
    pub pty: bool,
    /// Lines received so far on stdout and stderr, for the unseen marks.
    pub out_lines: u64,
    pub err_lines: u64,
    pub done: bool,
}

impl InstanceView {
    pub fn step_view(&self, index: StepIndex) -> Option<&StepView> {
        self.steps
            .get(usize::try_from(index.0).ok()?.checked_sub(1)?)
    }

    /// The step column: `2/3 make`.
    pub fn step_text(&self) -> Option<String> {
        let index = self.step?;
        let command = self
            .step_view(index)
            .map_or("", |step| step.command.as_str());
        Some(format!("{index}/{} {command}", self.steps.len()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    pub name: HostName,
    /// An instance on it is lost or the host could not be reached.
    pub down: bool,
    pub figures: Option<HostFigures>,
}

/// Everything the screens show, at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// In the order the supervisor holds them (plan order).
    pub instances: Vec<InstanceView>,
    /// Every host an instance runs on, by name.
    pub hosts: Vec<HostView>,
    pub shutting_down: bool,
    pub counts: Counts,
    /// Why job output is not written to disk now, if it is not.
    pub log_trouble: Option<String>,
}

impl Snapshot {
    /// Copies what the UI needs out of `state`. `lines` gives the stdout and
    /// stderr line counts of an instance (from the UI's observer); the jobs
    /// of `processes_on` (the host view's host) come with their processes.
    pub fn capture(
        state: &State,
        now: Instant,
        lines: impl Fn(&InstanceId) -> (u64, u64),
        processes_on: Option<&HostName>,
    ) -> Self {
        let instances: Vec<InstanceView> = state
            .instances()
            .iter()
            .map(|instance| {
                let (out_lines, err_lines) = lines(&instance.id);
                let processes = processes_on == Some(&instance.id.host);
                instance_view(state, instance, now, (out_lines, err_lines), processes)
            })
            .collect();
        let mut down: BTreeMap<HostName, bool> = BTreeMap::new();
        for instance in &instances {
            let is_down = matches!(instance.kind, StateKind::Lost | StateKind::Unreachable);
            *down.entry(instance.id.host.clone()).or_default() |= is_down;
        }
        let hosts = down
            .into_iter()
            .map(|(name, down)| HostView {
                figures: figures::host_figures(state, &name),
                name,
                down,
            })
            .collect();
        let mut snapshot = Snapshot {
            instances,
            hosts,
            shutting_down: state.is_shutting_down(),
            counts: Counts::default(),
            log_trouble: state.log_trouble().map(str::to_string),
        };
        snapshot.counts = snapshot.count();
        snapshot
    }

    fn count(&self) -> Counts {
        let mut counts = Counts {
            instances: self.instances.len(),
            hosts_down: self.hosts.iter().filter(|host| host.down).count(),
            ..Counts::default()
        };
        for instance in &self.instances {
            match instance.kind {
                kind if kind.is_running() => counts.running += 1,
                StateKind::Failed => counts.failed += 1,
                StateKind::Fixing => counts.fixing += 1,
                StateKind::Backoff => counts.backoff += 1,
                StateKind::Pending | StateKind::Waiting => counts.waiting += 1,
                _ => {}
            }
            if !instance.done {
                counts.not_done += 1;
            }
        }
        counts
    }

    pub fn instance(&self, id: &InstanceId) -> Option<&InstanceView> {
        self.instances.iter().find(|instance| &instance.id == id)
    }

    pub fn host(&self, name: &HostName) -> Option<&HostView> {
        self.hosts.iter().find(|host| &host.name == name)
    }
}

fn instance_view(
    state: &State,
    instance: &Instance,
    now: Instant,
    (out_lines, err_lines): (u64, u64),
    processes: bool,
) -> InstanceView {
    let kind = instance.kind();
    let step = instance.current_step().or(match instance.phase() {
        Phase::Done(Outcome::Failed { step, .. }) => *step,
        _ => instance.last_run.as_ref().and_then(|last| last.step),
    });
    let info = crate::words::state_info(instance, now);
    InstanceView {
        id: instance.id.clone(),
        kind,
        state: kind.name(),
        steps: instance
            .steps
            .iter()
            .map(|step| StepView {
                command: step.command.lines().next().unwrap_or("").to_string(),
                status: step.status.clone(),
                duration: step.duration().or_else(|| {
                    (step.status == StepStatus::Running)
                        .then(|| step.started.map(|at| now.saturating_duration_since(at)))
                        .flatten()
                }),
            })
            .collect(),
        step,
        last_exit: instance.last_run.as_ref().map(|last| last.exit.clone()),
        restarts: instance.restarts,
        uptime: instance.uptime(now),
        pid: if instance.is_live() {
            instance.pid
        } else {
            None
        },
        info,
        figures: figures::job_figures(state, instance, processes),
        pty: instance.job().pty,
        out_lines,
        err_lines,
        done: instance.is_done(),
    }
}
