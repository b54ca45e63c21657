//! The fleet view: a header with counts, the tree as a table, the keys.
//! A narrow terminal drops whole columns, least useful first, instead of
//! wrapping rows.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

use super::{Frame, clear_row, counts_line, fit, footer, log_trouble_span, style};
use crate::model::ExitInfo;
use crate::supervisor::StepStatus;
use crate::ui::keys::Command;
use crate::ui::snapshot::{InstanceView, Snapshot, StateKind};
use crate::ui::tree::{self, Row, RowKind};
use crate::words::{bytes as bytes_text, uptime as duration_text};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    State,
    Step,
    Exit,
    Restarts,
    Uptime,
    Cpu,
    Rss,
    Info,
}

impl Column {
    fn title(self) -> &'static str {
        match self {
            Column::State => "STATE",
            Column::Step => "STEP",
            Column::Exit => "EXIT",
            Column::Restarts => "RST",
            Column::Uptime => "UP",
            Column::Cpu => "CPU%",
            Column::Rss => "RSS",
            Column::Info => "INFO",
        }
    }

    fn width(self) -> usize {
        match self {
            Column::State => 11,
            Column::Step => 12,
            Column::Exit => 8,
            Column::Restarts => 3,
            Column::Uptime => 6,
            Column::Cpu => 5,
            Column::Rss => 5,
            Column::Info => 12,
        }
    }

    fn right_aligned(self) -> bool {
        matches!(
            self,
            Column::Restarts | Column::Uptime | Column::Cpu | Column::Rss
        )
    }
}

/// Columns are kept in this order as the width allows; the rest are dropped.
const BY_PRIORITY: [Column; 7] = [
    Column::State,
    Column::Step,
    Column::Exit,
    Column::Cpu,
    Column::Rss,
    Column::Restarts,
    Column::Uptime,
];

/// Left to right.
const ORDER: [Column; 8] = [
    Column::State,
    Column::Step,
    Column::Exit,
    Column::Restarts,
    Column::Uptime,
    Column::Cpu,
    Column::Rss,
    Column::Info,
];

const NAME_MIN: usize = 14;
const NAME_MAX: usize = 32;

/// The name column's width and the columns shown, with their widths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub name: usize,
    pub shown: Vec<(Column, usize)>,
}

/// The widest the step column grows when there is room.
const STEP_MAX: usize = 26;

/// Which columns fit `width`, for names `name_wanted` wide: each column at
/// its narrowest, most useful first; then the step column grows, and what
/// is left goes to INFO (or to the names).
pub fn columns_for(width: u16, name_wanted: usize) -> Columns {
    let width = usize::from(width);
    let mut name = name_wanted.clamp(NAME_MIN, NAME_MAX).min(width);
    let mut used = name;
    let mut chosen = Vec::new();
    for column in BY_PRIORITY {
        let needs = column.width() + 1;
        if used + needs <= width {
            chosen.push(column);
            used += needs;
        } else if column == Column::State && width > Column::State.width() + 1 + 6 {
            // The state is never dropped: the name gives way.
            name = width - Column::State.width() - 1;
            used = width;
            chosen.push(column);
        }
    }
    let mut spare = width - used;
    let mut shown: Vec<(Column, usize)> = ORDER
        .iter()
        .filter(|column| chosen.contains(column))
        .map(|&column| (column, column.width()))
        .collect();
    if let Some((_, step)) = shown.iter_mut().find(|(column, _)| *column == Column::Step) {
        let grow = spare.min(STEP_MAX - *step);
        *step += grow;
        spare -= grow;
    }
    if spare > Column::Info.width() {
        shown.push((Column::Info, spare - 1));
    } else {
        name += spare.min(name_wanted.saturating_sub(name));
    }
    Columns { name, shown }
}

