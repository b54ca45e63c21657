//! The view model: which screen is open, what is selected, folded, scrolled
//! and searched, kept apart from the supervisor's state. [`ViewModel::handle`]
//! turns a key into changes of this view and into [`UiAction`]s for the
//! supervisor; it is pure, so it is tested without a terminal.
//!
//! `fleet` handles keys on the tree and the host view, `output` on a job's
//! output, `overlay` in menus, questions, help and search input.

mod fleet;
mod output;
mod overlay;

use std::collections::HashMap;

use super::keys::{Command, Key, Keymap};
use super::snapshot::Snapshot;
use super::tree::{self, NodeKey, Row};
use crate::action::Action;
use crate::model::{HostName, InstanceId, Signal};

pub use output::OutputView;

/// The signals the menu offers, in its order.
pub const SIGNALS: [Signal; 4] = [Signal::Term, Signal::Int, Signal::Hup, Signal::Kill];

/// Rows the screens use besides their list or output: a header or strip
/// line, a title line and the footer.
pub const CHROME_ROWS: u16 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Fleet,
    /// One job instance's output.
    Job(InstanceId),
    /// One host's figures and processes.
    Host(HostName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help {
        scroll: usize,
    },
    Confirm(Confirm),
    /// The signal menu for these instances; `selected` indexes [`SIGNALS`].
    Signal {
        targets: Vec<InstanceId>,
        selected: usize,
    },
    /// A search being typed.
    SearchInput(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// "stop N jobs and quit?"
    Quit { jobs: usize },
    /// Quitting already: "kill N jobs now?"
    KillAll { jobs: usize },
}

/// What the view asks of the rest of zap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiAction {
    /// A command of the shared vocabulary (restart, stop, start, down) on
    /// these instances (none for `Down`).
    Act {
        action: Action,
        targets: Vec<InstanceId>,
    },
    /// Send `signal` to the process groups of `targets`.
    Signal {
        signal: Signal,
        targets: Vec<InstanceId>,
    },
    /// Quitting takes too long: KILL every job still running.
    KillAll,
    /// Look for `query` in `id`'s kept output from line `from` on (or
    /// back), then call [`ViewModel::found`].
    Find {
        id: InstanceId,
        query: String,
        from: u64,
        forward: bool,
    },
}

/// The open job's kept lines: numbers `first..next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputBounds {
    pub first: u64,
    pub next: u64,
}

