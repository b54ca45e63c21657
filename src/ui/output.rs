//! A job's output as the job view shows it: the few lines in view copied
//! out of the [`Ring`], ANSI colours turned into styles (from whole lines:
//! the transport hands over whole lines only, so an escape split across SSH
//! chunks never reaches here in pieces; a colour left on carries to the
//! stream's next lines, see [`Pens`]), control characters made harmless,
//! search matches highlighted, and lines wrapped or cut to the width.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

use super::ansi::{self, Pen};
use super::render::style;
use super::view::{OutputBounds, OutputView};
use crate::logs::{LogLine, Origin, Ring};

/// Columns a tab stop is apart.
const TAB: usize = 8;
/// How many lines above the window are read for the colours they leave on:
/// a colour set further up and never reset is forgotten (read on every
/// frame, under the ring's lock, so it stays small; most lines hold no
/// escape and cost a scan for ESC).
const PEN_LOOKBACK: u64 = 500;

/// The lines in view, copied so the ring's lock is held only for that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputWindow {
    pub bounds: OutputBounds,
    /// From the first line shown on, at most as many lines as there are rows.
    pub lines: Vec<LogLine>,
    /// The pens the lines above the first one left.
    pub pens: Pens,
}

impl OutputWindow {
    pub fn copy(ring: &Ring, view: &OutputView, rows: u16) -> OutputWindow {
        let bounds = bounds(ring);
        let top = view.top_line(bounds, rows);
        let above = top.saturating_sub(PEN_LOOKBACK).max(bounds.first);
        let pens = Pens::after(
            ring.since(above)
                .take(usize::try_from(top.saturating_sub(above)).unwrap_or(usize::MAX)),
        );
        OutputWindow {
            bounds,
            lines: ring.since(top).take(usize::from(rows)).collect(),
            pens,
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

/// A line's own text as styled spans, drawn from `pen` on (see
/// [`ansi::convert`]), with tabs expanded and control characters shown as
/// `�` (a bell or a backspace must not reach the real terminal); and the
/// pen after it.
pub fn content_from(text: &str, pen: Pen) -> (Line<'static>, Pen) {
    let converted = ansi::convert(text, pen);
    let mut column = 0usize;
    let spans = converted
        .spans
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
                    // A bell, a backspace, a C1 control: visible, and
                    // harmless.
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
    (Line::from(spans), converted.pen)
}

/// A line's text as styled spans, on its own (no colour carried in).
pub fn content(text: &str) -> Line<'static> {
    content_from(text, Pen::default()).0
}

/// The pen of each of a job's streams, carried from line to line as the
/// job's terminal would: stdout and stderr each keep their own, and both
/// start afresh when a step starts or the job starts again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pens {
    stdout: Pen,
    stderr: Pen,
}

impl Pens {
    /// The pens after `lines` (the ones above a window), from a fresh
    /// start.
    pub fn after(lines: impl Iterator<Item = impl std::borrow::Borrow<LogLine>>) -> Pens {
        let mut pens = Pens::default();
        for line in lines {
            let line = line.borrow();
            if let Some(pen) = pens.of(line) {
                *pen = ansi::pen_after(&line.text, *pen);
            }
        }
        pens
    }

