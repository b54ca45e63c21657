//! Keys on a job's output: scrolling, following, wrapping, search.

use super::{Context, OutputBounds, Screen, UiAction, ViewModel};
use crate::model::InstanceId;
use crate::ui::keys::Command;
use crate::ui::tree;

/// How far ←/→ move unwrapped output sideways.
const SIDEWAYS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputView {
    /// Keep the newest lines in view.
    pub follow: bool,
    /// The first line shown when not following.
    pub top: u64,
    pub wrap: bool,
    /// Columns cut on the left of unwrapped lines.
    pub sideways: usize,
    /// The line of the match last jumped to.
    pub current_match: Option<u64>,
}

impl Default for OutputView {
    fn default() -> OutputView {
        OutputView {
            follow: true,
            top: 0,
            wrap: true,
            sideways: 0,
            current_match: None,
        }
    }
}

impl OutputView {
    /// The first line shown, for `rows` rows of output.
    pub fn top_line(&self, bounds: OutputBounds, rows: u16) -> u64 {
        let bottom = bounds
            .next
            .saturating_sub(u64::from(rows))
            .max(bounds.first);
        if self.follow {
            bottom
        } else {
            self.top.clamp(bounds.first, bottom)
        }
    }
}

impl ViewModel {
    pub(super) fn job_command(
        &mut self,
        command: Command,
        id: &InstanceId,
        context: &Context,
    ) -> Vec<UiAction> {
        let bounds = context.output;
        let rows = self.body_rows();
        let page = u64::from(rows.saturating_sub(1).max(1));
        let top = self.output.top_line(bounds, rows);
        let bottom = bounds
            .next
            .saturating_sub(u64::from(rows))
            .max(bounds.first);
        let scroll_to_line = |view: &mut ViewModel, line: u64| {
            view.output.top = line.clamp(bounds.first, bottom);
            // Scrolling back to the end follows again, as a tail would.
            view.output.follow = line >= bottom;
        };
        match command {
            Command::Up => scroll_to_line(self, top.saturating_sub(1)),
            Command::Down => scroll_to_line(self, top + 1),
            Command::PageUp => scroll_to_line(self, top.saturating_sub(page)),
            Command::PageDown => scroll_to_line(self, top + page),
            Command::Top => {
                self.output.follow = false;
                self.output.top = bounds.first;
            }
            Command::Bottom => self.output.follow = true,
            Command::Follow => {
                self.output.top = top;
                self.output.follow = !self.output.follow;
            }
            Command::Wrap => {
                self.output.wrap = !self.output.wrap;
                self.output.sideways = 0;
            }
            Command::Fold if !self.output.wrap => {
                self.output.sideways = self.output.sideways.saturating_sub(SIDEWAYS);
            }
            Command::Unfold if !self.output.wrap => self.output.sideways += SIDEWAYS,
            Command::NextMatch => return self.find(true, context),
            Command::PrevMatch => return self.find(false, context),
            Command::Host => self.open(Screen::Host(id.host.clone())),
            Command::Restart | Command::StopStart | Command::Signal => {
                return self.job_action(command, vec![id.clone()], context.snapshot);
            }
            _ => {}
        }
        Vec::new()
    }

    /// n / N (and a new search): in a job's output, ask for the next match;
    /// in the fleet, select the next row.
    pub(super) fn find(&mut self, forward: bool, context: &Context) -> Vec<UiAction> {
        let Some(query) = self.search.clone() else {
            self.message = Some("nothing to search for: / starts a search".into());
            return Vec::new();
        };
        match &self.screen {
            Screen::Job(id) => {
                let bounds = context.output;
                let from = match (self.output.current_match, forward) {
                    (Some(line), true) => line + 1,
                    (Some(line), false) => line.saturating_sub(1),
                    (None, true) => self.output.top_line(bounds, self.body_rows()),
                    (None, false) => bounds.next.saturating_sub(1),
                };
                if !forward && self.output.current_match == Some(bounds.first) {
                    self.found(None, bounds);
                    return Vec::new();
                }
                vec![UiAction::Find {
                    id: id.clone(),
                    query,
                    from,
                    forward,
                }]
            }
            Screen::Fleet => {
                let rows = tree::rows(context.snapshot, &self.fleet.folds);
                // A new search starts at the selected row itself.
                let start = self.fleet.index;
                self.fleet.index = if forward {
                    start.checked_sub(1).unwrap_or(rows.len().saturating_sub(1))
                } else {
                    start
                };
                match self.find_row(&rows, context.snapshot, forward) {
                    Some(position) => {
                        self.fleet.index = position;
                        self.fleet.selected = rows.get(position).map(|row| row.key.clone());
                    }
                    None => self.fleet.index = start,
                }
                self.settle(context.snapshot);
                Vec::new()
            }
            Screen::Host(_) => Vec::new(),
        }
    }
}
