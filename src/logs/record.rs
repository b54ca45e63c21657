//! One line of a log file: a fixed header, then the text verbatim.
//!
//! ```text
//! 2024-02-29T12:34:56.789Z out  2 | Compiling zap v0.1.0
//! 2024-02-29T12:34:56.790Z err  2 | warning: unused variable `x`
//! 2024-02-29T12:34:57.001Z zap  - | restarting in 2s (exit 1)
//! 2024-02-29T12:34:58.000Z out 12 + the first 64 KiB of a very long line…
//! ```
//!
//! The header is the time (RFC 3339, UTC, milliseconds), the origin (`out`,
//! `err` or `zap`), the step (`-` for none; right-aligned to two columns,
//! wider when needed), then `|` for a line or `+` for a piece of a longer
//! line that the next `+`/`|` record of the same origin continues. One space
//! follows, then the text up to the newline exactly as it was: nothing in it
//! is escaped, because the header holds no `|` or `+` and the text holds no
//! newline. So the file reads as is in `less` and `grep`, and parses back
//! exactly.

use super::{LogLine, Origin, time};
use crate::model::StepIndex;

/// Shown in place of a newline in a text, which would end the record.
const NEWLINE_STAND_IN: char = '\u{2424}';

impl Origin {
    fn word(self) -> &'static str {
        match self {
            Origin::Stdout => "out",
            Origin::Stderr => "err",
            Origin::Zap => "zap",
        }
    }

    fn from_word(word: &str) -> Option<Origin> {
        match word {
            "out" => Some(Origin::Stdout),
            "err" => Some(Origin::Stderr),
            "zap" => Some(Origin::Zap),
            _ => None,
        }
    }
}

/// Appends `line` as one record, newline included, to `out`.
pub fn encode(line: &LogLine, out: &mut String) {
    time::format(line.at, out);
    out.push(' ');
    out.push_str(line.origin.word());
    out.push(' ');
    match line.step {
        Some(step) => {
            // Writing to a String cannot fail.
            let _ = std::fmt::Write::write_fmt(out, format_args!("{:>2}", step.0));
        }
        None => out.push_str(" -"),
    }
    out.push_str(if line.split { " + " } else { " | " });
    if line.text.contains('\n') {
        out.extend(line.text.chars().map(|c| match c {
            '\n' => NEWLINE_STAND_IN,
            c => c,
        }));
    } else {
        out.push_str(&line.text);
    }
    out.push('\n');
}

/// Reads one record, without its newline. `None` if it is not one; its
/// `seq` is 0.
pub fn parse(record: &str) -> Option<LogLine> {
    let mark = record.find(['|', '+'])?;
    let split = record.as_bytes()[mark] == b'+';
    let mut fields = record[..mark].split(' ').filter(|field| !field.is_empty());
    let at = time::parse(fields.next()?)?;
    let origin = Origin::from_word(fields.next()?)?;
    let step = match fields.next()? {
        "-" => None,
        digits if digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(StepIndex(digits.parse().ok()?))
        }
        _ => return None,
    };
    if fields.next().is_some() {
        return None;
    }
    // The space after the mark; a record of an empty text may have lost it
    // to an editor that trims trailing spaces.
    let rest = &record[mark + 1..];
    let text = match rest.strip_prefix(' ') {
        Some(text) => text,
        None if rest.is_empty() => "",
        None => return None,
    };
    Some(LogLine {
        seq: 0,
        at,
        origin,
        step,
        text: text.to_owned(),
        split,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// Texts that would trip a careless format.
    pub(crate) const TRICKY: &[&str] = &[
        "",
        " ",
        "   leading spaces",
        "trailing spaces   ",
        "\ttab\tinside\t",
        "a | b + c",
        "| starts with a bar",
        "+ starts with a plus",
        r"\n \t \\ \x41 \u{41} %41 \",
        "2024-02-29T12:34:56.789Z out  1 | a record inside",
        "emoji 🦀 and a family 👩‍👩‍👧 and é",
        "\u{1b}[31mred\u{1b}[0m",
        "carriage\rreturn",
        "ends with a carriage return\r",
        "\u{FFFD} replacement, \u{2028} line separator, \u{85} next line",
        "\u{0} \u{7f} \u{c}",
    ];

    fn sample(text: &str, origin: Origin, step: Option<u32>, split: bool) -> LogLine {
        LogLine {
            seq: 0,
            at: UNIX_EPOCH + Duration::from_millis(1_709_210_096_789),
            origin,
            step: step.map(StepIndex),
            text: text.to_owned(),
            split,
        }
    }

    fn encoded(line: &LogLine) -> String {
        let mut out = String::new();
        encode(line, &mut out);
        out
    }

    #[test]
    fn example_records() {
        let line = sample("Compiling zap", Origin::Stdout, Some(2), false);
        assert_eq!(
            encoded(&line),
            "2024-02-29T12:34:56.789Z out  2 | Compiling zap\n"
        );
        let line = sample("restarting", Origin::Zap, None, false);
        assert_eq!(
            encoded(&line),
            "2024-02-29T12:34:56.789Z zap  - | restarting\n"
        );
        let line = sample("piece", Origin::Stderr, Some(123), true);
        assert_eq!(encoded(&line), "2024-02-29T12:34:56.789Z err 123 + piece\n");
    }

    #[test]
    fn tricky_texts_round_trip_exactly() {
        for text in TRICKY {
            for origin in [Origin::Stdout, Origin::Stderr, Origin::Zap] {
                for step in [None, Some(1), Some(12), Some(u32::MAX)] {
                    for split in [false, true] {
                        let line = sample(text, origin, step, split);
                        let record = encoded(&line);
                        let body = record.strip_suffix('\n').unwrap_or_default();
                        assert!(!body.contains('\n'));
                        assert_eq!(parse(body), Some(line), "{record:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_newline_in_a_text_cannot_break_the_file() {
        let line = sample("one\ntwo\n", Origin::Zap, None, false);
        let record = encoded(&line);
        assert_eq!(record.matches('\n').count(), 1);
        let back = parse(record.trim_end_matches('\n'));
        assert_eq!(back.map(|l| l.text), Some("one␤two␤".to_owned()));
    }

    #[test]
    fn an_empty_text_may_lose_its_trailing_space() {
        let back = parse("2024-02-29T12:34:56.789Z out  1 |");
        assert_eq!(back.map(|l| l.text), Some(String::new()));
    }

    #[test]
    fn other_lines_are_not_records() {
        for bad in [
            "",
            "hello",
            "2024-02-29T12:34:56.789Z out  1",
            "2024-02-29T12:34:56.789Z out  1 |no space",
            "2024-02-29T12:34:56.789Z std  1 | origin",
            "2024-02-29T12:34:56.789Z out  x | step",
            "2024-02-29T12:34:56.789Z out -1 | step",
            "2024-02-29T12:34:56.789Z out 99999999999 | step",
            "2024-02-29T12:34:56.789Z out  1 extra | fields",
            "2024-02-29T12:34:56.789Z out | missing step",
            "2024-02-29T12:34 out  1 | torn time",
            "2024-02-29T12:3",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