    /// The pen `line` is drawn from; `None` for zap's own lines, which
    /// reset both when a step or a new process starts.
    fn of(&mut self, line: &LogLine) -> Option<&mut Pen> {
        match line.origin {
            Origin::Stdout => Some(&mut self.stdout),
            Origin::Stderr => Some(&mut self.stderr),
            Origin::Zap => {
                if starts_afresh(line) {
                    *self = Pens::default();
                }
                None
            }
        }
    }
}

/// zap's line saying a step or a process starts: what the job prints
/// after it is drawn with fresh pens.
fn starts_afresh(line: &LogLine) -> bool {
    is_step_line(line) || line.text.starts_with("started: ")
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

/// How `line` looks, drawn with the pens the lines above it left (and
/// moving them on).
pub fn shown(line: &LogLine, pens: &mut Pens, query: Option<&str>, current: bool) -> Shown {
    let pen = pens.of(line);
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
    let gutter = match line.origin {
        Origin::Stderr => Span::styled("! ", style::stderr()),
        Origin::Zap => Span::styled("~ ", style::zap()),
        Origin::Stdout => Span::raw("  "),
    };
    let content = match pen {
        Some(pen) => {
            let (content, after) = content_from(&line.text, *pen);
            *pen = after;
            content
        }
        None => Line::from(Span::styled(plain(&line.text), style::zap())),
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
    use crate::model::{StepIndex, Stream};
    use crate::transport::decode::LineCut;
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

    fn out(stream: Stream, text: &str) -> LogLine {
        LogLine::output(stream, Some(StepIndex(1)), text.into(), LineCut::Whole)
    }

    /// The colour of `piece` in `line` as the job view draws it.
    fn colour_in(line: &LogLine, pens: &mut Pens, piece: &str) -> Option<Color> {
        match shown(line, pens, None, false) {
            Shown::Text { content, .. } => content
                .spans
                .iter()
                .find(|span| span.content.contains(piece))
                .and_then(|span| span.style.fg),
            Shown::Separator(_) => panic!("a separator: {line:?}"),
        }
    }

    #[test]
    fn each_stream_keeps_its_colour_until_a_step_starts() {
        let mut pens = Pens::default();
        let lines = [
            (Stream::Stdout, "\x1b[31mred", "red", Some(Color::Red)),
            (Stream::Stderr, "err plain", "err", None),
            (
                Stream::Stdout,
                "still red\x1b[0m",
                "still",
                Some(Color::Red),
            ),
            (Stream::Stdout, "plain", "plain", None),
            (
                Stream::Stdout,
                "\x1b[34mblue, left on",
                "blue",
                Some(Color::Blue),
            ),
        ];
        for (stream, text, piece, wanted) in lines {
            let line = out(stream, text);
            assert_eq!(colour_in(&line, &mut pens, piece), wanted, "{text:?}");
        }
        let step = LogLine::zap(Some(StepIndex(2)), "step 2/2: make");
        assert!(matches!(
            shown(&step, &mut pens, None, false),
            Shown::Separator(_)
        ));
        assert_eq!(pens, Pens::default());
        assert_eq!(
            colour_in(&out(Stream::Stdout, "fresh"), &mut pens, "fresh"),
            None
        );
        pens = Pens::after([out(Stream::Stdout, "\x1b[32mgreen")].iter());
        let restart = LogLine::zap(None, "started: pid 7, process group 7 (restart 1)");
        let _ = shown(&restart, &mut pens, None, false);
        assert_eq!(pens, Pens::default());
    }

    /// However the SSH channel cuts the bytes, the job view draws the line
    /// as if it had come in one piece: the decoder hands over whole lines.
    #[test]
    fn an_escape_split_across_chunks_is_drawn_as_if_whole() {
        use crate::transport::Chunk;
        use crate::transport::decode::{Decoder, JobEvent};
        use crate::transport::script::Nonce;

        let raw = "\x1b[1;38;5;208morange\x1b[0m plain \x1b]0;title\x07end";
        let whole = content(raw);
        let bytes = format!("{raw}\n").into_bytes();
        for cut in 1..bytes.len() {
            let mut decoder = Decoder::new(Nonce::random());
            let mut events = Vec::new();
            decoder.feed(Chunk::Stdout(bytes[..cut].to_vec()), &mut events);
            decoder.feed(Chunk::Stdout(bytes[cut..].to_vec()), &mut events);
            let lines: Vec<&str> = events
                .iter()
                .filter_map(|event| match event {
                    JobEvent::Line { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(lines.len(), 1, "cut at {cut}: {lines:?}");
            assert_eq!(content(lines[0]), whole, "cut at {cut}");
        }
        assert_eq!(text(&whole), "orange plain end");
    }

    #[test]
    fn a_window_starts_with_the_colours_left_above_it() {
        let mut ring = Ring::new(100);
        ring.push(out(Stream::Stdout, "\x1b[33myellow from here"));
        for n in 0..30 {
            ring.push(out(Stream::Stdout, &format!("line {n}")));
        }
        let window = OutputWindow::copy(&ring, &OutputView::default(), 5);
        assert_eq!(window.lines.len(), 5);
        let mut pens = window.pens;
        let last = window.lines.last().expect("lines");
        assert_eq!(colour_in(last, &mut pens, "line 29"), Some(Color::Yellow));
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
