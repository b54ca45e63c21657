//! Keys while a menu, a question, help or a search being typed is open.

use super::{Confirm, Context, Overlay, SIGNALS, UiAction, ViewModel, names};
use crate::ui::keys::{CTRL_C, Command, Key, KeyName};

impl ViewModel {
    pub(super) fn handle_overlay(&mut self, key: Key, context: &Context) -> Vec<UiAction> {
        let Some(overlay) = self.overlay.take() else {
            return Vec::new();
        };
        let command = self.keymap.command(&key);
        match overlay {
            Overlay::SearchInput(mut text) => {
                match key.name {
                    _ if key == CTRL_C => {}
                    KeyName::Esc => {}
                    KeyName::Enter if text.is_empty() => self.search = None,
                    KeyName::Enter => {
                        self.search = Some(text);
                        self.output.current_match = None;
                        return self.find(true, context);
                    }
                    KeyName::Backspace => {
                        text.pop();
                        self.overlay = Some(Overlay::SearchInput(text));
                    }
                    KeyName::Char(c) if !key.ctrl && !key.alt => {
                        text.push(c);
                        self.overlay = Some(Overlay::SearchInput(text));
                    }
                    _ => self.overlay = Some(Overlay::SearchInput(text)),
                }
                Vec::new()
            }
            Overlay::Help { scroll } => {
                match command {
                    Some(Command::Down) => {
                        self.overlay = Some(Overlay::Help { scroll: scroll + 1 })
                    }
                    Some(Command::Up) => {
                        self.overlay = Some(Overlay::Help {
                            scroll: scroll.saturating_sub(1),
                        })
                    }
                    // Any other key closes help; Ctrl+C goes on to quit.
                    Some(Command::Quit) if key == CTRL_C => {
                        return self.ask_to_quit(context.snapshot, false);
                    }
                    _ => {}
                }
                Vec::new()
            }
            Overlay::Confirm(confirm) => {
                let yes = matches!(key.name, KeyName::Char('y' | 'Y') | KeyName::Enter)
                    && !key.ctrl
                    // A second Ctrl+C means yes, as in most terminals' tools.
                    || key == CTRL_C;
                let no = matches!(key.name, KeyName::Char('n' | 'N') | KeyName::Esc)
                    || command == Some(Command::Quit);
                if yes {
                    return match confirm {
                        Confirm::Quit { .. } => self.quit(),
                        Confirm::KillAll { .. } => {
                            self.message = Some("killing every job".into());
                            vec![UiAction::KillAll]
                        }
                    };
                }
                if !no {
                    self.overlay = Some(Overlay::Confirm(confirm));
                }
                Vec::new()
            }
            Overlay::Signal { targets, selected } => {
                let pick = match (key.name, command) {
                    (KeyName::Char(c @ '1'..='4'), _) => Some(usize::from(c as u8 - b'1')),
                    (KeyName::Enter, _) => Some(selected),
                    (_, Some(Command::Down)) => {
                        self.overlay = Some(Overlay::Signal {
                            selected: (selected + 1).min(SIGNALS.len() - 1),
                            targets,
                        });
                        return Vec::new();
                    }
                    (_, Some(Command::Up)) => {
                        self.overlay = Some(Overlay::Signal {
                            selected: selected.saturating_sub(1),
                            targets,
                        });
                        return Vec::new();
                    }
                    _ => None,
                };
                match pick.and_then(|index| SIGNALS.get(index)) {
                    Some(&signal) => {
                        self.message =
                            Some(format!("sent SIG{} to {}", signal.name(), names(&targets)));
                        vec![UiAction::Signal { signal, targets }]
                    }
                    None => Vec::new(),
                }
            }
        }
    }
}
