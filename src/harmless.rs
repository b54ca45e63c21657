//! Job output made safe to print on a user's terminal: colours (SGR) kept
//! when colours are on, every other escape and control character shown in
//! caret notation (`^[`, `^M`, `^G`) instead of obeyed, so a job cannot set
//! the terminal's title, clear its screen or move its cursor. The log files
//! keep the raw bytes; the TUI draws its own way.

use std::borrow::Cow;

/// `text` as it may reach a terminal: SGR sequences kept if `colours`, else
/// dropped; other escapes and controls (but tab) made visible.
pub fn harmless(text: &str, colours: bool) -> Cow<'_, str> {
    // Every line of output passes here: a branch-free first look (which
    // the compiler vectorises) sends only suspects to the exact one.
    let suspect = text.bytes().fold(false, |seen, byte| {
        seen | (byte < 0x20) | (byte == 0x7f) | (byte == 0xc2)
    });
    if !suspect
        || !text
            .bytes()
            .enumerate()
            .any(|(at, byte)| needs_care(text, at, byte))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c == '\x1b' {
            let sequence = escape_at(&text[at..]);
            let is_colour = sequence.len() > 2
                && sequence.starts_with("\x1b[")
                && sequence.ends_with('m')
                && sequence[2..sequence.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b';' || b == b':');
            if is_colour {
                if colours {
                    out.push_str(sequence);
                }
            } else {
                for shown in sequence.chars() {
                    push_visible(&mut out, shown);
                }
            }
            // Skip the rest of the sequence (its first char is this ESC).
            let end = at + sequence.len();
            while chars.peek().is_some_and(|(next, _)| *next < end) {
                chars.next();
            }
        } else {
            push_visible(&mut out, c);
        }
    }
    Cow::Owned(out)
}

/// A control character (C0 but tab, DEL, or C1 as UTF-8) starts at `at`.
fn needs_care(text: &str, at: usize, byte: u8) -> bool {
    match byte {
        b'\t' => false,
        0x00..=0x1f | 0x7f => true,
        0xc2 => text
            .as_bytes()
            .get(at + 1)
            .is_some_and(|next| (0x80..=0x9f).contains(next)),
        _ => false,
    }
}

fn push_visible(out: &mut String, c: char) {
    match c {
        '\t' => out.push('\t'),
        '\x00'..='\x1f' => {
            out.push('^');
            out.push(char::from(b'@' + c as u8));
        }
        '\x7f' => out.push_str("^?"),
        '\u{80}'..='\u{9f}' => out.push_str(&format!("<U+{:04X}>", c as u32)),
        other => out.push(other),
    }
}

/// The escape sequence `text` starts with (it starts with ESC): a CSI
/// (`ESC [` … final byte), an OSC (`ESC ]` … BEL or `ESC \`), or ESC and
/// one more character.
fn escape_at(text: &str) -> &str {
    let bytes = text.as_bytes();
    let end = match bytes.get(1) {
        Some(b'[') => bytes[2..]
            .iter()
            .position(|b| (0x40..=0x7e).contains(b))
            .map_or(bytes.len(), |at| at + 3),
        Some(b']') => {
            let mut end = bytes.len();
            for at in 2..bytes.len() {
                if bytes[at] == 0x07 {
                    end = at + 1;
                    break;
                }
                if bytes[at] == 0x1b && bytes.get(at + 1) == Some(&b'\\') {
                    end = at + 2;
                    break;
                }
            }
            end
        }
        Some(_) => 1 + text[1..].chars().next().map_or(0, char::len_utf8),
        None => 1,
    };
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_tabs_pass_untouched_without_a_copy() {
        assert!(matches!(harmless("plain\ttext é", true), Cow::Borrowed(_)));
    }

    #[test]
    fn colours_are_kept_or_dropped_and_everything_else_is_shown() {
        let cases = [
            ("\x1b[31mred\x1b[0m", true, "\x1b[31mred\x1b[0m"),
            ("\x1b[31mred\x1b[0m", false, "red"),
            (
                "\x1b]0;pwned title\x07after",
                true,
                "^[]0;pwned title^Gafter",
            ),
            ("\x1b[2J\x1b[Hcleared", true, "^[[2J^[[Hcleared"),
            ("50%\r100%", true, "50%^M100%"),
            ("bell\x07", false, "bell^G"),
            ("del\x7f", false, "del^?"),
            ("c1\u{9b}31m", true, "c1<U+009B>31m"),
            ("\x1b", true, "^["),
            ("\x1b[31", true, "^[[31"),
            ("\x1bPdcs", true, "^[Pdcs"),
            ("\x1b]8;;http://x\x1b\\link", true, "^[]8;;http://x^[\\link"),
        ];
        for (text, colours, shown) in cases {
            assert_eq!(harmless(text, colours), shown, "{text:?}");
        }
    }
}
