//! Drawing: a pure function of a [`Snapshot`], the [`ViewModel`] and the
//! lines in view (`impl Widget for &Frame`). It borrows all three and
//! changes none; it reads no clock, so the same inputs draw the same cells.
//!
//! - `fleet`: the tree of systems, jobs, instances and steps;
//! - `job`: one instance's output;
//! - `host`: one host's figures and its jobs' processes;
//! - `help` and the dialogs (here), drawn over the screen;
//! - `style`: glyphs and colours.

mod fleet;
mod help;
mod host;
mod job;
pub mod style;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::keys::Command;
use super::news::Failure;
use super::output::OutputWindow;
use super::snapshot::{Counts, Snapshot, StateKind};
use super::view::{Confirm, Overlay, SIGNALS, Screen, ViewModel};

pub use fleet::{Columns, columns_for};

/// Everything one frame shows.
pub struct Frame<'a> {
    pub snapshot: &'a Snapshot,
    pub view: &'a ViewModel,
    /// The open job's lines in view (empty on other screens).
    pub output: &'a OutputWindow,
    /// A `pty = true` job followed live: its terminal's screen, drawn
    /// instead of the lines.
    pub terminal: Option<&'a vt100::Screen>,
    /// Jobs that failed lately, newest first, for the strip.
    pub failures: &'a [Failure],
    /// A word for the footer in place of the key hints.
    pub status: Option<&'a str>,
}

impl Widget for &Frame<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 || area.width == 0 {
            return;
        }
        match &self.view.screen {
            Screen::Fleet => fleet::render(self, area, buf),
            Screen::Job(id) => job::render(self, id, area, buf),
            Screen::Host(host) => host::render(self, host, area, buf),
        }
        match &self.view.overlay {
            Some(Overlay::Help { scroll }) => help::render(self.view, *scroll, area, buf),
            Some(Overlay::Confirm(confirm)) => confirm_dialog(*confirm, area, buf),
            Some(Overlay::Signal { targets, selected }) => {
                let title = match targets.as_slice() {
                    [one] => format!(" send a signal to {one} "),
                    many => format!(" send a signal to {} jobs ", many.len()),
                };
                signal_menu(&title, *selected, area, buf);
            }
            Some(Overlay::SearchInput(text)) => {
                let y = area.bottom() - 1;
                let line = Line::from(vec![
                    Span::styled("/", style::key()),
                    Span::raw(text.clone()),
                    Span::styled("█", style::dim()),
                    Span::styled("   Enter search · Esc cancel", style::dim()),
                ]);
                clear_row(buf, area, y);
                buf.set_line(area.x, y, &line, area.width);
            }
            None => {}
        }
    }
}

fn clear_row(buf: &mut Buffer, area: Rect, y: u16) {
    buf.set_style(Rect::new(area.x, y, area.width, 1), Style::reset());
    for x in area.left()..area.right() {
        if let Some(cell) = buf.cell_mut((x, y)) {
            cell.reset();
        }
    }
}

/// "1 job", "5 jobs".
pub fn jobs(n: usize) -> String {
    format!("{n} {}", if n == 1 { "job" } else { "jobs" })
}

/// "5 jobs: 3 running, 1 failed, 1 host down", zero counts left out but
/// for running and failed.
pub fn counts_line(counts: &Counts, shutting_down: bool) -> Vec<Span<'static>> {
    let mut spans = vec![Span::styled(
        format!("{}: ", jobs(counts.instances)),
        style::bold(),
    )];
    let part = |spans: &mut Vec<Span<'static>>, n: usize, word: &str, kind: StateKind| {
        if spans.len() > 1 {
            spans.push(Span::raw(", "));
        }
        let style = if n == 0 {
            style::dim()
        } else {
            style::state(kind)
        };
        spans.push(Span::styled(format!("{n} {word}"), style));
    };
    part(&mut spans, counts.running, "running", StateKind::Running);
    part(&mut spans, counts.failed, "failed", StateKind::Failed);
    if counts.fixing > 0 {
        part(&mut spans, counts.fixing, "fixing", StateKind::Fixing);
    }
    if counts.backoff > 0 {
        part(&mut spans, counts.backoff, "restarting", StateKind::Backoff);
    }
    if counts.waiting > 0 {
        part(&mut spans, counts.waiting, "waiting", StateKind::Waiting);
    }
    if counts.hosts_down > 0 {
        let word = if counts.hosts_down == 1 {
            "host down"
        } else {
            "hosts down"
        };
        part(&mut spans, counts.hosts_down, word, StateKind::Lost);
    }
    if shutting_down {
        spans.push(Span::styled(
            " · stopping every job…",
            style::state(StateKind::Stopping),
        ));
    }
    spans
}

/// Said after the counts while job output cannot be written to disk.
pub fn log_trouble_span(snapshot: &Snapshot) -> Option<Span<'static>> {
    let trouble = snapshot.log_trouble.as_deref()?;
    Some(Span::styled(
        format!(" · logs not written to disk: {trouble}"),
        style::state(StateKind::Failed),
    ))
}