pub fn render(frame: &Frame, area: Rect, buf: &mut Buffer) {
    let snapshot = frame.snapshot;
    let view = frame.view;
    // Header: the counts.
    let mut header = vec![Span::styled(" zap ", style::title()), Span::raw(" ")];
    header.extend(counts_line(&snapshot.counts, snapshot.shutting_down));
    header.extend(log_trouble_span(snapshot));
    clear_row(buf, area, area.y);
    buf.set_line(area.x, area.y, &Line::from(header), area.width);
    if area.height < 3 {
        return;
    }

    let rows = tree::rows(snapshot, &view.fleet.folds);
    let wanted = rows
        .iter()
        .map(|row| name_cell(row, snapshot, view).width())
        .max()
        .unwrap_or(0);
    let columns = columns_for(area.width, wanted);

    // Column titles.
    let y = area.y + 1;
    clear_row(buf, area, y);
    let mut titles = vec![Span::styled(fit("  NAME", columns.name), style::dim())];
    for (column, width) in &columns.shown {
        titles.push(Span::raw(" "));
        titles.push(Span::styled(
            align(column.title(), *width, column.right_aligned()),
            style::dim(),
        ));
    }
    buf.set_line(area.x, y, &Line::from(titles), area.width);

    // The rows in view.
    let body = Rect::new(
        area.x,
        area.y + 2,
        area.width,
        area.height.saturating_sub(3),
    );
    let height = usize::from(body.height);
    let offset =
        crate::ui::view::scroll_to(view.fleet.offset, view.fleet.index, rows.len(), body.height);
    for (line, row) in rows.iter().skip(offset).take(height).enumerate() {
        let y = body.y + u16::try_from(line).unwrap_or(u16::MAX);
        clear_row(buf, area, y);
        let spans = row_spans(row, snapshot, view, &columns);
        buf.set_line(area.x, y, &Line::from(spans), area.width);
        if view.fleet.selected.as_ref() == Some(&row.key) {
            buf.set_style(Rect::new(area.x, y, area.width, 1), style::selected());
        }
    }
    if offset > 0 {
        // Rows above: say how many, on the titles' right end.
        let more = format!(" ↑{offset} ");
        let width = u16::try_from(more.chars().count()).unwrap_or(0);
        if width < area.width {
            buf.set_stringn(
                area.right() - width,
                area.y + 1,
                &more,
                usize::from(width),
                style::title(),
            );
        }
    }
    if rows.len() > offset + height && height > 0 {
        // More below: say how many, on the last row's right end.
        let more = format!(" ↓{} ", rows.len() - offset - height);
        let width = u16::try_from(more.chars().count()).unwrap_or(0);
        if width < area.width {
            buf.set_stringn(
                area.right() - width,
                body.bottom() - 1,
                &more,
                usize::from(width),
                style::title(),
            );
        }
    }

    footer(
        frame,
        &[
            (Command::Down, "move"),
            (Command::Unfold, "unfold"),
            (Command::Open, "open"),
            (Command::Restart, "restart"),
            (Command::StopStart, "stop/start"),
            (Command::Signal, "signal"),
            (Command::Host, "host"),
            (Command::Search, "find"),
            (Command::Help, "help"),
            (Command::Quit, "quit"),
        ],
        area,
        buf,
    );
}

fn align(text: &str, width: usize, right: bool) -> String {
    if right {
        let text = fit(text, width);
        let trimmed = text.trim_end();
        format!("{trimmed:>width$}")
    } else {
        fit(text, width)
    }
}

/// The name cell: indent, fold mark, glyph, name, unseen marks.
fn name_cell(row: &Row, snapshot: &Snapshot, view: &crate::ui::view::ViewModel) -> Line<'static> {
    let mut spans = vec![Span::raw(" ".repeat(1 + row.depth * 2))];
    spans.push(Span::styled(
        match row.open {
            Some(true) => "▾ ",
            Some(false) => "▸ ",
            None => "  ",
        },
        style::dim(),
    ));
    match &row.kind {
        RowKind::System { name } => spans.push(Span::styled(name.clone(), style::bold())),
        RowKind::Job { name } => {
            let worst = row.worst(snapshot).unwrap_or(StateKind::Pending);
            spans.push(Span::styled(
                format!("{} ", style::glyph(worst)),
                style::state(worst),
            ));
            spans.push(Span::raw(name.job.clone()));
        }
        RowKind::Instance { index, label } => {
            if let Some(instance) = snapshot.instances.get(*index) {
                spans.push(Span::styled(
                    format!("{} ", style::glyph(instance.kind)),
                    style::state(instance.kind),
                ));
                spans.push(Span::raw(label.clone()));
                let (out, err) = view.unseen(&instance.id, instance.out_lines, instance.err_lines);
                if out || err {
                    spans.push(Span::raw(" "));
                }
                if out {
                    spans.push(Span::styled("•", style::unseen()));
                }
                if err {
                    spans.push(Span::styled("!", style::stderr()));
                }
            }
        }
        RowKind::Step { index, step } => {
            if let Some(view) = snapshot
                .instances
                .get(*index)
                .and_then(|i| i.step_view(*step))
            {
                let (mark, style) = step_mark(&view.status);
                spans.push(Span::styled(format!("{mark} "), style));
                spans.push(Span::styled(format!("{step} "), style::dim()));
                spans.push(Span::raw(view.command.clone()));
            }
        }
    }
    Line::from(spans)
}

