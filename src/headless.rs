//! Prefixed output lines for `zap run` (and `zap up` without a terminal):
//! `HOST SYSTEM.JOB[STEP] | text`, with `!` instead of `|` for stderr and `~`
//! for zap's own lines about the job.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use crate::model::{InstanceId, StepIndex, Stream};
use crate::supervisor::engine::Observer;
use crate::supervisor::{Event, Instance, Mode, Phase, State};
use crate::transport::decode::{JobEvent, LineCut};

/// Colours given to instances in turn when writing to a terminal.
const PALETTE: [&str; 6] = ["36", "32", "33", "35", "34", "96"];
const RED: &str = "31";
const DIM: &str = "2";

pub struct Printer<W: Write> {
    out: W,
    colour: bool,
    host_width: usize,
    job_width: usize,
    colours: BTreeMap<InstanceId, &'static str>,
    /// Each instance's painted `HOST JOB[STEP]` and the step it names:
    /// output lines come by the thousand, their prefix changes once a step.
    prefixes: HashMap<InstanceId, (Option<StepIndex>, String)>,
    /// The painted marks of output lines: stdout, stderr, a later piece.
    marks: [String; 3],
    /// Over-long lines being printed in pieces: bytes so far and pieces.
    split: BTreeMap<(InstanceId, StreamKey), (usize, usize)>,
    /// The state last printed for each instance, so each change prints once.
    last_state: BTreeMap<InstanceId, String>,
}

/// `Stream` as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum StreamKey {
    Stdout,
    Stderr,
}

impl From<Stream> for StreamKey {
    fn from(stream: Stream) -> Self {
        match stream {
            Stream::Stdout => StreamKey::Stdout,
            Stream::Stderr => StreamKey::Stderr,
        }
    }
}

