//! ANSI escapes in a line of job output, read as a terminal reads them: SGR
//! (colours and attributes) becomes ratatui styles, starting from the
//! [`Pen`] the stream's earlier lines left (a colour set and not reset
//! stays on, as it would on a terminal); every other escape (cursor moves,
//! erasing, OSC titles, charset switches) is dropped, so it cannot move
//! anything on zap's screen. An escape cut off by the end of the line is
//! dropped too: the transport hands over whole lines, so a cut one was
//! never going to be completed.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

const ESC: char = '\x1b';
const BEL: char = '\x07';

/// The SGR state of a stream: what its next character is drawn with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pen {
    fg: Option<Color>,
    bg: Option<Color>,
    modifiers: Modifier,
}

impl Pen {
    pub fn style(self) -> Style {
        let mut style = Style::new().add_modifier(self.modifiers);
        if let Some(fg) = self.fg {
            style = style.fg(fg);
        }
        if let Some(bg) = self.bg {
            style = style.bg(bg);
        }
        style
    }
}

/// A line as the terminal would leave it, and the pen after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// Text with its style; control characters other than ESC are left in
    /// for the caller to make harmless.
    pub spans: Vec<Span<'static>>,
    pub pen: Pen,
}

/// Converts `text` drawn from `pen` on. A `\r` (a progress bar redrawing)
/// starts the line over, as on a terminal: only what follows the last one
/// is shown, with the colours set before it still on.
pub fn convert(text: &str, pen: Pen) -> Converted {
    // A line ending in "\r\n" is one line, not a redraw.
    let text = text.strip_suffix('\r').unwrap_or(text);
    let mut spans = Vec::new();
    let mut pen = pen;
    let mut piece = String::new();
    let mut chars = text.chars().peekable();
    let flush = |piece: &mut String, spans: &mut Vec<Span<'static>>, pen: Pen| {
        if !piece.is_empty() {
            spans.push(Span::styled(std::mem::take(piece), pen.style()));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ESC => {
                if let Some(params) = escape(&mut chars) {
                    flush(&mut piece, &mut spans, pen);
                    pen = sgr(pen, &params);
                }
            }
            '\r' => {
                piece.clear();
                spans.clear();
            }
            c => piece.push(c),
        }
    }
    flush(&mut piece, &mut spans, pen);
    Converted { spans, pen }
}

/// The pen after `text`, without building its spans: most lines hold no
/// escape at all and cost one scan.
pub fn pen_after(text: &str, pen: Pen) -> Pen {
    if !text.contains(ESC) {
        return pen;
    }
    let mut pen = pen;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ESC
            && let Some(params) = escape(&mut chars)
        {
            pen = sgr(pen, &params);
        }
    }
    pen
}

/// Reads the escape after an ESC; the parameters if it is an SGR
/// (`ESC [ … m`), `None` for any other (read and dropped all the same).
fn escape(chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<String> {
    match chars.next()? {
        '[' => {
            let mut params = String::new();
            for c in chars.by_ref() {
                match c {
                    // Parameter and intermediate bytes.
                    '\x20'..='\x3f' => params.push(c),
                    // The final byte.
                    '\x40'..='\x7e' => {
                        let plain = params
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == ';' || c == ':');
                        return (c == 'm' && plain).then_some(params);
                    }
                    // Not a CSI after all: a terminal would give up here.
                    _ => return None,
                }
            }
            None
        }
        // OSC (a window title, a hyperlink), DCS, SOS, PM, APC: a string up
        // to BEL or ST (`ESC \`).
        ']' | 'P' | 'X' | '^' | '_' => {
            while let Some(c) = chars.next() {
                if c == BEL {
                    break;
                }
                if c == ESC && chars.peek() == Some(&'\\') {
                    chars.next();
                    break;
                }
            }
            None
        }
        // `ESC ( B` and the like: intermediates, then one final character.
        '\x20'..='\x2f' => {
            while chars.next_if(|c| ('\x20'..='\x2f').contains(c)).is_some() {}
            chars.next();
            None
        }
        _ => None,
    }
}

