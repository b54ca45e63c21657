//! The host view: the host's load, CPU and memory, then each of its job
//! instances with the process tree under its shell, like a filtered htop.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

use super::{Frame, clear_row, fit, footer, strip, style};
use crate::model::HostName;
use crate::ui::figures::HostFigures;
use crate::ui::keys::Command;
use crate::words::bytes as bytes_text;

pub fn render(frame: &Frame, host: &HostName, area: Rect, buf: &mut Buffer) {
    strip(frame, area, buf);
    if area.height < 2 {
        return;
    }
    let y = area.y + 1;
    clear_row(buf, area, y);
    buf.set_style(Rect::new(area.x, y, area.width, 1), style::title());
    let view = frame.snapshot.host(host);
    let mut title = vec![Span::styled(
        format!(" host {host} "),
        style::title().add_modifier(Modifier::BOLD),
    )];
    if view.is_some_and(|view| view.down) {
        title.push(Span::styled(
            " down ",
            style::stderr().bg(ratatui::style::Color::Black),
        ));
    }
    title.push(Span::styled(
        format!(
            " {}",
            figures_text(view.and_then(|view| view.figures.as_ref()))
        ),
        style::title(),
    ));
    buf.set_line(area.x, y, &Line::from(title), area.width);
    if area.height < 4 {
        return;
    }

    let body = Rect::new(area.x, area.y + 2, area.width, area.height - 3);
    let mut lines: Vec<Line<'static>> = vec![Line::from(Span::styled(
        format!(
            "  {}{:>8} {:>6} {:>6}",
            fit(
                "JOB / PROCESS",
                usize::from(area.width).saturating_sub(26).max(10)
            ),
            "PID",
            "CPU%",
            "RSS"
        ),
        style::dim(),
    ))];
    let name_width = usize::from(area.width).saturating_sub(26).max(10);
    for instance in frame
        .snapshot
        .instances
        .iter()
        .filter(|instance| &instance.id.host == host)
    {
        let figures = instance.figures.as_ref();
        let cpu = figures
            .and_then(|f| f.cpu_percent)
            .map_or_else(|| "-".to_string(), |cpu| format!("{cpu:.1}"));
        let rss = figures
            .and_then(|f| f.rss_bytes)
            .map_or_else(|| "-".to_string(), bytes_text);
        let pid = instance
            .pid
            .map_or_else(|| "-".to_string(), |pid| pid.to_string());
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} ", style::glyph(instance.kind)),
                style::state(instance.kind),
            ),
            Span::styled(
                fit(
                    &format!("{} {}", instance.id.job, instance.state),
                    name_width,
                ),
                style::bold(),
            ),
            Span::raw(format!("{pid:>8} {cpu:>6} {rss:>6}")),
        ]));
        for process in figures.map_or(&[][..], |f| f.processes.as_slice()) {
            let cpu = process
                .cpu_percent
                .map_or_else(|| "-".to_string(), |cpu| format!("{cpu:.1}"));
            let name = format!("{}└ {}", "  ".repeat(process.depth), process.command);
            lines.push(Line::from(vec![
                Span::raw("  "),
                Span::styled(fit(&name, name_width), style::dim()),
                Span::raw(format!(
                    "{:>8} {cpu:>6} {:>6}",
                    process.pid,
                    bytes_text(process.rss_bytes)
                )),
            ]));
        }
        if figures.is_none() && instance.pid.is_some() {
            lines.push(Line::from(Span::styled(
                "  └ (its processes show once the stats poller reports them)",
                style::dim(),
            )));
        }
    }
    for y in body.top()..body.bottom() {
        clear_row(buf, area, y);
    }
    // The column titles stay; the rest scrolls.
    let scroll = frame.view.host_offset;
    let rest = lines.iter().skip(1).skip(scroll);
    for (offset, line) in lines
        .iter()
        .take(1)
        .chain(rest)
        .take(usize::from(body.height))
        .enumerate()
    {
        let y = body.y + u16::try_from(offset).unwrap_or(u16::MAX);
        buf.set_line(body.x, y, line, body.width);
    }
    footer(
        frame,
        &[
            (Command::Back, "back"),
            (Command::Down, "scroll"),
            (Command::Help, "help"),
            (Command::Quit, "quit"),
        ],
        area,
        buf,
    );
}

fn figures_text(figures: Option<&HostFigures>) -> String {
    let Some(figures) = figures else {
        return "no CPU or memory figures yet".to_string();
    };
    if let Some(why) = &figures.unavailable {
        return format!("no figures: {why}");
    }
    let mut parts = Vec::new();
    if let Some([one, five, fifteen]) = figures.load {
        parts.push(format!("load {one:.2} {five:.2} {fifteen:.2}"));
    }
    if let Some(cpu) = figures.cpu_percent {
        let cores = figures
            .cores
            .map_or_else(String::new, |cores| format!(" of {cores} cores"));
        parts.push(format!("CPU {cpu:.0}%{cores}"));
    }
    if let (Some(used), Some(total)) = (figures.mem_used, figures.mem_total) {
        parts.push(format!("mem {}/{}", bytes_text(used), bytes_text(total)));
    }
    if parts.is_empty() {
        "no CPU or memory figures yet".to_string()
    } else {
        parts.join(" · ")
    }
}