/// The last line: a status word, or the main keys of this screen.
fn footer(frame: &Frame, commands: &[(Command, &str)], area: Rect, buf: &mut Buffer) {
    let y = area.bottom() - 1;
    clear_row(buf, area, y);
    if let Some(status) = frame.status {
        let line = Line::from(Span::styled(status.to_string(), style::bold()));
        buf.set_line(area.x, y, &line, area.width);
        return;
    }
    let keymap = &frame.view.keymap;
    let mut spans = Vec::new();
    let mut used = 0;
    for (command, word) in commands {
        let Some(first) = keymap.keys(*command).first() else {
            continue;
        };
        let key = first.to_string();
        let gap = if spans.is_empty() { "" } else { "  " };
        let width = gap.chars().count() + key.chars().count() + 1 + word.chars().count();
        // Whole hints only: the ones that do not fit are left out.
        if used + width > usize::from(area.width) {
            break;
        }
        used += width;
        spans.push(Span::raw(gap));
        spans.push(Span::styled(key, style::key()));
        spans.push(Span::raw(format!(" {word}")));
    }
    buf.set_line(area.x, y, &Line::from(spans), area.width);
}

/// A box in the middle of `area`, cleared, with `lines` in it.
fn dialog(lines: &[Line<'static>], area: Rect, buf: &mut Buffer) {
    let inner_width = lines.iter().map(Line::width).max().unwrap_or(0) + 4;
    let width = u16::try_from(inner_width)
        .unwrap_or(u16::MAX)
        .min(area.width);
    let height = u16::try_from(lines.len() + 2)
        .unwrap_or(u16::MAX)
        .min(area.height);
    let x = area.x + (area.width - width) / 2;
    let y = area.y + (area.height - height) / 2;
    let rect = Rect::new(x, y, width, height);
    for row in rect.top()..rect.bottom() {
        for column in rect.left()..rect.right() {
            if let Some(cell) = buf.cell_mut((column, row)) {
                cell.reset();
                cell.set_style(style::dialog());
            }
        }
    }
    for (offset, line) in lines.iter().enumerate() {
        let row = y + 1 + u16::try_from(offset).unwrap_or(u16::MAX);
        if row >= rect.bottom() {
            break;
        }
        buf.set_line(x + 2, row, line, width.saturating_sub(4));
    }
}

fn confirm_dialog(confirm: Confirm, area: Rect, buf: &mut Buffer) {
    let question = match confirm {
        Confirm::Quit { jobs: 0 } => "nothing runs: quit?".to_string(),
        Confirm::Quit { jobs: 1 } => "stop 1 job and quit?".to_string(),
        Confirm::Quit { jobs } => format!("stop {jobs} jobs and quit?"),
        Confirm::KillAll { jobs } => format!("still stopping: kill {jobs} now (SIGKILL)?"),
    };
    let lines = [
        Line::from(Span::styled(
            question,
            style::dialog().add_modifier(ratatui::style::Modifier::BOLD),
        )),
        Line::from(""),
        Line::from(Span::styled(
            "y / Enter: yes    n / Esc: no",
            style::dialog(),
        )),
    ];
    dialog(&lines, area, buf);
}

fn signal_menu(title: &str, selected: usize, area: Rect, buf: &mut Buffer) {
    let mut lines = vec![
        Line::from(Span::styled(
            title.trim().to_string(),
            style::dialog().add_modifier(ratatui::style::Modifier::BOLD),
        )),
        Line::from(""),
    ];
    for (position, signal) in SIGNALS.iter().enumerate() {
        let text = format!(" {} SIG{:<5}", position + 1, signal.name());
        let style = if position == selected {
            style::dialog().add_modifier(ratatui::style::Modifier::REVERSED)
        } else {
            style::dialog()
        };
        lines.push(Line::from(Span::styled(text, style)));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "1-4 or ↑↓ Enter: send    Esc: cancel",
        style::dialog(),
    )));
    dialog(&lines, area, buf);
}

/// A line at the top of the job and host views: the fleet's counts and the
/// jobs that failed lately, so nothing happens unseen while reading output.
fn strip(frame: &Frame, area: Rect, buf: &mut Buffer) {
    let mut spans = vec![Span::styled("fleet ", style::dim())];
    spans.extend(counts_line(
        &frame.snapshot.counts,
        frame.snapshot.shutting_down,
    ));
    spans.extend(log_trouble_span(frame.snapshot));
    for failure in frame.failures.iter().take(3) {
        spans.push(Span::styled(" · ", style::dim()));
        spans.push(Span::styled(
            format!(
                "{} {} {}",
                style::glyph(StateKind::Failed),
                failure.id,
                failure.what
            ),
            style::state(StateKind::Failed),
        ));
    }
    clear_row(buf, area, area.y);
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
}

/// Pads or cuts `text` to `width` columns.
pub fn fit(text: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let mut out = String::new();
    let mut used = 0;
    let total: usize = text.chars().map(|c| c.width().unwrap_or(0)).sum();
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        // Leave room for "…" when it does not fit.
        if total > width && used + w + 1 > width {
            if width > 0 {
                out.push('…');
                used += 1;
            }
            break;
        }
        out.push(c);
        used += w;
    }
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    out
}