fn step_mark(status: &StepStatus) -> (&'static str, Style) {
    match status {
        StepStatus::Ok => ("✓", Style::new().fg(Color::Green)),
        StepStatus::Failed(_) | StepStatus::Killed(_) => ("✗", style::state(StateKind::Failed)),
        StepStatus::Skipped => ("-", style::dim()),
        StepStatus::Running => ("▶", Style::new().fg(Color::Cyan)),
        StepStatus::Pending => ("○", style::dim()),
    }
}

fn step_word(status: &StepStatus) -> &'static str {
    match status {
        StepStatus::Ok => "ok",
        StepStatus::Failed(_) => "failed",
        StepStatus::Killed(_) => "killed",
        StepStatus::Skipped => "skipped",
        StepStatus::Running => "running",
        StepStatus::Pending => "pending",
    }
}

pub fn exit_text(exit: &ExitInfo) -> String {
    match exit {
        ExitInfo::Code(code) => format!("exit {code}"),
        ExitInfo::Signal(signal) => format!("SIG{signal}"),
        ExitInfo::Unknown => "?".to_string(),
    }
}

/// "1 failed, 3 ready": how many instances are in each state, worst first.
fn tally(indices: &[usize], snapshot: &Snapshot) -> Vec<Span<'static>> {
    let mut kinds: Vec<(StateKind, usize)> = Vec::new();
    for instance in indices
        .iter()
        .filter_map(|&index| snapshot.instances.get(index))
    {
        match kinds.iter_mut().find(|(kind, _)| *kind == instance.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((instance.kind, 1)),
        }
    }
    kinds.sort_by_key(|(kind, _)| std::cmp::Reverse(kind.severity()));
    let mut spans = Vec::new();
    for (kind, n) in kinds {
        if !spans.is_empty() {
            spans.push(Span::styled(", ", style::dim()));
        }
        spans.push(Span::styled(
            format!("{n} {}", kind.name()),
            style::state(kind),
        ));
    }
    spans
}

fn row_spans(
    row: &Row,
    snapshot: &Snapshot,
    view: &crate::ui::view::ViewModel,
    columns: &Columns,
) -> Vec<Span<'static>> {
    let name = name_cell(row, snapshot, view);
    let mut spans = fit_line(name, columns.name);
    if let RowKind::System { .. } = row.kind {
        // A system row is a heading: its tally runs across the columns.
        let jobs = row.instances.len();
        spans.push(Span::styled(
            format!(" {}: ", super::jobs(jobs)),
            style::dim(),
        ));
        spans.extend(tally(&row.instances, snapshot));
        return spans;
    }
    let instance: Option<&InstanceView> = row.instance().and_then(|i| snapshot.instances.get(i));
    for (column, width) in &columns.shown {
        spans.push(Span::raw(" "));
        let (text, style) = cell(*column, row, instance, snapshot);
        let text = align(&text, *width, column.right_aligned());
        spans.push(Span::styled(text, style));
    }
    spans
}

fn dash() -> (String, Style) {
    ("-".to_string(), style::dim())
}

