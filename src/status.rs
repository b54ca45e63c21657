//! What `zap status` shows: a pure function of the supervisor's state.

use std::time::Instant;

use crate::control::protocol::{FixupAttempt, InstanceStatus, LastExit};
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

fn instance_status(instance: &Instance, now: Instant) -> InstanceStatus {
    let step = instance.current_step().or(match instance.phase() {
        Phase::Done(Outcome::Failed { step, .. }) => *step,
        _ => None,
    });
    let reason = crate::words::state_info(instance, now);
    InstanceStatus {
        system: instance.id.job.system.clone(),
        job: instance.id.job.job.clone(),
        host: instance.id.host.0.clone(),
        state: instance.kind().name().to_string(),
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