/// The pen after the SGR sequence with `params` (`1;38;5;208`).
fn sgr(pen: Pen, params: &str) -> Pen {
    let mut pen = pen;
    let groups: Vec<&str> = params.split(';').collect();
    let mut at = 0;
    while at < groups.len() {
        let group = groups[at];
        at += 1;
        if group.contains(':') {
            // `38:5:208`, `38:2::255:0:0`, `4:3`: one self-contained group.
            let parts: Vec<u16> = group
                .split(':')
                .filter(|part| !part.is_empty())
                .map(|part| part.parse().unwrap_or(0))
                .collect();
            match parts.as_slice() {
                [38, rest @ ..] => pen.fg = extended(rest).or(pen.fg),
                [48, rest @ ..] => pen.bg = extended(rest).or(pen.bg),
                [4, 0] => pen.modifiers.remove(Modifier::UNDERLINED),
                [4, _] => pen.modifiers.insert(Modifier::UNDERLINED),
                _ => {}
            }
            continue;
        }
        let code: u16 = if group.is_empty() {
            0
        } else {
            group.parse().unwrap_or(u16::MAX)
        };
        match code {
            38 | 48 | 58 => {
                let rest: Vec<u16> = groups[at..]
                    .iter()
                    .map(|part| part.parse().unwrap_or(0))
                    .collect();
                let (colour, used) = match rest.as_slice() {
                    [5, n, ..] => (extended(&[5, *n]), 2),
                    [2, r, g, b, ..] => (extended(&[2, *r, *g, *b]), 4),
                    _ => (None, rest.len()),
                };
                at += used;
                match code {
                    38 => pen.fg = colour.or(pen.fg),
                    48 => pen.bg = colour.or(pen.bg),
                    // The underline's colour: not drawn.
                    _ => {}
                }
            }
            code => pen = simple(pen, code),
        }
    }
    pen
}

/// An SGR code that takes no arguments.
fn simple(mut pen: Pen, code: u16) -> Pen {
    let modifiers = &mut pen.modifiers;
    match code {
        0 => return Pen::default(),
        1 => modifiers.insert(Modifier::BOLD),
        2 => modifiers.insert(Modifier::DIM),
        3 => modifiers.insert(Modifier::ITALIC),
        4 | 21 => modifiers.insert(Modifier::UNDERLINED),
        5 => modifiers.insert(Modifier::SLOW_BLINK),
        6 => modifiers.insert(Modifier::RAPID_BLINK),
        7 => modifiers.insert(Modifier::REVERSED),
        8 => modifiers.insert(Modifier::HIDDEN),
        9 => modifiers.insert(Modifier::CROSSED_OUT),
        22 => modifiers.remove(Modifier::BOLD | Modifier::DIM),
        23 => modifiers.remove(Modifier::ITALIC),
        24 => modifiers.remove(Modifier::UNDERLINED),
        25 => modifiers.remove(Modifier::SLOW_BLINK | Modifier::RAPID_BLINK),
        27 => modifiers.remove(Modifier::REVERSED),
        28 => modifiers.remove(Modifier::HIDDEN),
        29 => modifiers.remove(Modifier::CROSSED_OUT),
        30..=37 => pen.fg = Some(basic(code - 30)),
        39 => pen.fg = None,
        40..=47 => pen.bg = Some(basic(code - 40)),
        49 => pen.bg = None,
        90..=97 => pen.fg = Some(bright(code - 90)),
        100..=107 => pen.bg = Some(bright(code - 100)),
        // Fonts, frames and whatever else a terminal may know: not drawn.
        _ => {}
    }
    pen
}

/// `5;N` (256 colours) or `2;R;G;B` (true colour).
fn extended(args: &[u16]) -> Option<Color> {
    let byte = |n: u16| u8::try_from(n).ok();
    match args {
        [5, n] => Some(Color::Indexed(byte(*n)?)),
        // With a colour space id first (`38:2:0:R:G:B`).
        [2, r, g, b] | [2, _, r, g, b] => Some(Color::Rgb(byte(*r)?, byte(*g)?, byte(*b)?)),
        _ => None,
    }
}

/// SGR 30–37 (40–47): the eight colours of a terminal's palette.
const BASIC: [Color; 8] = [
    Color::Black,
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::Gray,
];
/// SGR 90–97 (100–107): their bright kin.
const BRIGHT: [Color; 8] = [
    Color::DarkGray,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
    Color::White,
];

