//! Keys on the fleet view (the tree) and the host view.

use super::{Screen, UiAction, ViewModel, row_name};
use crate::model::InstanceId;
use crate::ui::keys::Command;
use crate::ui::snapshot::Snapshot;
use crate::ui::tree::{self, Row};

impl ViewModel {
    pub(super) fn fleet_command(&mut self, command: Command, snapshot: &Snapshot) -> Vec<UiAction> {
        let rows = tree::rows(snapshot, &self.fleet.folds);
        self.settle_rows(&rows);
        let Some(row) = rows.get(self.fleet.index).cloned() else {
            return Vec::new();
        };
        let page = usize::from(self.body_rows().saturating_sub(1).max(1));
        let last = rows.len() - 1;
        let index = self.fleet.index;
        let select = |view: &mut ViewModel, index: usize| {
            let index = index.min(last);
            view.fleet.index = index;
            view.fleet.selected = Some(rows[index].key.clone());
        };
        match command {
            Command::Up => select(self, index.saturating_sub(1)),
            Command::Down => select(self, index + 1),
            Command::PageUp => select(self, index.saturating_sub(page)),
            Command::PageDown => select(self, index + page),
            Command::Top => select(self, 0),
            Command::Bottom => select(self, last),
            Command::Fold => match (row.open, &row.parent) {
                (Some(true), _) => {
                    self.fleet.folds.insert(row.key.clone(), false);
                }
                (_, Some(parent)) => {
                    if let Some(position) = rows.iter().position(|r| &r.key == parent) {
                        select(self, position);
                    }
                }
                _ => {}
            },
            Command::Unfold => match row.open {
                Some(false) => {
                    self.fleet.folds.insert(row.key.clone(), true);
                }
                Some(true) => select(self, index + 1),
                None => {}
            },
            Command::ToggleFold => {
                if let Some(open) = row.open {
                    self.fleet.folds.insert(row.key.clone(), !open);
                }
            }
            Command::Open => match row.instance() {
                Some(position) => {
                    if let Some(instance) = snapshot.instances.get(position) {
                        self.open(Screen::Job(instance.id.clone()));
                    }
                }
                None => {
                    if let Some(open) = row.open {
                        self.fleet.folds.insert(row.key.clone(), !open);
                    }
                }
            },
            Command::Host => {
                if let Some(instance) = row
                    .instances
                    .first()
                    .and_then(|&position| snapshot.instances.get(position))
                {
                    self.open(Screen::Host(instance.id.host.clone()));
                }
            }
            Command::NextMatch | Command::PrevMatch => {
                let forward = command == Command::NextMatch;
                if let Some(position) = self.find_row(&rows, snapshot, forward) {
                    select(self, position);
                }
            }
            Command::Restart | Command::StopStart | Command::Signal => {
                let ids: Vec<InstanceId> = row
                    .instances
                    .iter()
                    .filter_map(|&position| snapshot.instances.get(position))
                    .map(|instance| instance.id.clone())
                    .collect();
                return self.job_action(command, ids, snapshot);
            }
            _ => {}
        }
        Vec::new()
    }

    /// The next (or previous) visible row whose name holds the search.
    pub(super) fn find_row(
        &mut self,
        rows: &[Row],
        snapshot: &Snapshot,
        forward: bool,
    ) -> Option<usize> {
        let query = self.search.as_ref()?.to_lowercase();
        let count = rows.len();
        let start = self.fleet.index;
        let found = (1..=count)
            .map(|step| {
                if forward {
                    (start + step) % count
                } else {
                    (start + count - step % count) % count
                }
            })
            .find(|&position| {
                row_name(&rows[position], snapshot)
                    .to_lowercase()
                    .contains(&query)
            });
        if found.is_none() {
            self.message = Some(format!("no row named like {query:?}"));
        }
        found
    }

    pub(super) fn host_command(&mut self, command: Command, snapshot: &Snapshot) -> Vec<UiAction> {
        let Screen::Host(host) = &self.screen else {
            return Vec::new();
        };
        let lines = snapshot
            .instances
            .iter()
            .filter(|instance| &instance.id.host == host)
            .map(|instance| 1 + instance.figures.as_ref().map_or(0, |f| f.processes.len()))
            .sum::<usize>();
        let last = lines.saturating_sub(usize::from(self.body_rows()));
        let page = usize::from(self.body_rows().saturating_sub(1).max(1));
        self.host_offset = match command {
            Command::Up => self.host_offset.saturating_sub(1),
            Command::Down => self.host_offset + 1,
            Command::PageUp => self.host_offset.saturating_sub(page),
            Command::PageDown => self.host_offset + page,
            Command::Top => 0,
            Command::Bottom => last,
            _ => self.host_offset,
        }
        .min(last);
        Vec::new()
    }
}
