//! Prefixed output lines for `zap run` (and `zap up` without a terminal):
//! `HOST SYSTEM.JOB[STEP] | text`, with `!` instead of `|` for stderr and `~`
//! for zap's own lines about the job.

pub mod outlet;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Instant;

use crate::model::{InstanceId, StepIndex, Stream};
use crate::supervisor::engine::Observer;
use crate::supervisor::{Change, State};
use crate::transport::decode::LineCut;
use crate::words::{self, Shown};

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
        // zap's words may quote the job's output (a matched line).
        let text = crate::harmless::harmless(text, false);
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
        let text = crate::harmless::harmless(text, self.colour);
        for piece in [prefix, " ", mark, " ", &text, "\n"] {
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
    fn changes(&mut self, state: &State, changes: &[Change<'_>]) {
        words::each_line(
            state,
            changes,
            Instant::now(),
            |instance, shown| match shown {
                Shown::Output {
                    stream,
                    step,
                    text,
                    cut,
                } => self.output_line(&instance.id, stream, step, text, cut),
                Shown::Said { step, text } => self.zap_line(&instance.id, step_label(step), text),
            },
        );
    }

    fn note(&mut self, text: &str) {
        let line = self.paint(DIM, &format!("zap: {text}"));
        self.write(&line);
    }

    fn idle(&mut self) {
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, SourceFile};
    use crate::model::{HostName, JobName};
    use crate::supervisor::{Event, Mode};
    use crate::transport::decode::JobEvent;

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
        let mut state = State::new(&plan, std::slice::from_ref(&id), Mode::Run);
        state.begin();
        let mut printer = Printer::new(Vec::new(), false, std::slice::from_ref(&id));
        for event in [
            line(1, Stream::Stdout, "one", LineCut::Whole),
            line(1, Stream::Stderr, "oops", LineCut::Whole),
            line(2, Stream::Stdout, "two", LineCut::Whole),
            line(2, Stream::Stdout, "abc", LineCut::Split),
            line(2, Stream::Stdout, "de", LineCut::Whole),
            line(2, Stream::Stdout, "three", LineCut::NoNewline),
        ] {
            let applied = state.apply(&id, 1, &event, Instant::now());
            printer.changes(&state, &applied.changes);
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