fn basic(n: u16) -> Color {
    BASIC[usize::from(n) % BASIC.len()]
}

fn bright(n: u16) -> Color {
    BRIGHT[usize::from(n) % BRIGHT.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(converted: &Converted) -> String {
        converted
            .spans
            .iter()
            .map(|span| span.content.as_ref())
            .collect()
    }

    fn fg_of(converted: &Converted, piece: &str) -> Option<Color> {
        converted
            .spans
            .iter()
            .find(|span| span.content.contains(piece))
            .and_then(|span| span.style.fg)
    }

    #[test]
    fn colours_and_attributes_become_styles() {
        let line = convert(
            "\x1b[1;31mbold red\x1b[22m red\x1b[0m plain \x1b[38;5;208morange\x1b[48;2;1;2;3m on rgb",
            Pen::default(),
        );
        assert_eq!(text(&line), "bold red red plain orange on rgb");
        let styles: Vec<Style> = line.spans.iter().map(|span| span.style).collect();
        assert_eq!(
            styles[0],
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        );
        assert_eq!(styles[1], Style::new().fg(Color::Red));
        assert_eq!(styles[2], Style::new());
        assert_eq!(styles[3], Style::new().fg(Color::Indexed(208)));
        assert_eq!(
            styles[4],
            Style::new().fg(Color::Indexed(208)).bg(Color::Rgb(1, 2, 3))
        );
    }

    #[test]
    fn a_colour_left_on_carries_to_the_next_line() {
        let first = convert("\x1b[31mred", Pen::default());
        let second = convert("still red\x1b[0m", first.pen);
        let third = convert("plain", second.pen);
        assert_eq!(fg_of(&second, "still red"), Some(Color::Red));
        assert_eq!(third.spans[0].style, Style::new());
        assert_eq!(pen_after("\x1b[31mred", Pen::default()), first.pen);
        assert_eq!(pen_after("no escapes here", first.pen), first.pen);
    }

    #[test]
    fn colon_forms_and_bright_colours() {
        let line = convert(
            "\x1b[38:2::10:20:30ma\x1b[38:5:9mb\x1b[92mc\x1b[4:3md\x1b[4:0me",
            Pen::default(),
        );
        assert_eq!(fg_of(&line, "a"), Some(Color::Rgb(10, 20, 30)));
        assert_eq!(fg_of(&line, "b"), Some(Color::Indexed(9)));
        assert_eq!(fg_of(&line, "c"), Some(Color::LightGreen));
        assert!(
            line.spans[3]
                .style
                .add_modifier
                .contains(Modifier::UNDERLINED)
        );
        assert!(
            !line.spans[4]
                .style
                .add_modifier
                .contains(Modifier::UNDERLINED)
        );
    }

    #[test]
    fn other_escapes_are_dropped_whole() {
        let line = convert(
            "a\x1b[2J\x1b[10;5Hb\x1b]0;a title\x07c\x1b]8;;http://x\x1b\\d\x1b(Be\x1b[?25lf\x1b7g",
            Pen::default(),
        );
        assert_eq!(text(&line), "abcdefg");
        assert!(line.spans.iter().all(|span| span.style == Style::new()));
    }

    #[test]
    fn an_escape_cut_by_the_end_of_the_line_is_dropped() {
        for raw in [
            "\x1b",
            "abc\x1b[",
            "x\x1b[31",
            "\x1b]0;title",
            "\x1b(",
            "\x1b[38;5",
        ] {
            let line = convert(raw, Pen::default());
            assert!(!text(&line).contains('\x1b'), "{raw:?}");
            assert!(!text(&line).contains('['), "{raw:?}");
        }
        // A cut `38;5` sets nothing.
        assert_eq!(pen_after("\x1b[38;5m", Pen::default()), Pen::default());
    }

    #[test]
    fn a_carriage_return_starts_the_line_over_keeping_the_colour() {
        let line = convert("\x1b[33m10%\r50%\r100%", Pen::default());
        assert_eq!(text(&line), "100%");
        assert_eq!(fg_of(&line, "100%"), Some(Color::Yellow));
        assert_eq!(text(&convert("done\r", Pen::default())), "done");
    }
}
