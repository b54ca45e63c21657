//! Order among instances: what may start (its `after` jobs are ready),
//! what must wait and why, and in which order a shutdown stops them.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::State;
use super::change::Applied;
use super::event::Mode;
use super::phase::{Outcome, Phase};
use crate::model::JobName;

/// How the instances of one job stand, for those that come after it.
#[derive(Debug, Default, Clone, Copy)]
struct Standing {
    /// Some instance is not ready yet.
    not_ready: bool,
    /// Some instance is done without being ready (`zap run`: it never will).
    broken: bool,
    /// Why the wait may be long, if it may.
    trouble: Option<&'static str>,
}

impl State {
    /// Moves pending instances on: start those whose dependencies are ready,
    /// hold the others as waiting (with the reason), and in `zap run` give
    /// up on those whose dependencies can no longer become ready. Linear in
    /// the instances per pass; a pass repeats only when one started or
    /// gave up.
    pub(super) fn schedule(&mut self, out: &mut Applied<'_>) {
        if self.shutting_down.is_some() {
            return;
        }
        loop {
            let any_pending = self
                .instances
                .iter()
                .any(|one| matches!(one.phase(), Phase::Pending | Phase::Waiting { .. }));
            if !any_pending {
                return;
            }
            let standings = self.standings();
            let mut changed = false;
            for instance in &mut self.instances {
                if !matches!(instance.phase(), Phase::Pending | Phase::Waiting { .. }) {
                    continue;
                }
                let mut waiting_on = Vec::new();
                let mut broken = None;
                for dependency in &instance.after {
                    let Some(standing) = standings.get(dependency) else {
                        continue;
                    };
                    if standing.broken && self.mode == Mode::Run {
                        broken = Some(dependency.clone());
                    } else if standing.not_ready {
                        waiting_on.push(dependency.clone());
                    }
                }
                if let Some(dependency) = broken {
                    instance.skip_pending_steps();
                    instance.enter(Phase::Done(Outcome::DependencyFailed(dependency)), out);
                    changed = true;
                } else if waiting_on.is_empty() {
                    instance.begin_run(out);
                    changed = true;
                } else {
                    // The reason changes as what it waits for fails or
                    // restarts, even when the list of names does not.
                    let reason = waiting_reason(&waiting_on, &standings);
                    instance.enter(
                        Phase::Waiting {
                            on: waiting_on,
                            reason,
                        },
                        out,
                    );
                }
            }
            if !changed {
                return;
            }
        }
    }

    fn standings(&self) -> HashMap<JobName, Standing> {
        let mut standings: HashMap<JobName, Standing> = HashMap::new();
        for other in &self.instances {
            let standing = standings.entry(other.id.job.clone()).or_default();
            if other.ready {
                continue;
            }
            standing.not_ready = true;
            standing.broken |= other.is_done();
            let trouble = match other.phase() {
                Phase::Done(Outcome::Ok) => None,
                Phase::Done(_) => Some("which ended without becoming ready"),
                Phase::Backoff { .. } => Some("which is restarting"),
                Phase::Lost { .. } => Some("whose host is down"),
                _ => None,
            };
            standing.trouble = standing.trouble.or(trouble);
        }
        standings
    }

    /// During shutdown: stop each live instance that no live instance
    /// depends on.
    pub(super) fn stop_in_order(&mut self, now: Instant, out: &mut Applied<'_>) {
        let Some((reason, counts_as_failure)) = self.shutting_down.clone() else {
            return;
        };
        let needed: BTreeSet<JobName> = self
            .instances
            .iter()
            .filter(|instance| instance.is_live())
            .flat_map(|instance| instance.after.iter().cloned())
            .collect();
        for instance in &mut self.instances {
            if !needed.contains(&instance.id.job)
                && matches!(instance.phase(), Phase::Starting | Phase::Running)
            {
                instance.stop(&reason, counts_as_failure, now, out);
            }
        }
    }

    /// The process groups of zap's other live jobs on the same host as
    /// instance `position`: a remedy there must spare them.
    pub(super) fn live_groups_on(&self, position: usize) -> Vec<u32> {
        let host = &self.instances[position].id.host;
        self.instances
            .iter()
            .enumerate()
            .filter(|(other, instance)| {
                *other != position && &instance.id.host == host && instance.is_live()
            })
            .filter_map(|(_, instance)| instance.pgid)
            .collect()
    }
}

/// "waiting for web.db, which is restarting", naming what holds it up.
fn waiting_reason(waiting_on: &[JobName], standings: &HashMap<JobName, Standing>) -> String {
    let parts: Vec<String> = waiting_on
        .iter()
        .map(|name| match standings.get(name).and_then(|s| s.trouble) {
            Some(trouble) => format!("{name}, {trouble}"),
            None => name.to_string(),
        })
        .collect();
    format!("waiting for {}", parts.join(" and "))
}
