//! A job's output as the job view shows it: the few lines in view copied
//! out of the [`Ring`], ANSI colours turned into styles (line by line: the
//! transport hands over whole lines only, so an escape split across SSH
//! chunks never reaches here in pieces), control characters made harmless,
//! search matches highlighted, and lines wrapped or cut to the width.

use ansi_to_tui::IntoText;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

use super::render::style;
use super::view::{OutputBounds, OutputView};
use crate::logs::{LogLine, Origin, Ring};

/// Columns a tab stop is apart.
const TAB: usize = 8;

/// The lines in view, copied so the ring's lock is held only for that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputWindow {
    pub bounds: OutputBounds,
    /// From the first line shown on, at most as many lines as there are rows.
    pub lines: Vec<LogLine>,
}

impl OutputWindow {
    pub fn copy(ring: &Ring, view: &OutputView, rows: u16) -> OutputWindow {
        let bounds = bounds(ring);
        let top = view.top_line(bounds, rows);
        OutputWindow {
            bounds,
            lines: ring.since(top).take(usize::from(rows)).collect(),
        }
    }
}

pub fn bounds(ring: &Ring) -> OutputBounds {
    OutputBounds {
        first: ring.dropped(),
        next: ring.next_seq(),
    }
}

/// The number of the first line from `from` on (or back) holding `query`
/// (ASCII letters in any case, as [`highlight`] marks them), colours left out.
pub fn find(ring: &Ring, query: &str, from: u64, forward: bool) -> Option<u64> {
    let query = query.to_ascii_lowercase();
    let hit = |line: &LogLine| plain(&line.text).to_ascii_lowercase().contains(&query);
    if forward {
        ring.since(from).find(hit).map(|line| line.seq)
    } else {
        let first = ring.dropped();
        if from < first {
            return None;
        }
        let kept = usize::try_from(from - first + 1).unwrap_or(usize::MAX);
        ring.iter().take(kept).rev().find(hit).map(|line| line.seq)
    }
}

/// The text without escape sequences, as the screen shows it.
pub fn plain(text: &str) -> String {
    content(text)
        .spans
        .iter()
        .map(|span| span.content.as_ref())
        .collect()
}

/// What a terminal would leave on screen of a line with `\r` in it (a
/// progress bar): the text after the last one.
fn last_redraw(text: &str) -> &str {
    let text = text.strip_suffix('\r').unwrap_or(text);
    match text.rfind('\r') {
        Some(at) => &text[at + 1..],
        None => text,
    }
}

/// A line's own text as styled spans: SGR colours and attributes kept,
/// other escapes dropped, tabs expanded, control characters shown as `�`
/// (a bell or a backspace must not reach the real terminal).
pub fn content(text: &str) -> Line<'static> {
    let text = last_redraw(text);
    let converted = text
        .into_text()
        .ok()
        .and_then(|text| text.lines.into_iter().next());
    let spans = match converted {
        Some(line) => line.spans,
        None => vec![Span::raw(text.to_string())],
    };
    let mut column = 0usize;
    let spans = spans
        .into_iter()
        .map(|span| {
            let mut out = String::with_capacity(span.content.len());
            for c in span.content.chars() {
                match c {
                    '\t' => {
                        let fill = TAB - column % TAB;
                        out.extend(std::iter::repeat_n(' ', fill));
                        column += fill;
                    }
                    // What the parser left of an escape, a bell, a
                    // backspace: visible, and harmless.
                    c if c.is_control() => {
                        out.push('\u{fffd}');
                        column += 1;
                    }
                    c => {
                        out.push(c);
                        column += c.width().unwrap_or(0);
                    }
                }
            }
            Span::styled(out, span.style)
        })
        .collect::<Vec<_>>();
    Line::from(spans)
}

/// Splits spans so that every case-insensitive occurrence of `query` gets
/// the match style on top of its own.
pub fn highlight(line: Line<'static>, query: &str) -> Line<'static> {
    if query.is_empty() {
        return line;
    }
    let text: String = line
        .spans
        .iter()
        .map(|span| span.content.as_ref())
        .collect();
    let (lower, query) = (lowercase_same_len(&text), lowercase_same_len(query));
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&query) {
        let start = from + at;
        ranges.push(start..start + query.len());
        from = start + query.len().max(1);
    }
    if ranges.is_empty() {
        return line;
    }
    let mut spans = Vec::new();
    let mut offset = 0;
    for span in line.spans {
        let content = span.content.as_ref();
        let end = offset + content.len();
        let mut cut = 0;
        for range in &ranges {
            let (start, stop) = (range.start.max(offset), range.end.min(end));
            if start >= stop {
                continue;
            }
            let (start, stop) = (start - offset, stop - offset);
            if start > cut {
                spans.push(Span::styled(content[cut..start].to_string(), span.style));
            }
            spans.push(Span::styled(
                content[start..stop].to_string(),
                span.style.patch(style::search_match()),
            ));
            cut = stop;
        }
        if cut < content.len() {
            spans.push(Span::styled(content[cut..].to_string(), span.style));
        }
        offset = end;
    }
    Line::from(spans)
}

/// ASCII-lowercased, so byte offsets stay those of the original text.
fn lowercase_same_len(text: &str) -> String {
    text.to_ascii_lowercase()
}

