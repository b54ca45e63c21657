//! The job view: the fleet strip, a title with the job's state, its output
//! (separators between steps, stderr and zap's lines marked, search
//! matches lit) and the keys.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;
use tui_term::widget::PseudoTerminal;

use super::fleet::exit_text;
use super::{Frame, clear_row, footer, strip, style};
use crate::model::InstanceId;
use crate::ui::keys::Command;
use crate::ui::output::{self, Shown};
use crate::words::uptime as duration_text;

pub fn render(frame: &Frame, id: &InstanceId, area: Rect, buf: &mut Buffer) {
    strip(frame, area, buf);
    if area.height < 2 {
        return;
    }
    title(frame, id, Rect::new(area.x, area.y + 1, area.width, 1), buf);
    if area.height < 4 {
        return;
    }
    let body = Rect::new(area.x, area.y + 2, area.width, area.height - 3);
    match frame.terminal {
        Some(screen) => {
            for y in body.top()..body.bottom() {
                clear_row(buf, body, y);
            }
            let mut cursor = tui_term::widget::Cursor::default();
            cursor.hide();
            PseudoTerminal::new(screen).cursor(cursor).render(body, buf);
        }
        None => body_rows(frame, body, buf),
    }
    footer(
        frame,
        &[
            (Command::Back, "back"),
            (Command::Follow, "follow"),
            (Command::Wrap, "wrap"),
            (Command::Search, "search"),
            (Command::NextMatch, "next"),
            (Command::Top, "top"),
            (Command::Bottom, "end"),
            (Command::Restart, "restart"),
            (Command::StopStart, "stop/start"),
            (Command::Signal, "signal"),
            (Command::Help, "help"),
        ],
        area,
        buf,
    );
}

fn title(frame: &Frame, id: &InstanceId, area: Rect, buf: &mut Buffer) {
    clear_row(buf, area, area.y);
    buf.set_style(area, style::title());
    let mut spans = vec![Span::styled(
        format!(" {id} "),
        style::title().add_modifier(ratatui::style::Modifier::BOLD),
    )];
    if let Some(instance) = frame.snapshot.instance(id) {
        let kind = instance.kind;
        spans.push(Span::styled(
            format!(" {} {} ", style::glyph(kind), instance.state),
            style::state(kind).bg(ratatui::style::Color::Black),
        ));
        let mut facts = Vec::new();
        if let Some(step) = instance.step_text() {
            facts.push(format!("step {step}"));
        }
        if let Some(exit) = &instance.last_exit {
            facts.push(format!("last {}", exit_text(exit)));
        }
        if let Some(pid) = instance.pid {
            facts.push(format!("pid {pid}"));
        }
        facts.push(format!("restarts {}", instance.restarts));
        if let Some(up) = instance.uptime {
            facts.push(format!("up {}", duration_text(up.as_secs_f64())));
        }

        spans.push(Span::styled(
            format!(" {}", facts.join(" · ")),
            style::title(),
        ));
    }
    let output = &frame.view.output;
    let mode = if frame.terminal.is_some() {
        " terminal · follow ".to_string()
    } else {
        format!(
            " {}{} ",
            if output.follow { "follow" } else { "paused" },
            if output.wrap { " · wrap" } else { "" }
        )
    };
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    let width = u16::try_from(mode.chars().count()).unwrap_or(0);
    if width + 20 < area.width {
        buf.set_stringn(
            area.right() - width,
            area.y,
            &mode,
            usize::from(width),
            style::title().add_modifier(ratatui::style::Modifier::BOLD),
        );
    }
}

fn body_rows(frame: &Frame, body: Rect, buf: &mut Buffer) {
    for y in body.top()..body.bottom() {
        clear_row(buf, body, y);
    }
    let window = frame.output;
    if window.lines.is_empty() {
        let text = if window.bounds.next == 0 {
            "no output yet"
        } else {
            "no lines here"
        };
        buf.set_stringn(
            body.x + 2,
            body.y,
            text,
            usize::from(body.width),
            style::dim(),
        );
        return;
    }
    let view = &frame.view.output;
    let query = frame.view.search.as_deref();
    let width = usize::from(body.width);
    let text_width = width.saturating_sub(2).max(1);
    let mut rows: Vec<Line<'static>> = Vec::new();
    let mut pens = window.pens;
    for line in &window.lines {
        let current = view.current_match == Some(line.seq);
        match output::shown(line, &mut pens, query, current) {
            Shown::Separator(mut separator) => {
                let used = separator.width();
                separator.spans.push(Span::styled(
                    "─".repeat(width.saturating_sub(used)),
                    separator
                        .spans
                        .first()
                        .map_or(style::dim(), |span| span.style),
                ));
                rows.push(separator);
            }
            Shown::Text { gutter, content } => {
                if view.wrap {
                    for (piece_index, piece) in
                        output::wrap(&content, text_width).into_iter().enumerate()
                    {
                        let lead = if piece_index == 0 {
                            gutter.clone()
                        } else {
                            Span::raw("  ")
                        };
                        let mut spans = vec![lead];
                        spans.extend(piece.spans);
                        rows.push(Line::from(spans));
                    }
                } else {
                    let mut spans = vec![gutter];
                    spans.extend(output::cut(&content, view.sideways, text_width).spans);
                    rows.push(Line::from(spans));
                }
            }
        }
    }
    let height = usize::from(body.height);
    // Following, the newest rows are at the bottom; else the top line leads.
    let skip = if view.follow {
        rows.len().saturating_sub(height)
    } else {
        0
    };
    for (offset, row) in rows.iter().skip(skip).take(height).enumerate() {
        let y = body.y + u16::try_from(offset).unwrap_or(u16::MAX);
        buf.set_line(body.x, y, row, body.width);
    }
}
