//! Prefixed output lines for `zap run` (and `zap up` without a terminal):
//! `HOST SYSTEM.JOB[STEP] | text`, with `!` instead of `|` for stderr and `~`
//! for zap's own lines about the job.

use std::collections::BTreeMap;
use std::io::Write;

use crate::model::{InstanceId, Stream};
use crate::supervisor::run::Observer;
use crate::supervisor::{Event, Outcome, State};
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
    /// Over-long lines being printed in pieces: bytes so far and pieces.
    split: BTreeMap<(InstanceId, StreamKey), (usize, usize)>,
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
        Printer {
            out,
            colour,
            host_width,
            job_width,
            colours,
            split: BTreeMap::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
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
        step: Option<String>,
        text: &str,
        cut: &LineCut,
    ) {
        let key = (id.clone(), StreamKey::from(stream));
        let continues = self.split.contains_key(&key);
        let mark = match (stream, continues) {
            (Stream::Stdout, false) => self.paint(DIM, "|"),
            (Stream::Stderr, false) => self.paint(RED, "!"),
            // A later piece of a line too long to keep whole.
            (_, true) => self.paint(DIM, "+"),
        };
        let line = format!("{} {mark} {text}", self.prefix(id, step.clone()));
        self.write(&line);
        match cut {
            LineCut::Split => {
                let entry = self.split.entry(key).or_insert((0, 0));
                entry.0 += text.len();
                entry.1 += 1;
            }
            LineCut::Whole | LineCut::NoNewline => {
                if let Some((bytes, pieces)) = self.split.remove(&key) {
                    let note = format!(
                        "that line was {} bytes long: shown in {} pieces marked +",
                        bytes + text.len(),
                        pieces + 1
                    );
                    self.zap_line(id, step, &note);
                }
            }
        }
    }
}

fn step_label(step: Option<crate::model::StepIndex>) -> Option<String> {
    step.map(|step| step.to_string())
}

impl<W: Write> Observer for Printer<W> {
    fn event(&mut self, state: &State, id: &InstanceId, event: &Event) {
        let Some(instance) = state.instance(id) else {
            return;
        };
        let steps = instance.steps.len();
        match event {
            Event::Launched => {}
            Event::Job(JobEvent::Spawned { pid, pgid }) => {
                self.zap_line(
                    id,
                    None,
                    &format!("started: pid {pid}, process group {pgid}"),
                );
            }
            Event::Job(JobEvent::StepStarted { step }) => {
                let command = instance
                    .steps
                    .get(step.0 as usize - 1)
                    .map(|step| step.command.as_str())
                    .unwrap_or("");
                let first_line = command.lines().next().unwrap_or("");
                self.zap_line(
                    id,
                    Some(step.to_string()),
                    &format!("step {step}/{steps}: {first_line}"),
                );
            }
            Event::Job(JobEvent::StepExited { step, code }) => {
                let took = instance
                    .steps
                    .get(step.0 as usize - 1)
                    .and_then(|step| step.duration())
                    .map(|took| format!(" in {}", crate::summary::format_duration(took)))
                    .unwrap_or_default();
                let text = if *code == 0 {
                    format!("step {step} ok{took}")
                } else {
                    format!("step {step} failed: exit {code}{took}")
                };
                self.zap_line(id, Some(step.to_string()), &text);
            }
            Event::Job(JobEvent::Line {
                stream,
                step,
                text,
                cut,
            }) => self.output_line(id, *stream, step_label(*step), text, cut),
            Event::Job(JobEvent::Ended { .. }) | Event::Unreachable(_) | Event::LaunchFailed(_) => {
                if let Some(text) = crate::summary::outcome_text(instance) {
                    self.zap_line(id, None, &text);
                }
            }
            Event::StopRequested { reason, .. } => match &instance.phase {
                crate::supervisor::Phase::Done(Outcome::Stopped(_) | Outcome::Failed { .. }) => {
                    self.zap_line(id, None, &format!("{reason} before it started"));
                }
                _ => self.zap_line(id, None, &format!("{reason}: stopping")),
            },
        }
    }

    fn idle(&mut self) {
        let _ = self.out.flush();
    }
}