fn cell(
    column: Column,
    row: &Row,
    instance: Option<&InstanceView>,
    snapshot: &Snapshot,
) -> (String, Style) {
    match (&row.kind, instance) {
        (RowKind::Job { .. }, _) => {
            let worst = row.worst(snapshot).unwrap_or(StateKind::Pending);
            match column {
                Column::State => (worst.name().to_string(), style::state(worst)),
                Column::Restarts => {
                    let restarts: u32 = row
                        .instances
                        .iter()
                        .filter_map(|&i| snapshot.instances.get(i))
                        .map(|i| i.restarts)
                        .sum();
                    (restarts.to_string(), Style::new())
                }
                Column::Info => {
                    let text: String = tally(&row.instances, snapshot)
                        .iter()
                        .map(|span| span.content.to_string())
                        .collect();
                    (
                        format!("{} instances: {text}", row.instances.len()),
                        style::dim(),
                    )
                }
                _ => (String::new(), Style::new()),
            }
        }
        (RowKind::Step { step, .. }, Some(instance)) => {
            let Some(view) = instance.step_view(*step) else {
                return (String::new(), Style::new());
            };
            let (_, mark_style) = step_mark(&view.status);
            match column {
                Column::State => (step_word(&view.status).to_string(), mark_style),
                Column::Exit => match &view.status {
                    StepStatus::Failed(exit) => (exit_text(exit), mark_style),
                    StepStatus::Killed(signal) => (format!("SIG{signal}"), mark_style),
                    _ => (String::new(), Style::new()),
                },
                Column::Uptime => view.duration.map_or_else(
                    || (String::new(), Style::new()),
                    |took| (crate::words::duration(took), style::dim()),
                ),
                _ => (String::new(), Style::new()),
            }
        }
        (RowKind::Instance { .. }, Some(instance)) => instance_cell(column, instance),
        _ => (String::new(), Style::new()),
    }
}

fn instance_cell(column: Column, instance: &InstanceView) -> (String, Style) {
    let kind = instance.kind;
    match column {
        Column::State => (instance.state.to_string(), style::state(kind)),
        Column::Step => match instance.step_text() {
            Some(text) => {
                let failing = matches!(kind, StateKind::Failed | StateKind::Backoff)
                    || instance
                        .step
                        .and_then(|step| instance.step_view(step))
                        .is_some_and(|step| {
                            matches!(step.status, StepStatus::Failed(_) | StepStatus::Killed(_))
                        });
                let style = if failing {
                    style::state(StateKind::Failed)
                } else {
                    Style::new()
                };
                (text, style)
            }
            None => dash(),
        },
        Column::Exit => match &instance.last_exit {
            Some(exit) => {
                let style = if exit.is_success() {
                    Style::new().fg(Color::Green)
                } else {
                    style::state(StateKind::Failed)
                };
                (exit_text(exit), style)
            }
            None => dash(),
        },
        Column::Restarts => (instance.restarts.to_string(), Style::new()),
        Column::Uptime => instance
            .uptime
            .map_or_else(dash, |up| (duration_text(up.as_secs_f64()), Style::new())),
        Column::Cpu => instance
            .figures
            .as_ref()
            .and_then(|figures| figures.cpu_percent)
            .map_or_else(dash, |cpu| (format!("{cpu:.1}"), Style::new())),
        Column::Rss => instance
            .figures
            .as_ref()
            .and_then(|figures| figures.rss_bytes)
            .map_or_else(dash, |rss| (bytes_text(rss), Style::new())),
        Column::Info => {
            let style = match kind {
                StateKind::Failed | StateKind::Unreachable | StateKind::Lost => style::state(kind),
                _ => style::dim(),
            };
            (instance.info.clone().unwrap_or_default(), style)
        }
    }
}

/// `line` cut or padded to exactly `width` columns, styles kept.
fn fit_line(line: Line<'static>, width: usize) -> Vec<Span<'static>> {
    let total = line.width();
    if total <= width {
        let mut spans = line.spans;
        spans.push(Span::raw(" ".repeat(width - total)));
        return spans;
    }
    let mut cut = crate::ui::output::cut(&line, 0, width.saturating_sub(1)).spans;
    let used: usize = cut.iter().map(Span::width).sum();
    cut.push(Span::styled("…", style::dim()));
    cut.push(Span::raw(" ".repeat(width.saturating_sub(used + 1))));
    cut
}
