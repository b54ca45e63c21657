//! The help screen, made from the key map and each command's description,
//! so it lists the keys as bound (also after `keys.toml` rebinds them).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

use super::{fit, style};
use crate::ui::keys::{CTRL_C, Command, Keymap};
use crate::ui::view::ViewModel;

/// The help text, one line per command, then a few notes.
pub fn lines(keymap: &Keymap) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let key_width = Command::ALL
        .iter()
        .map(|&command| keys_text(keymap, command).chars().count())
        .max()
        .unwrap_or(0);
    for command in Command::ALL {
        lines.push(Line::from(vec![
            Span::styled(fit(&keys_text(keymap, command), key_width), style::key()),
            Span::raw("  "),
            Span::styled(fit(command.name(), 12), style::dim()),
            Span::raw(command.describe()),
        ]));
    }
    lines.push(Line::from(""));
    for note in [
        format!("{CTRL_C} always asks to quit; pressed again, it says yes."),
        "Marks: • output not seen yet, ! stderr not seen yet (opening the job clears them).".into(),
        "Rebind keys in ~/.config/zap/keys.toml (or $XDG_CONFIG_HOME/zap/keys.toml):".into(),
        "  restart = [\"R\", \"ctrl-r\"]   (names from the middle column)".into(),
    ] {
        lines.push(Line::from(Span::styled(note, style::dim())));
    }
    lines
}

fn keys_text(keymap: &Keymap, command: Command) -> String {
    let keys = keymap.keys(command);
    if keys.is_empty() {
        return "(unbound)".into();
    }
    let mut names: Vec<String> = keys.iter().map(ToString::to_string).collect();
    if command == Command::Quit {
        names.push(CTRL_C.to_string());
    }
    names.join(" ")
}

pub fn render(view: &ViewModel, scroll: usize, area: Rect, buf: &mut Buffer) {
    let lines = lines(&view.keymap);
    // Everything but the header and the footer.
    let rect = Rect::new(
        area.x,
        area.y + 1,
        area.width,
        area.height.saturating_sub(2),
    );
    for y in rect.top()..rect.bottom() {
        for x in rect.left()..rect.right() {
            if let Some(cell) = buf.cell_mut((x, y)) {
                cell.reset();
            }
        }
    }
    let title = Line::from(vec![
        Span::styled(" zap keys ", style::title().add_modifier(Modifier::BOLD)),
        Span::styled("  any other key closes this", style::dim()),
    ]);
    buf.set_line(rect.x + 1, rect.y, &title, rect.width.saturating_sub(1));
    let room = usize::from(rect.height.saturating_sub(2));
    let scroll = scroll.min(lines.len().saturating_sub(room));
    for (offset, line) in lines.iter().skip(scroll).take(room).enumerate() {
        let y = rect.y + 2 + u16::try_from(offset).unwrap_or(u16::MAX);
        buf.set_line(rect.x + 3, y, line, rect.width.saturating_sub(4));
    }
}