/// How one kept line looks: a two-column gutter and its content, or a
/// step separator across the width.
pub enum Shown {
    Text {
        gutter: Span<'static>,
        content: Line<'static>,
    },
    Separator(Line<'static>),
}

/// zap writes a line when a step starts (`step 2/3: make`) and ends (`step 2
/// failed: exit 2 in 812ms`): those are drawn as separators.
fn is_step_line(line: &LogLine) -> bool {
    line.origin == Origin::Zap && line.step.is_some() && line.text.starts_with("step ")
}

pub fn shown(line: &LogLine, query: Option<&str>, current: bool) -> Shown {
    if is_step_line(line) {
        let ended_badly = line.text.contains(" failed") || line.text.contains("killed");
        let colour = if ended_badly {
            style::stderr()
        } else if line.text.contains(" ok") {
            Style::new().fg(ratatui::style::Color::Green)
        } else {
            style::zap().add_modifier(ratatui::style::Modifier::BOLD)
        };
        return Shown::Separator(Line::from(vec![
            Span::styled("── ", colour),
            Span::styled(line.text.clone(), colour),
            Span::styled(" ", colour),
        ]));
    }
    let (gutter, content) = match line.origin {
        Origin::Stdout => (Span::raw("  "), content(&line.text)),
        Origin::Stderr => (Span::styled("! ", style::stderr()), content(&line.text)),
        Origin::Zap => (
            Span::styled("~ ", style::zap()),
            Line::from(Span::styled(plain(&line.text), style::zap())),
        ),
    };
    let content = match query {
        Some(query) => highlight(content, query),
        None => content,
    };
    let gutter = if current {
        Span::styled("▶ ", style::search_match())
    } else {
        gutter
    };
    Shown::Text { gutter, content }
}

/// Cuts `line` into rows of at most `width` columns.
pub fn wrap(line: &Line<'static>, width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut rows: Vec<Line<'static>> = vec![Line::default()];
    let mut used = 0;
    for span in &line.spans {
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width && used > 0 {
                if let Some(row) = rows.last_mut() {
                    row.spans
                        .push(Span::styled(std::mem::take(&mut piece), span.style));
                }
                rows.push(Line::default());
                used = 0;
            }
            piece.push(c);
            used += w;
        }
        if !piece.is_empty()
            && let Some(row) = rows.last_mut()
        {
            row.spans.push(Span::styled(piece, span.style));
        }
    }
    rows
}

/// `line` without its first `skip` columns, at most `width` wide.
pub fn cut(line: &Line<'static>, skip: usize, width: usize) -> Line<'static> {
    let mut spans = Vec::new();
    let mut column = 0;
    for span in &line.spans {
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if column >= skip && column + w <= skip + width {
                piece.push(c);
            }
            column += w;
        }
        if !piece.is_empty() {
            spans.push(Span::styled(piece, span.style));
        }
        if column >= skip + width {
            break;
        }
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Color;

    fn text(line: &Line) -> String {
        line.spans
            .iter()
            .map(|span| span.content.as_ref())
            .collect()
    }

    #[test]
    fn colours_are_kept_and_other_escapes_dropped() {
        let line = content("\x1b[31mred\x1b[0m plain \x1b[2K\x1b]0;title\x07done");
        assert_eq!(text(&line), "red plain done");
        assert_eq!(line.spans[0].style.fg, Some(Color::Red));
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let line = content("a\x07b\x08c\tz\u{9b}2J");
        let shown = text(&line);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(shown, "a\u{fffd}b\u{fffd}c   z\u{fffd}2J");
    }

    #[test]
    fn a_progress_bar_shows_its_last_redraw() {
        assert_eq!(text(&content("10%\r50%\r100%")), "100%");
        assert_eq!(text(&content("done\r")), "done");
    }

    #[test]
    fn a_lone_or_cut_escape_is_harmless() {
        for raw in ["\x1b", "abc\x1b[", "\x1b[38;5m", "x\x1b[31"] {
            let shown = text(&content(raw));
            assert!(!shown.contains('\x1b'), "{raw:?} → {shown:?}");
        }
    }

    #[test]
    fn matches_are_highlighted_across_spans() {
        let line = content("\x1b[32mhello wo\x1b[0mrld, World");
        let lit = highlight(line, "world");
        let marked: Vec<String> = lit
            .spans
            .iter()
            .filter(|span| span.style.bg == Some(Color::Yellow))
            .map(|span| span.content.to_string())
            .collect();
        assert_eq!(marked, ["wo", "rld", "World"]);
        assert_eq!(text(&lit), "hello world, World");
    }

    #[test]
    fn wrapping_and_cutting_count_columns() {
        let line = Line::from("abcdefgh日本");
        let rows: Vec<String> = wrap(&line, 3).iter().map(text).collect();
        assert_eq!(rows, ["abc", "def", "gh", "日", "本"]);
        assert_eq!(text(&cut(&line, 2, 4)), "cdef");
        assert_eq!(text(&cut(&line, 8, 3)), "日");
    }

    #[test]
    fn search_goes_both_ways_through_the_ring() {
        let mut ring = Ring::new(10);
        for n in 0..15 {
            let text = if n % 4 == 0 {
                format!("\x1b[1mNeedle\x1b[0m {n}")
            } else {
                format!("hay {n}")
            };
            ring.push(LogLine::zap(None, text));
        }
        // Kept: 5..15; needles at 8 and 12.
        assert_eq!(find(&ring, "needle", 0, true), Some(8));
        assert_eq!(find(&ring, "needle", 9, true), Some(12));
        assert_eq!(find(&ring, "needle", 13, true), None);
        assert_eq!(find(&ring, "needle", 14, false), Some(12));
        assert_eq!(find(&ring, "needle", 11, false), Some(8));
        assert_eq!(find(&ring, "needle", 7, false), None);
        assert_eq!(find(&ring, "needle", 2, false), None);
    }
}
