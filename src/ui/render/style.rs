//! A glyph and a colour per state, and the few other styles the screens
//! share. Glyphs are one column wide in every terminal (no emoji).

use ratatui::style::{Color, Modifier, Style};

use crate::ui::snapshot::StateKind;

pub fn glyph(kind: StateKind) -> &'static str {
    match kind {
        StateKind::Pending => "○",
        StateKind::Waiting => "◌",
        StateKind::Starting => "◔",
        StateKind::Running => "▶",
        StateKind::Ready => "●",
        StateKind::Stopping => "◑",
        StateKind::Fixing => "✚",
        StateKind::Backoff => "↻",
        StateKind::Failed => "✗",
        StateKind::Exited => "✓",
        StateKind::Stopped => "■",
        StateKind::Lost => "⊗",
        StateKind::Unreachable => "⊘",
    }
}

pub fn colour(kind: StateKind) -> Color {
    match kind {
        StateKind::Pending | StateKind::Waiting | StateKind::Stopped => Color::DarkGray,
        StateKind::Starting | StateKind::Stopping | StateKind::Backoff => Color::Yellow,
        StateKind::Running => Color::Cyan,
        StateKind::Ready | StateKind::Exited => Color::Green,
        StateKind::Fixing => Color::Magenta,
        StateKind::Failed | StateKind::Unreachable => Color::Red,
        StateKind::Lost => Color::LightRed,
    }
}

pub fn state(kind: StateKind) -> Style {
    let style = Style::new().fg(colour(kind));
    match kind {
        StateKind::Failed | StateKind::Unreachable | StateKind::Lost => {
            style.add_modifier(Modifier::BOLD)
        }
        _ => style,
    }
}

pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

pub fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// The selected row, the title bars.
pub fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

pub fn title() -> Style {
    Style::new().fg(Color::Black).bg(Color::Gray)
}

pub fn key() -> Style {
    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
}

pub fn stderr() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}

pub fn zap() -> Style {
    Style::new().fg(Color::Cyan)
}

pub fn unseen() -> Style {
    Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD)
}

pub fn search_match() -> Style {
    Style::new().fg(Color::Black).bg(Color::Yellow)
}

pub fn dialog() -> Style {
    Style::new().fg(Color::White).bg(Color::Blue)
}

#[cfg(test)]
mod tests {
    use unicode_width::UnicodeWidthStr;

    use super::*;

    const KINDS: [StateKind; 13] = [
        StateKind::Pending,
        StateKind::Waiting,
        StateKind::Starting,
        StateKind::Running,
        StateKind::Ready,
        StateKind::Stopping,
        StateKind::Fixing,
        StateKind::Backoff,
        StateKind::Failed,
        StateKind::Exited,
        StateKind::Stopped,
        StateKind::Lost,
        StateKind::Unreachable,
    ];

    /// Every state is told apart by its glyph alone (for a terminal
    /// without colours), and each glyph takes one column.
    #[test]
    fn every_state_has_a_glyph_of_its_own_one_column_wide() {
        let mut seen = std::collections::HashSet::new();
        for kind in KINDS {
            let glyph = glyph(kind);
            assert_eq!(glyph.width(), 1, "{kind:?}: {glyph}");
            assert!(seen.insert(glyph), "{kind:?} shares {glyph}");
        }
    }

    /// What needs a look is bold red; what went well, green; what waits, grey.
    #[test]
    fn trouble_stands_out_and_calm_states_do_not() {
        for kind in [StateKind::Failed, StateKind::Unreachable, StateKind::Lost] {
            let style = state(kind);
            assert!(
                matches!(style.fg, Some(Color::Red | Color::LightRed)),
                "{kind:?}"
            );
            assert!(style.add_modifier.contains(Modifier::BOLD), "{kind:?}");
        }
        for kind in [StateKind::Ready, StateKind::Exited] {
            assert_eq!(state(kind).fg, Some(Color::Green), "{kind:?}");
        }
        for kind in [StateKind::Pending, StateKind::Waiting, StateKind::Stopped] {
            assert_eq!(state(kind).fg, Some(Color::DarkGray), "{kind:?}");
            assert!(!state(kind).add_modifier.contains(Modifier::BOLD));
        }
        for kind in [StateKind::Starting, StateKind::Backoff] {
            assert_eq!(state(kind).fg, Some(Color::Yellow), "{kind:?}");
        }
    }
}