/// What a key is handled against.
pub struct Context<'a> {
    pub snapshot: &'a Snapshot,
    pub output: OutputBounds,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetView {
    pub selected: Option<NodeKey>,
    /// The selected row's place, to land near it when it goes away.
    pub index: usize,
    /// The first row shown.
    pub offset: usize,
    /// Folds the user changed; the rest are as [`tree::is_open`] says.
    pub folds: HashMap<NodeKey, bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ViewModel {
    pub keymap: Keymap,
    pub screen: Screen,
    /// Screens to go back to with Esc.
    pub back: Vec<Screen>,
    pub overlay: Option<Overlay>,
    pub fleet: FleetView,
    pub output: OutputView,
    /// The last search, highlighted and repeated with n / N.
    pub search: Option<String>,
    /// Per instance, the stdout and stderr line counts already looked at.
    pub seen: HashMap<InstanceId, (u64, u64)>,
    /// A short word for the footer ("restarting web.api@n1").
    pub message: Option<String>,
    /// The first line of the host view's list.
    pub host_offset: usize,
    pub width: u16,
    pub height: u16,
    /// The user asked to quit: every job is being stopped.
    pub quitting: bool,
}

impl ViewModel {
    pub fn new(keymap: Keymap, width: u16, height: u16) -> ViewModel {
        ViewModel {
            keymap,
            screen: Screen::Fleet,
            back: Vec::new(),
            overlay: None,
            fleet: FleetView::default(),
            output: OutputView::default(),
            search: None,
            seen: HashMap::new(),
            message: None,
            host_offset: 0,
            width,
            height,
            quitting: false,
        }
    }

    pub fn resize(&mut self, width: u16, height: u16) {
        self.width = width;
        self.height = height;
    }

    /// Rows for the fleet list, a job's output or the host view's list.
    pub fn body_rows(&self) -> u16 {
        self.height.saturating_sub(CHROME_ROWS).max(1)
    }

    /// The instance whose output is open.
    pub fn open_job(&self) -> Option<&InstanceId> {
        match &self.screen {
            Screen::Job(id) => Some(id),
            _ => None,
        }
    }

    /// Whether `id` has output or stderr lines not looked at yet.
    pub fn unseen(&self, id: &InstanceId, out: u64, err: u64) -> (bool, bool) {
        let (seen_out, seen_err) = self.seen.get(id).copied().unwrap_or((0, 0));
        (out > seen_out, err > seen_err)
    }

    /// After a frame of `id`'s output: what it had is seen.
    pub fn mark_seen(&mut self, snapshot: &Snapshot) {
        if let Screen::Job(id) = &self.screen
            && let Some(instance) = snapshot.instance(id)
        {
            self.seen
                .insert(id.clone(), (instance.out_lines, instance.err_lines));
        }
    }

    /// Keeps the selection on an existing row and in view; call after each
    /// new snapshot and each key.
    pub fn settle(&mut self, snapshot: &Snapshot) {
        let rows = tree::rows(snapshot, &self.fleet.folds);
        self.settle_rows(&rows);
    }

    fn settle_rows(&mut self, rows: &[Row]) {
        if rows.is_empty() {
            self.fleet.selected = None;
            self.fleet.index = 0;
            self.fleet.offset = 0;
            return;
        }
        let found = self
            .fleet
            .selected
            .as_ref()
            .and_then(|key| rows.iter().position(|row| &row.key == key));
        let index = found.unwrap_or(self.fleet.index.min(rows.len() - 1));
        self.fleet.index = index;
        self.fleet.selected = Some(rows[index].key.clone());
        self.fleet.offset = scroll_to(self.fleet.offset, index, rows.len(), self.body_rows());
    }

    /// The answer to [`UiAction::Find`]: the line that matched, if any.
    pub fn found(&mut self, line: Option<u64>, bounds: OutputBounds) {
        match line {
            Some(line) => {
                self.output.follow = false;
                self.output.current_match = Some(line);
                let context = u64::from(self.body_rows() / 3);
                self.output.top = line.saturating_sub(context).max(bounds.first);
                self.message = None;
            }
            None => {
                let query = self.search.clone().unwrap_or_default();
                self.message = Some(format!("no more lines with {query:?}"));
            }
        }
    }

    /// The mouse wheel: `lines` down (or up if negative).
    pub fn scroll(&mut self, lines: i32, context: &Context) {
        match &mut self.overlay {
            Some(Overlay::Help { scroll }) => {
                let by = usize::try_from(lines.unsigned_abs()).unwrap_or(0);
                *scroll = if lines < 0 {
                    scroll.saturating_sub(by)
                } else {
                    *scroll + by
                };
                return;
            }
            // Menus and questions are answered with keys.
            Some(_) => return,
            None => {}
        }
        let command = if lines < 0 {
            Command::Up
        } else {
            Command::Down
        };
        for _ in 0..lines.unsigned_abs() {
            self.handle_command(command, context);
        }
    }

    /// Handles one key.
    pub fn handle(&mut self, key: Key, context: &Context) -> Vec<UiAction> {
        if self.overlay.is_some() {
            return self.handle_overlay(key, context);
        }
        self.message = None;
        match self.keymap.command(&key) {
            Some(command) => self.handle_command(command, context),
            None => Vec::new(),
        }
    }

    fn handle_command(&mut self, command: Command, context: &Context) -> Vec<UiAction> {
        let snapshot = context.snapshot;
        let actions = match command {
            Command::Help => {
                self.overlay = Some(Overlay::Help { scroll: 0 });
                Vec::new()
            }
            Command::Quit => self.ask_to_quit(snapshot, false),
            Command::QuitNow => self.ask_to_quit(snapshot, true),
            Command::Search => {
                self.overlay = Some(Overlay::SearchInput(String::new()));
                Vec::new()
            }
            Command::Back if self.screen != Screen::Fleet => {
                self.screen = self.back.pop().unwrap_or(Screen::Fleet);
                Vec::new()
            }
            _ => match self.screen.clone() {
                Screen::Fleet => self.fleet_command(command, snapshot),
                Screen::Job(id) => self.job_command(command, &id, context),
                Screen::Host(_) => self.host_command(command, snapshot),
            },
        };
        self.settle(snapshot);
        actions
    }

    fn ask_to_quit(&mut self, snapshot: &Snapshot, at_once: bool) -> Vec<UiAction> {
        if self.quitting {
            let jobs = snapshot.counts.running;
            if jobs > 0 {
                self.overlay = Some(Overlay::Confirm(Confirm::KillAll { jobs }));
            }
            return Vec::new();
        }
        let jobs = snapshot.counts.not_done;
        if at_once && jobs == 0 {
            return self.quit();
        }
        self.overlay = Some(Overlay::Confirm(Confirm::Quit { jobs }));
        Vec::new()
    }

    fn quit(&mut self) -> Vec<UiAction> {
        self.quitting = true;
        self.message = Some("stopping every job, then quitting".into());
        vec![UiAction::Act {
            action: Action::Down,
            targets: Vec::new(),
        }]
    }

    fn open(&mut self, screen: Screen) {
        if matches!(screen, Screen::Job(_)) {
            // A job opens following its newest output; wrap is kept.
            self.output = OutputView {
                wrap: self.output.wrap,
                ..OutputView::default()
            };
        }
        self.host_offset = 0;
        let previous = std::mem::replace(&mut self.screen, screen);
        self.back.push(previous);
        if self.back.len() > 8 {
            self.back.remove(0);
        }
    }

    /// Restart, stop/start or the signal menu, for `ids`.
    fn job_action(
        &mut self,
        command: Command,
        ids: Vec<InstanceId>,
        snapshot: &Snapshot,
    ) -> Vec<UiAction> {
        if ids.is_empty() {
            return Vec::new();
        }
        let instances: Vec<_> = ids.iter().filter_map(|id| snapshot.instance(id)).collect();
        match command {
            Command::Restart => {
                self.message = Some(format!("restarting {}", names(&ids)));
                vec![UiAction::Act {
                    action: Action::Restart {
                        targets: spelled(&ids),
                    },
                    targets: ids,
                }]
            }
            Command::StopStart => {
                let not_done: Vec<InstanceId> = instances
                    .iter()
                    .filter(|instance| !instance.done)
                    .map(|instance| instance.id.clone())
                    .collect();
                if not_done.is_empty() {
                    self.message = Some(format!("starting {}", names(&ids)));
                    vec![UiAction::Act {
                        action: Action::Start {
                            targets: spelled(&ids),
                        },
                        targets: ids,
                    }]
                } else {
                    self.message = Some(format!("stopping {}", names(&not_done)));
                    vec![UiAction::Act {
                        action: Action::Stop {
                            targets: spelled(&not_done),
                        },
                        targets: not_done,
                    }]
                }
            }
            Command::Signal => {
                let running: Vec<InstanceId> = instances
                    .iter()
                    .filter(|instance| instance.kind.is_running())
                    .map(|instance| instance.id.clone())
                    .collect();
                if running.is_empty() {
                    self.message = Some("no process runs there to signal".into());
                } else {
                    self.overlay = Some(Overlay::Signal {
                        targets: running,
                        selected: 0,
                    });
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}

/// The first row to show so that `index` is in view, moving as little as
/// possible from `offset`.
pub fn scroll_to(offset: usize, index: usize, rows: usize, height: u16) -> usize {
    let height = usize::from(height.max(1));
    let offset = if index < offset {
        index
    } else if index >= offset + height {
        index + 1 - height
    } else {
        offset
    };
    offset.min(rows.saturating_sub(height))
}

/// A row's name as searched and shown.
pub fn row_name(row: &Row, snapshot: &Snapshot) -> String {
    use super::tree::RowKind;
    match &row.kind {
        RowKind::System { name } => name.clone(),
        RowKind::Job { name } => name.job.clone(),
        RowKind::Instance { label, .. } => label.clone(),
        RowKind::Step { index, step } => snapshot
            .instances
            .get(*index)
            .and_then(|instance| instance.step_view(*step))
            .map_or_else(String::new, |view| format!("{step} {}", view.command)),
    }
}

/// Targets as the command line spells them.
fn spelled(ids: &[InstanceId]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

/// "web.api@n1", or "web.api@n1 and 2 more".
fn names(ids: &[InstanceId]) -> String {
    match ids {
        [] => "nothing".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}
