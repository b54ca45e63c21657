//! What `zap status` shows: a pure function of the supervisor's state.

use std::time::Instant;

use crate::control::protocol::{FixupAttempt, InstanceStatus, LastExit};
use crate::summary::{format_duration, outcome_text};
use crate::supervisor::{Instance, Outcome, Phase, State};

/// Every instance, in the order they were selected.
pub fn snapshot(state: &State, now: Instant) -> Vec<InstanceStatus> {
    state
        .instances()
        .iter()
        .map(|instance| {
            let mut status = instance_status(instance, now);
            status.stats_unavailable = state
                .host_stats(&instance.id.host)
                .and_then(|host| host.unavailable.clone());
            status
        })
        .collect()
}

/// The state's name as `zap status` and the TUI spell it.
/// How the instance's previous run ended, as the start of a backoff's
/// words ("failed at step 2: exit 1; "); empty before any run ended.
pub fn last_run_words(instance: &Instance) -> String {
    instance
        .last_run
        .as_ref()
        .map_or(String::new(), |last| match last.step {
            Some(step) => format!("failed at step {step}: {}; ", last.exit),
            None if last.exit.is_success() => "exited ok; ".to_string(),
            None => format!("ended: {}; ", last.exit),
        })
}

pub fn state_name(instance: &Instance) -> &'static str {
    match &instance.phase {
        Phase::Pending => "pending",
        Phase::Waiting(_) => "waiting",
        Phase::Starting => "starting",
        Phase::Running if instance.ready => "ready",
        Phase::Running => "running",
        Phase::Stopping => "stopping",
        Phase::Backoff { .. } => "backoff",
        Phase::Lost => "lost",
        Phase::Fixing { .. } => "fixing",
        Phase::Done(Outcome::Ok) => "exited",
        Phase::Done(Outcome::Failed { .. } | Outcome::DependencyFailed(_)) => "failed",
        Phase::Done(Outcome::Unreachable(_)) => "unreachable",
        Phase::Done(Outcome::Stopped(_)) => "stopped",
    }
}

fn instance_status(instance: &Instance, now: Instant) -> InstanceStatus {
    let step = instance.current_step().or(match &instance.phase {
        Phase::Done(Outcome::Failed { step, .. }) => *step,
        _ => None,
    });
    let reason = match &instance.phase {
        Phase::Backoff { until } => Some(format!(
            "restarting in {}",
            format_duration(until.saturating_duration_since(now))
        )),
        Phase::Done(_) => outcome_text(instance),
        _ => instance.reason.clone(),
    };
    InstanceStatus {
        system: instance.id.job.system.clone(),
        job: instance.id.job.job.clone(),
        host: instance.id.host.0.clone(),
        state: state_name(instance).to_string(),
        step: step.map(|step| step.0),
        step_command: step
            .and_then(|step| instance.step(step))
            .map(|step| step.command.clone()),
        last_exit: instance
            .last_run
            .as_ref()
            .map(|last| LastExit::from(&last.exit)),
        pid: if instance.is_live() {
            instance.pid
        } else {
            None
        },
        restarts: instance.restarts,
        uptime_s: instance.uptime(now).map(|up| up.as_secs_f64()),
        reason,
        cpu_percent: instance.stats.as_ref().and_then(|stats| stats.cpu_percent),
        rss_bytes: instance.stats.as_ref().map(|stats| stats.rss_bytes),
        procs: instance.stats.as_ref().map(|stats| stats.procs),
        stats_age_s: instance
            .stats
            .as_ref()
            .map(|stats| now.saturating_duration_since(stats.at).as_secs_f64()),
        stats_unavailable: None,
        fixups: instance
            .fixups
            .iter()
            .map(|fixup| FixupAttempt {
                rule: fixup.rule.clone(),
                command: fixup.command.clone(),
                exit: fixup.exit.as_ref().map(LastExit::from),
                healed: fixup.healed,
            })
            .collect(),
    }
}
