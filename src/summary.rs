//! The per-step summary `zap run` prints at the end: for each job instance,
//! how it ended and, for each step, its result and how long it took.

use std::fmt::Write;

use crate::supervisor::{Outcome, Phase, State, StepStatus};
use crate::words::{duration as format_duration, outcome_of};

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
        .filter(|instance| *instance.phase() == Phase::Done(Outcome::Ok))
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
        let outcome = outcome_of(instance).unwrap_or_else(|| "not finished".to_string());
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
