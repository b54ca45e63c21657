//! How `zap status` and `zap logs` print: an aligned table, and prefixed lines
//! like the headless output. Pure functions of the replies, so tests compare
//! strings.

use std::collections::{BTreeMap, BTreeSet};

use super::protocol::{InstanceStatus, LastExit, LogEntry, Origin};
use crate::words::{bytes as bytes_text, uptime as duration_text};

const GREEN: &str = "32";
const YELLOW: &str = "33";
const RED: &str = "31";
const DIM: &str = "2";
const BOLD: &str = "1";
/// Colours given to instances in turn, as the headless output does.
const PALETTE: [&str; 6] = ["36", "32", "33", "35", "34", "96"];

fn paint(colour: bool, code: &str, text: &str) -> String {
    if colour && !text.is_empty() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

const COLUMNS: [(&str, Align); 11] = [
    ("HOST", Align::Left),
    ("JOB", Align::Left),
    ("STATE", Align::Left),
    ("STEP", Align::Right),
    ("LAST EXIT", Align::Left),
    ("PID", Align::Right),
    ("RESTARTS", Align::Right),
    ("UPTIME", Align::Right),
    ("CPU", Align::Right),
    ("RSS", Align::Right),
    ("REASON", Align::Left),
];

/// The `zap status` table: one row per instance, columns two spaces apart,
/// the state coloured when `colour`.
pub fn status_table(instances: &[InstanceStatus], colour: bool) -> String {
    if instances.is_empty() {
        return "no job instances\n".to_string();
    }
    let rows: Vec<[String; 11]> = instances.iter().map(row).collect();
    let mut widths = COLUMNS.map(|(title, _)| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = COLUMNS.map(|(title, _)| title.to_string());
    push_row(&mut out, &header, &widths, |_, text| {
        paint(colour, BOLD, text)
    });
    for (row, instance) in rows.iter().zip(instances) {
        push_row(&mut out, row, &widths, |column, text| match column {
            2 => paint(colour, state_colour(&instance.state), text),
            10 => paint(colour, DIM, text),
            _ => text.to_string(),
        });
    }
    out
}

/// Pads each cell to its column (the last one is not padded), then paints it:
/// padding first keeps colour codes out of the widths.
fn push_row(
    out: &mut String,
    cells: &[String; 11],
    widths: &[usize; 11],
    paint: impl Fn(usize, &str) -> String,
) {
    let mut line = String::new();
    for (column, cell) in cells.iter().enumerate() {
        let last = column + 1 == cells.len();
        let pad = widths[column].saturating_sub(cell.chars().count());
        let (before, after) = match (COLUMNS[column].1, last) {
            (_, true) => (0, 0),
            (Align::Left, false) => (0, pad),
            (Align::Right, false) => (pad, 0),
        };
        if column > 0 {
            line.push_str("  ");
        }
        line.push_str(&" ".repeat(before));
        line.push_str(&paint(column, cell));
        line.push_str(&" ".repeat(after));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn row(instance: &InstanceStatus) -> [String; 11] {
    let dash = || "-".to_string();
    [
        instance.host.clone(),
        format!("{}.{}", instance.system, instance.job),
        instance.state.clone(),
        instance.step.map_or_else(dash, |step| step.to_string()),
        instance.last_exit.as_ref().map_or_else(dash, exit_text),
        instance.pid.map_or_else(dash, |pid| pid.to_string()),
        instance.restarts.to_string(),
        instance.uptime_s.map_or_else(dash, duration_text),
        instance
            .cpu_percent
            .map_or_else(dash, |cpu| format!("{cpu:.1}%")),
        instance.rss_bytes.map_or_else(dash, bytes_text),
        instance.reason.clone().unwrap_or_default(),
    ]
}

fn state_colour(state: &str) -> &'static str {
    match state {
        "running" | "ready" => GREEN,
        "failed" | "lost" | "unreachable" => RED,
        "starting" | "waiting" | "fixing" | "backoff" => YELLOW,
        _ => DIM,
    }
}

/// `0`, `2`, `SIGTERM`, `?`.
pub fn exit_text(exit: &LastExit) -> String {
    match exit {
        LastExit::Code(code) => code.to_string(),
        LastExit::Signal(name) => format!("SIG{name}"),
        LastExit::Unknown => "?".to_string(),
    }
}

/// Prints log entries as `HOST SYSTEM.JOB[STEP] | text`, with `!` for stderr
/// and `~` for zap's own lines. Columns widen as longer names arrive (a
/// followed log cannot know them all in advance).
#[derive(Debug, Default)]
pub struct LogPrinter {
    colour: bool,
    host_width: usize,
    job_width: usize,
    colours: BTreeMap<(String, String, String), &'static str>,
    /// Instance and origin whose last line was a piece of a longer one.
    continuing: BTreeSet<(String, String, String, Origin)>,
}

impl LogPrinter {
    pub fn new(colour: bool) -> Self {
        LogPrinter {
            colour,
            ..LogPrinter::default()
        }
    }

    /// Sets the column widths from lines about to be printed.
    pub fn fit(&mut self, entries: &[LogEntry]) {
        for entry in entries {
            self.host_width = self.host_width.max(entry.host.chars().count());
            self.job_width = self.job_width.max(job_label(entry).chars().count());
        }
    }

    /// One printed line, without the newline.
    pub fn line(&mut self, entry: &LogEntry) -> String {
        self.fit(std::slice::from_ref(entry));
        let key = (entry.host.clone(), entry.system.clone(), entry.job.clone());
        let next = PALETTE[self.colours.len() % PALETTE.len()];
        let colour = *self.colours.entry(key.clone()).or_insert(next);
        let piece = (key.0, key.1, key.2, entry.line.origin);
        let continues = if entry.line.split {
            !self.continuing.insert(piece)
        } else {
            self.continuing.remove(&piece)
        };
        let prefix = format!(
            "{:<host$} {:<job$}",
            entry.host,
            job_label(entry),
            host = self.host_width,
            job = self.job_width
        );
        let text = &crate::harmless::harmless(&entry.line.text, self.colour);
        let rest = match entry.line.origin {
            _ if continues => format!("{} {text}", paint(self.colour, DIM, "+")),
            Origin::Out => format!("{} {text}", paint(self.colour, DIM, "|")),
            Origin::Err => format!("{} {text}", paint(self.colour, RED, "!")),
            Origin::Zap => paint(self.colour, DIM, &format!("~ {text}")),
        };
        format!("{} {rest}", paint(self.colour, colour, &prefix))
    }
}

fn job_label(entry: &LogEntry) -> String {
    match entry.line.step {
        Some(step) => format!("{}.{}[{step}]", entry.system, entry.job),
        None => format!("{}.{}", entry.system, entry.job),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::LogLineWire;

    fn instance(host: &str, state: &str) -> InstanceStatus {
        InstanceStatus {
            system: "web".into(),
            job: "build".into(),
            host: host.into(),
            state: state.into(),
            step: None,
            step_command: None,
            last_exit: None,
            pid: None,
            restarts: 0,
            uptime_s: None,
            reason: None,
            cpu_percent: None,
            rss_bytes: None,
            procs: None,
            stats_age_s: None,
            stats_unavailable: None,
            fixups: Vec::new(),
        }
    }

    #[test]
    fn the_table_aligns_and_dashes_what_is_unknown() {
        let mut running = instance("n1", "running");
        running.step = Some(2);
        running.pid = Some(4242);
        running.uptime_s = Some(192.4);
        running.cpu_percent = Some(12.34);
        running.rss_bytes = Some(10 * 1024 * 1024);
        running.last_exit = Some(LastExit::Code(1));
        running.restarts = 1;
        let mut failed = instance("node-long", "failed");
        failed.last_exit = Some(LastExit::Signal("TERM".into()));
        failed.reason = Some("failed at step 2 (exit 1)".into());
        let table = status_table(&[running, failed], false);
        assert_eq!(
            table,
            "\
HOST       JOB        STATE    STEP  LAST EXIT   PID  RESTARTS  UPTIME    CPU  RSS  REASON
n1         web.build  running     2  1          4242         1   3m12s  12.3%  10M
node-long  web.build  failed      -  SIGTERM       -         0       -      -    -  failed at step 2 (exit 1)
"
        );
    }

    #[test]
    fn colours_wrap_padded_cells_only_when_asked() {
        let table = status_table(&[instance("n1", "failed")], true);
        assert!(table.contains("\x1b[31mfailed\x1b[0m"), "{table:?}");
        assert!(!status_table(&[instance("n1", "failed")], false).contains('\x1b'));
        assert_eq!(status_table(&[], false), "no job instances\n");
    }

    #[test]
    fn durations_and_sizes_read_at_a_glance() {
        assert_eq!(duration_text(0.4), "0s");
        assert_eq!(duration_text(59.9), "59s");
        assert_eq!(duration_text(192.0), "3m12s");
        assert_eq!(duration_text(7_500.0), "2h05m");
        assert_eq!(duration_text(273_600.0), "3d04h");
        assert_eq!(duration_text(f64::NAN), "0s");
        assert_eq!(bytes_text(512), "512B");
        assert_eq!(bytes_text(10_035), "9.8K");
        assert_eq!(bytes_text(120 * 1024 * 1024), "120M");
        assert_eq!(bytes_text(1_288_490_189), "1.2G");
    }

    fn entry(host: &str, origin: Origin, step: Option<u32>, text: &str) -> LogEntry {
        LogEntry {
            host: host.into(),
            system: "web".into(),
            job: "build".into(),
            line: LogLineWire {
                seq: 1,
                at_ms: 0,
                origin,
                step,
                text: text.into(),
                split: false,
            },
        }
    }

    #[test]
    fn the_later_pieces_of_a_split_line_are_marked_plus() {
        let mut first = entry("n1", Origin::Out, Some(1), "aaaa");
        first.line.split = true;
        let mut second = entry("n1", Origin::Out, Some(1), "bbbb");
        second.line.split = true;
        let last = entry("n1", Origin::Out, Some(1), "cc");
        let after = entry("n1", Origin::Out, Some(1), "next");
        let mut printer = LogPrinter::new(false);
        let lines: Vec<String> = [first, second, last, after]
            .iter()
            .map(|e| printer.line(e))
            .collect();
        assert_eq!(
            lines,
            [
                "n1 web.build[1] | aaaa",
                "n1 web.build[1] + bbbb",
                "n1 web.build[1] + cc",
                "n1 web.build[1] | next",
            ]
        );
    }

    #[test]
    fn log_lines_look_like_the_headless_output() {
        let entries = [
            entry("n1", Origin::Out, Some(1), "compiling"),
            entry("node2", Origin::Err, Some(2), "warning: x"),
            entry("n1", Origin::Zap, None, "restarting in 4s"),
        ];
        let mut printer = LogPrinter::new(false);
        printer.fit(&entries);
        let lines: Vec<String> = entries.iter().map(|e| printer.line(e)).collect();
        assert_eq!(
            lines,
            [
                "n1    web.build[1] | compiling",
                "node2 web.build[2] ! warning: x",
                "n1    web.build    ~ restarting in 4s",
            ]
        );
        let mut painted = LogPrinter::new(true);
        let line = painted.line(&entries[1]);
        assert!(line.contains("\x1b[31m!\x1b[0m"), "{line:?}");
    }
}
