//! The JSON report of `zap run --report FILE`: a pure function of
//! the final state.

use serde::Serialize;

use crate::model::ExitInfo;
use crate::supervisor::{Instance, Outcome, Phase, State, StepStatus};

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub jobs: Vec<JobReport>,
}

#[derive(Debug, Serialize)]
pub struct JobReport {
    pub system: String,
    pub job: String,
    pub host: String,
    /// ok | failed | unreachable | stopped
    pub status: &'static str,
    pub failed_step: Option<u32>,
    /// Why the job ended as it did, where the status alone does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub cpu_percent_max: Option<f64>,
    pub rss_bytes_max: Option<u64>,
    pub steps: Vec<StepReport>,
    pub fixups: Vec<FixupReport>,
}

#[derive(Debug, Serialize)]
pub struct StepReport {
    pub index: u32,
    pub command: String,
    /// ok | failed | skipped | killed
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct FixupReport {
    pub rule: String,
    pub command: String,
    pub exit: Option<i32>,
    pub healed: bool,
}

pub fn build(state: &State) -> Report {
    let jobs: Vec<JobReport> = state.instances().iter().map(job_report).collect();
    Report {
        ok: jobs.iter().all(|job| job.status == "ok"),
        jobs,
    }
}

fn job_report(instance: &Instance) -> JobReport {
    let (status, failed_step, reason) = match instance.phase() {
        Phase::Done(Outcome::Ok) => ("ok", None, None),
        Phase::Done(Outcome::Failed { step, reason, .. }) => {
            ("failed", step.map(|step| step.0), reason.clone())
        }
        Phase::Done(Outcome::Unreachable(reason)) => ("unreachable", None, Some(reason.clone())),
        Phase::Done(Outcome::Stopped(reason)) => ("stopped", None, Some(reason.clone())),
        Phase::Done(Outcome::DependencyFailed(dependency)) => (
            "failed",
            None,
            Some(format!("{dependency} did not become ready")),
        ),
        _ => ("failed", None, Some("did not finish".to_string())),
    };
    JobReport {
        system: instance.id.job.system.clone(),
        job: instance.id.job.job.clone(),
        host: instance.id.host.0.clone(),
        status,
        failed_step,
        reason,
        pid: instance.pid,
        restarts: instance.restarts,
        cpu_percent_max: instance
            .cpu_percent_max
            .map(|cpu| (cpu * 10.0).round() / 10.0),
        rss_bytes_max: instance.rss_bytes_max,
        steps: instance
            .steps
            .iter()
            .enumerate()
            .map(|(position, step)| {
                let (status, exit, signal) = match &step.status {
                    StepStatus::Ok => ("ok", Some(0), None),
                    StepStatus::Failed(ExitInfo::Code(code)) => ("failed", Some(*code), None),
                    StepStatus::Failed(_) => ("failed", None, None),
                    StepStatus::Killed(signal) => ("killed", None, Some(signal.clone())),
                    StepStatus::Skipped | StepStatus::Pending | StepStatus::Running => {
                        ("skipped", None, None)
                    }
                };
                StepReport {
                    index: u32::try_from(position + 1).unwrap_or(u32::MAX),
                    command: step.command.clone(),
                    status,
                    exit,
                    signal,
                    duration_ms: step
                        .duration()
                        .map(|took| u64::try_from(took.as_millis()).unwrap_or(u64::MAX)),
                }
            })
            .collect(),
        fixups: instance
            .fixups
            .iter()
            .map(|fixup| FixupReport {
                rule: fixup.rule.clone(),
                command: fixup.command.clone(),
                exit: match &fixup.exit {
                    Some(ExitInfo::Code(code)) => Some(*code),
                    _ => None,
                },
                healed: fixup.healed,
            })
            .collect(),
    }
}
