//! zap's words for a job's state and for what changed: each phrase is
//! written here once, for the headless lines, the log files, `zap status`,
//! the report, the summary and the TUI alike. `now` is always passed in.

use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::logs::LogHealth;
use crate::model::{ExitInfo, StepIndex, Stream};
use crate::supervisor::cleanup::{Cleared, LeftoverEnd};
use crate::supervisor::{Change, Instance, Mode, Outcome, Phase, State, What};
use crate::transport::decode::LineCut;

/// "3ms", "1.25s", "2m05s": short enough for a column.
pub fn duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.2}s", duration.as_secs_f64())
    } else {
        let seconds = duration.as_secs();
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

/// `42s`, `3m12s`, `2h05m`, `3d04h`.
pub fn uptime(seconds: f64) -> String {
    // Truncating to whole seconds is the point; negative or NaN reads as 0.
    let total = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total / 3_600 % 24,
        total / 60 % 60,
        total % 60,
    );
    match total {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{minutes}m{secs:02}s"),
        3_600..86_400 => format!("{hours}h{minutes:02}m"),
        _ => format!("{days}d{hours:02}h"),
    }
}

/// `512B`, `9.8K`, `120M`, `1.2G`: one decimal below 10, none above.
pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    // Display only: f64's precision is plenty.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// How a run ended, in words.
pub fn outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ok => "ok".to_string(),
        Outcome::Failed { step, exit, reason } => {
            let mut text = match (step, exit) {
                (Some(step), ExitInfo::Signal(signal)) => {
                    format!("killed by SIG{signal} at step {step}")
                }
                (Some(step), exit) => format!("failed at step {step}: {exit}"),
                (None, ExitInfo::Unknown) => "failed".to_string(),
                (None, exit) => format!("failed: {exit}"),
            };
            if let Some(reason) = reason {
                let _ = write!(text, " ({reason})");
            }
            text
        }
        Outcome::Unreachable(reason) => format!("unreachable: {reason}"),
        Outcome::Stopped(reason) => format!("stopped ({reason})"),
        Outcome::DependencyFailed(dependency) => {
            format!("not started: {dependency} did not become ready")
        }
    }
}

/// How an instance ended; `None` while it has not.
pub fn outcome_of(instance: &Instance) -> Option<String> {
    match instance.phase() {
        Phase::Done(done) => Some(outcome(done)),
        _ => None,
    }
}

/// How the instance's previous run ended, as the start of a backoff's
/// words ("failed at step 2: exit 1; "); empty before any run ended.
pub fn last_run(instance: &Instance) -> String {
    instance
        .last_run
        .as_ref()
        .map_or(String::new(), |last| match last.step {
            Some(step) => format!("failed at step {step}: {}; ", last.exit),
            None if last.exit.is_success() => "exited ok; ".to_string(),
            None => format!("ended: {}; ", last.exit),
        })
}

/// A failure in a few words, for the TUI's strip of recent trouble: `None`
/// when `phase` is no trouble.
pub fn trouble(instance: &Instance, phase: &Phase) -> Option<String> {
    match phase {
        Phase::Done(
            done
            @ (Outcome::Failed { .. } | Outcome::Unreachable(_) | Outcome::DependencyFailed(_)),
        ) => Some(outcome(done)),
        Phase::Backoff { .. } => {
            let last = instance.last_run.as_ref()?;
            if last.exit.is_success() {
                return None;
            }
            Some(match last.step {
                Some(step) => format!("failed at step {step}: {}", last.exit),
                None => format!("failed: {}", last.exit),
            })
        }
        Phase::Lost { .. } => Some("lost its host".to_string()),
        _ => None,
    }
}

/// The phrase beside the state's name (`zap status`'s REASON, the TUI's
/// INFO): why it waits, when it restarts, how it ended.
pub fn state_info(instance: &Instance, now: Instant) -> Option<String> {
    phase_info(instance, instance.phase(), now)
}

fn phase_info(instance: &Instance, phase: &Phase, now: Instant) -> Option<String> {
    match phase {
        Phase::Waiting { reason, .. } => Some(reason.clone()),
        Phase::Backoff { until } => Some(format!(
            "{}restarting in {}",
            last_run(instance),
            duration(until.saturating_duration_since(now))
        )),
        Phase::Lost { reason } => Some(format!("lost: {reason}")),
        Phase::Fixing { remedy, .. } => Some(format!(
            "fixing with {}: {}",
            remedy.rule,
            remedy.command.lines().next().unwrap_or("")
        )),
        Phase::Done(done) => Some(outcome(done)),
        Phase::Pending | Phase::Starting | Phase::Running | Phase::Stopping { .. } => None,
    }
}