impl<W: Write> Printer<W> {
    /// `instances` sets the column widths and colours, so lines align.
    pub fn new(out: W, colour: bool, instances: &[InstanceId]) -> Self {
        let host_width = instances
            .iter()
            .map(|id| id.host.0.len())
            .max()
            .unwrap_or(0);
        let job_width = instances
            .iter()
            .map(|id| id.job.to_string().len())
            .max()
            .unwrap_or(0);
        let colours = instances
            .iter()
            .enumerate()
            .map(|(position, id)| (id.clone(), PALETTE[position % PALETTE.len()]))
            .collect();
        let marks =
            [(DIM, "|"), (RED, "!"), (DIM, "+")].map(|(code, mark)| paint(colour, code, mark));
        Printer {
            out,
            colour,
            host_width,
            job_width,
            colours,
            prefixes: HashMap::new(),
            marks,
            split: BTreeMap::new(),
            last_state: BTreeMap::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn paint(&self, code: &str, text: &str) -> String {
        paint(self.colour, code, text)
    }

    fn prefix(&self, id: &InstanceId, step: Option<String>) -> String {
        let job = match step {
            Some(step) => format!("{}[{step}]", id.job),
            None => id.job.to_string(),
        };
        let text = format!(
            "{:<host$} {:<job$}",
            id.host.0,
            job,
            host = self.host_width,
            job = self.job_width + 4
        );
        let colour = self.colours.get(id).copied().unwrap_or(PALETTE[0]);
        self.paint(colour, &text)
    }

    fn write(&mut self, line: &str) {
        // A closed stdout (`zap run | head`) must not stop the run.
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.write_all(b"\n");
    }

    fn zap_line(&mut self, id: &InstanceId, step: Option<String>, text: &str) {
        let line = format!(
            "{} {}",
            self.prefix(id, step),
            self.paint(DIM, &format!("~ {text}"))
        );
        self.write(&line);
    }

    fn output_line(
        &mut self,
        id: &InstanceId,
        stream: Stream,
        step: Option<StepIndex>,
        text: &str,
        cut: LineCut,
    ) {
        let key = || (id.clone(), StreamKey::from(stream));
        // Over-long lines are rare: no key to build for the common line.
        let continues = !self.split.is_empty() && self.split.contains_key(&key());
        let mark = match (stream, continues) {
            (Stream::Stdout, false) => &self.marks[0],
            (Stream::Stderr, false) => &self.marks[1],
            // A later piece of a line too long to keep whole.
            (_, true) => &self.marks[2],
        };
        if self
            .prefixes
            .get(id)
            .is_none_or(|(made_for, _)| *made_for != step)
        {
            let prefix = self.prefix(id, step_label(step));
            self.prefixes.insert(id.clone(), (step, prefix));
        }
        let prefix = self.prefixes.get(id).map_or("", |(_, prefix)| prefix);
        // Piece by piece into the buffered output: no line assembled first.
        // A closed stdout (`zap run | head`) must not stop the run.
        for piece in [prefix, " ", mark, " ", text, "\n"] {
            let _ = self.out.write_all(piece.as_bytes());
        }
        match cut {
            LineCut::Split => {
                let entry = self.split.entry(key()).or_insert((0, 0));
                entry.0 += text.len();
                entry.1 += 1;
            }
            LineCut::Whole | LineCut::NoNewline => {
                if self.split.is_empty() {
                    return;
                }
                if let Some((bytes, pieces)) = self.split.remove(&key()) {
                    let note = format!(
                        "that line was {} bytes long: shown in {} pieces marked +",
                        bytes + text.len(),
                        pieces + 1
                    );
                    self.zap_line(id, step_label(step), &note);
                }
            }
        }
    }
}

fn paint(colour: bool, code: &str, text: &str) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn step_label(step: Option<StepIndex>) -> Option<String> {
    step.map(|step| step.to_string())
}

impl<W: Write> Observer for Printer<W> {
    fn event(&mut self, state: &State, id: &InstanceId, event: &Event) {
        let Some(instance) = state.instance(id) else {
            return;
        };
        if let Event::Job(JobEvent::Line {
            stream,
            step,
            text,
            cut,
        }) = event
        {
            self.output_line(id, *stream, *step, text, *cut);
        } else if let Some((step, text)) = event_note(instance, event) {
            for line in text.lines() {
                self.zap_line(id, step_label(step), line);
            }
        }
        if may_change_label(instance, event) {
            self.state_change(state.mode(), instance);
        }
    }

    fn overview(&mut self, state: &State) {
        for instance in state.instances() {
            self.state_change(state.mode(), instance);
        }
    }

    fn note(&mut self, text: &str) {
        let line = self.paint(DIM, &format!("zap: {text}"));
        self.write(&line);
    }

    fn idle(&mut self) {
        let _ = self.out.flush();
    }
}

impl<W: Write> Printer<W> {
    /// Prints a line when the instance's state, as a user would name it,
    /// changed: "ready", "restarting in 4s", "lost: …", "failed at step 2".
    fn state_change(&mut self, mode: Mode, instance: &Instance) {
        let label = state_label(mode, instance);
        let Some(label) = label else { return };
        if self.last_state.get(&instance.id) == Some(&label) {
            return;
        }
        self.last_state.insert(instance.id.clone(), label.clone());
        self.zap_line(&instance.id, None, &label);
    }
}

/// zap's own line about `event` (with the step it concerns), if it merits
/// one: starts, steps, stop and restart requests. Output lines and state
/// changes are shown by their own means.
pub fn event_note(instance: &Instance, event: &Event) -> Option<(Option<StepIndex>, String)> {
    let steps = instance.steps.len();
    Some(match event {
        Event::Job(JobEvent::Spawned { pid, pgid }) => {
            let again = if instance.restarts > 0 {
                format!(" (restart {})", instance.restarts)
            } else {
                String::new()
            };
            (
                None,
                format!("started: pid {pid}, process group {pgid}{again}"),
            )
        }
        Event::Job(JobEvent::StepStarted { step }) => {
            let command = instance
                .step(*step)
                .map_or("", |step| step.command.as_str());
            let first_line = command.lines().next().unwrap_or("");
            (Some(*step), format!("step {step}/{steps}: {first_line}"))
        }
        Event::Job(JobEvent::StepExited { step, code }) => {
            let took = instance
                .step(*step)
                .and_then(|step| step.duration())
                .map(|took| format!(" in {}", crate::summary::format_duration(took)))
                .unwrap_or_default();
            let text = if *code == 0 {
                format!("step {step} ok{took}")
            } else {
                format!("step {step} failed: exit {code}{took}")
            };
            (Some(*step), text)
        }
        Event::Stop { reason, .. } => (None, format!("stopping: {reason}")),
        Event::Restart { reason } => (None, format!("restarting: {reason}")),
        Event::HostBack => (None, "the host answers again".to_string()),
        Event::RemedyDone { exit, output } => {
            let record = instance.fixups.last()?;
            let verdict = if record.healed {
                "healed"
            } else {
                "did not heal it"
            };
            let mut text = format!("fixup {} ended ({exit}): {verdict}", record.rule);
            for line in output.lines() {
                text.push_str("\n  ");
                text.push_str(line);
            }
            (None, text)
        }
        _ => return None,
    })
}

/// Whether `event` may have changed what [`state_label`] says: not an output
/// line, unless it can make its job ready. Output lines are most events, and
/// naming the state for each would cost more than printing the line.
pub fn may_change_label(instance: &Instance, event: &Event) -> bool {
    !matches!(event, Event::Job(JobEvent::Line { .. })) || instance.ready_by_log()
}

/// A job's state in words, for the lines printed when it changes; `None`
/// for the states whose own lines already say it (starting, running).
pub fn state_label(mode: Mode, instance: &Instance) -> Option<String> {
    match &instance.phase {
        Phase::Waiting(_) => instance.reason.clone(),
        Phase::Running if instance.ready && mode == Mode::Up => Some("ready".to_string()),
        Phase::Backoff { until } => {
            let wait = until.saturating_duration_since(std::time::Instant::now());
            Some(format!(
                "{}restarting in {}",
                crate::status::last_run_words(instance),
                crate::summary::format_duration(wait)
            ))
        }
        Phase::Lost => Some(format!(
            "lost: {}; restarting when the host is back",
            instance
                .reason
                .as_deref()
                .unwrap_or("the connection dropped")
        )),
        Phase::Fixing { rule, command } => Some(format!("fixing with {rule}: {command}")),
        Phase::Done(_) => crate::summary::outcome_text(instance),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, SourceFile};
    use crate::model::{HostName, JobName};

    fn line(step: u32, stream: Stream, text: &str, cut: LineCut) -> Event {
        Event::Job(JobEvent::Line {
            stream,
            step: Some(StepIndex(step)),
            text: text.to_owned(),
            cut,
        })
    }

    #[test]
    fn output_lines_name_their_step_and_long_lines_are_summed_up() {
        let sources = [SourceFile::new(
            "jobs/web.toml",
            "[jobs.api]\nhost = \"local\"\nsteps = [\"x\", \"y\"]\n",
        )];
        let plan = config::load_sources(std::path::Path::new("/nowhere"), &sources).expect("valid");
        let id = InstanceId {
            job: JobName {
                system: "web".into(),
                job: "api".into(),
            },
            host: HostName("local".into()),
        };
        let state = State::new(&plan, std::slice::from_ref(&id), Mode::Run);
        let mut printer = Printer::new(Vec::new(), false, std::slice::from_ref(&id));
        for event in [
            line(1, Stream::Stdout, "one", LineCut::Whole),
            line(1, Stream::Stderr, "oops", LineCut::Whole),
            line(2, Stream::Stdout, "two", LineCut::Whole),
            line(2, Stream::Stdout, "abc", LineCut::Split),
            line(2, Stream::Stdout, "de", LineCut::Whole),
            line(2, Stream::Stdout, "three", LineCut::NoNewline),
        ] {
            printer.event(&state, &id, &event);
        }
        let printed = String::from_utf8(printer.into_inner()).expect("UTF-8");
        assert_eq!(
            printed,
            "local web.api[1]  | one\n\
             local web.api[1]  ! oops\n\
             local web.api[2]  | two\n\
             local web.api[2]  | abc\n\
             local web.api[2]  + de\n\
             local web.api[2]  ~ that line was 5 bytes long: shown in 2 pieces marked +\n\
             local web.api[2]  | three\n"
        );
    }
}
