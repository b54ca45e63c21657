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
