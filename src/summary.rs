//! The per-step summary `zap run` prints at the end: for each job instance,
//! how it ended and, for each step, its result and how long it took.

use std::fmt::Write;
use std::time::Duration;

use crate::model::ExitInfo;
use crate::supervisor::{Instance, Outcome, Phase, State, StepStatus};

/// "3ms", "1.25s", "2m05s": short enough for a column.
pub fn format_duration(duration: Duration) -> String {
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

/// How an instance ended, in words; `None` while it has not.
pub fn outcome_text(instance: &Instance) -> Option<String> {
    let Phase::Done(outcome) = &instance.phase else {
        return None;
    };
    Some(match outcome {
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
    })
}

fn step_mark(status: &StepStatus) -> (&'static str, String) {
    match status {
        StepStatus::Ok => ("✓", "ok".to_string()),
        StepStatus::Failed(exit) => ("✗", exit.to_string()),
        StepStatus::Killed(signal) => ("✗", format!("killed by SIG{signal}")),
        StepStatus::Skipped => ("-", "skipped".to_string()),
        StepStatus::Running => ("…", "running".to_string()),
        StepStatus::Pending => (" ", "not run".to_string()),
    }
}

/// The whole summary, one block per instance, in selection order.
pub fn render(state: &State) -> String {
    let mut text = String::new();
    let instances = state.instances();
    let name_width = instances
        .iter()
        .map(|instance| instance.id.to_string().len())
        .max()
        .unwrap_or(0);
    let command_width = instances
        .iter()
        .flat_map(|instance| instance.steps.iter())
        .map(|step| first_line(&step.command).chars().count())
        .max()
        .unwrap_or(0)
        .min(48);
    let ok = instances
        .iter()
        .filter(|instance| instance.phase == Phase::Done(Outcome::Ok))
        .count();
    let _ = writeln!(
        text,
        "\nsummary: {ok} of {} job instances ok",
        instances.len()
    );
    for instance in instances {
        let took = match (instance.launched, instance.ended) {
            (Some(launched), Some(ended)) => {
                format!(
                    "  {}",
                    format_duration(ended.saturating_duration_since(launched))
                )
            }
            _ => String::new(),
        };
        let outcome = outcome_text(instance).unwrap_or_else(|| "not finished".to_string());
        let _ = writeln!(
            text,
            "{:<name_width$}  {outcome}{took}",
            instance.id.to_string()
        );
        for (position, step) in instance.steps.iter().enumerate() {
            let (mark, result) = step_mark(&step.status);
            let duration = step.duration().map(format_duration).unwrap_or_default();
            let command: String = first_line(&step.command)
                .chars()
                .take(command_width)
                .collect();
            let _ = writeln!(
                text,
                "  {mark} {:>2} {command:<command_width$}  {result:<8} {duration}",
                position + 1
            );
        }
    }
    text
}

fn first_line(command: &str) -> &str {
    command.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(format_duration(Duration::from_millis(3)), "3ms");
        assert_eq!(format_duration(Duration::from_millis(1250)), "1.25s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