/// zap's line about `change` (with the step it concerns), if it merits one.
/// Output lines are shown by their own means.
pub fn change(
    state: &State,
    change: &Change<'_>,
    now: Instant,
) -> Option<(Option<StepIndex>, String)> {
    let instance = state.instances().get(change.instance)?;
    Some(match &change.what {
        What::Spawned { pid, pgid, restart } => {
            let again = if *restart > 0 {
                format!(" (restart {restart})")
            } else {
                String::new()
            };
            (
                None,
                format!("started: pid {pid}, process group {pgid}{again}"),
            )
        }
        What::StepStarted { step } => {
            let command = instance
                .step(*step)
                .map_or("", |step| step.command.as_str());
            let first_line = command.lines().next().unwrap_or("");
            let steps = instance.steps.len();
            (Some(*step), format!("step {step}/{steps}: {first_line}"))
        }
        What::StepExited { step, code, took } => {
            let took = took
                .map(|took| format!(" in {}", duration(took)))
                .unwrap_or_default();
            let text = if *code == 0 {
                format!("step {step} ok{took}")
            } else {
                format!("step {step} failed: exit {code}{took}")
            };
            (Some(*step), text)
        }
        What::StopAsked { reason } => (None, format!("stopping: {reason}")),
        What::RestartAsked { reason } => (None, format!("restarting: {reason}")),
        What::HostBack => (None, "the host answers again".to_string()),
        What::FixupEnded {
            rule,
            exit,
            healed,
            output,
        } => {
            let verdict = if *healed { "healed" } else { "did not heal it" };
            let mut text = format!("fixup {rule} ended ({exit}): {verdict}");
            for line in output.lines() {
                text.push_str("\n  ");
                text.push_str(line);
            }
            (None, text)
        }
        What::Ready if state.mode() == Mode::Up => (None, "ready".to_string()),
        What::Phase { from, to } => (None, phase_line(instance, from, to, now)?),
        What::Ready | What::Output { .. } | What::ShellGone { .. } => return None,
    })
}

/// One line a reader of a job's output sees: the job's own, or one of
/// zap's about the job.
pub enum Shown<'a> {
    Output {
        stream: Stream,
        step: Option<StepIndex>,
        text: &'a str,
        cut: LineCut,
    },
    Said {
        step: Option<StepIndex>,
        text: &'a str,
    },
}

/// Calls `show` with each line `changes` make a reader see, in order, with
/// the instance it is about: output lines as they are, zap's words line by
/// line. Changes that show nothing are skipped.
pub fn each_line(
    state: &State,
    changes: &[Change<'_>],
    now: Instant,
    mut show: impl FnMut(&Instance, Shown<'_>),
) {
    for change in changes {
        let Some(instance) = state.instances().get(change.instance) else {
            continue;
        };
        if let What::Output {
            stream,
            step,
            text,
            cut,
        } = change.what
        {
            let shown = Shown::Output {
                stream,
                step,
                text,
                cut,
            };
            show(instance, shown);
        } else if let Some((step, text)) = self::change(state, change, now) {
            for text in text.lines() {
                show(instance, Shown::Said { step, text });
            }
        }
    }
}

/// The line printed when an instance enters `to`; `None` for the phases
/// whose own lines already say it (starting, running, stopping).
fn phase_line(instance: &Instance, from: &Phase, to: &Phase, now: Instant) -> Option<String> {
    match to {
        // Its cooldown over, the same remedy now runs: said already.
        Phase::Fixing { .. } if matches!(from, Phase::Fixing { .. }) => None,
        Phase::Lost { .. } => Some(format!(
            "{}; restarting when the host is back",
            phase_info(instance, to, now)?
        )),
        _ => phase_info(instance, to, now),
    }
}

/// How writing the job logs goes, said when it changes.
pub fn log_health(health: &LogHealth) -> String {
    match health {
        LogHealth::Failing(error) => format!(
            "job output is not being written to disk: {error}; supervising goes on, \
             and writing resumes when it can"
        ),
        LogHealth::Writing => "job output is written to disk again".to_string(),
    }
}

/// Why `zap start` or `zap stop` did nothing to `instance`.
pub fn nothing_to_do(instance: &Instance) -> String {
    format!(
        "{}: nothing to do, it is {}",
        instance.id,
        instance.kind().name()
    )
}

/// What became of one of an earlier zap's leftovers, or `None` when there
/// is nothing to say (it was gone, and left nothing behind).
pub fn leftover(cleared: &Cleared) -> Option<String> {
    let leftover = &cleared.leftover;
    let what = format!(
        "{} (process group {} on {}, run {})",
        leftover.instance, leftover.pgid, leftover.host, leftover.run
    );
    let outside = |marked: u32| match marked {
        0 => String::new(),
        1 => " and 1 process it started outside its group".to_string(),
        n => format!(" and {n} processes it started outside its group"),
    };
    Some(match &cleared.end {
        LeftoverEnd::Stopped { marked } => {
            format!(
                "stopped {what}{}, left running by an earlier zap",
                outside(*marked)
            )
        }
        LeftoverEnd::Gone { marked: 0 } => return None,
        LeftoverEnd::Gone { marked } => format!(
            "stopped{} of {what}, left running by an earlier zap",
            outside(*marked).trim_start_matches(" and")
        ),
        LeftoverEnd::NotOurs => {
            format!("not stopping {what}: that process group now belongs to something else")
        }
        LeftoverEnd::HostRemoved => {
            format!("left running by an earlier zap: {what}; its host is no longer in hosts.toml")
        }
        LeftoverEnd::NotYet(why) => {
            format!("cannot stop {what} yet: {why}; its host's jobs wait until it can")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(Duration::from_millis(3)), "3ms");
        assert_eq!(duration(Duration::from_millis(1250)), "1.25s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
    }
}
