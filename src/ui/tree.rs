//! The fleet as a tree of rows: systems → jobs → instances (one per host) →
//! steps. A job with one instance is one row; its steps hang under it.
//! Which nodes are folded is view state, passed in.

use std::collections::HashMap;

use super::snapshot::{Snapshot, StateKind};
use crate::model::{InstanceId, JobName, StepIndex};

/// A node of the tree, stable across snapshots: selection and folds use it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKey {
    System(String),
    Job(JobName),
    Instance(InstanceId),
    Step(InstanceId, StepIndex),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowKind {
    System {
        name: String,
    },
    /// A job with several instances.
    Job {
        name: JobName,
    },
    /// One instance: a job's only one (`build@n1`) or one of several (`@n1`).
    Instance {
        index: usize,
        label: String,
    },
    Step {
        index: usize,
        step: StepIndex,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: NodeKey,
    pub parent: Option<NodeKey>,
    pub depth: usize,
    pub kind: RowKind,
    /// `None` for a leaf, else whether it shows its children.
    pub open: Option<bool>,
    /// The instances (indices into the snapshot) the row stands for.
    pub instances: Vec<usize>,
}

impl Row {
    /// The worst state among the row's instances.
    pub fn worst(&self, snapshot: &Snapshot) -> Option<StateKind> {
        self.instances
            .iter()
            .filter_map(|&index| snapshot.instances.get(index))
            .map(|instance| instance.kind)
            .max_by_key(|kind| kind.severity())
    }

    /// The one instance Enter opens, if the row is about one.
    pub fn instance(&self) -> Option<usize> {
        match self.kind {
            RowKind::Instance { index, .. } | RowKind::Step { index, .. } => Some(index),
            _ => None,
        }
    }
}

/// Folded or not, when the user has not said.
fn open_by_default(key: &NodeKey) -> bool {
    matches!(key, NodeKey::System(_) | NodeKey::Job(_))
}

pub fn is_open(folds: &HashMap<NodeKey, bool>, key: &NodeKey) -> bool {
    folds
        .get(key)
        .copied()
        .unwrap_or_else(|| open_by_default(key))
}

/// A job and the indices of its instances in the snapshot.
type JobInstances = (JobName, Vec<usize>);

/// The rows to show, top to bottom.
pub fn rows(snapshot: &Snapshot, folds: &HashMap<NodeKey, bool>) -> Vec<Row> {
    // Systems, and jobs within them, in the order of their first instance.
    let mut systems: Vec<(String, Vec<JobInstances>)> = Vec::new();
    for (index, instance) in snapshot.instances.iter().enumerate() {
        let job = &instance.id.job;
        let position = match systems.iter().position(|(name, _)| *name == job.system) {
            Some(position) => position,
            None => {
                systems.push((job.system.clone(), Vec::new()));
                systems.len() - 1
            }
        };
        let jobs = &mut systems[position].1;
        match jobs.iter_mut().find(|(name, _)| name == job) {
            Some((_, indices)) => indices.push(index),
            None => jobs.push((job.clone(), vec![index])),
        }
    }
    let mut rows = Vec::new();
    for (system, jobs) in systems {
        let key = NodeKey::System(system.clone());
        let open = is_open(folds, &key);
        rows.push(Row {
            key: key.clone(),
            parent: None,
            depth: 0,
            kind: RowKind::System { name: system },
            open: Some(open),
            instances: jobs
                .iter()
                .flat_map(|(_, indices)| indices.clone())
                .collect(),
        });
        if !open {
            continue;
        }
        for (job, indices) in jobs {
            if let [index] = indices[..] {
                let label = format!("{}@{}", job.job, snapshot.instances[index].id.host);
                instance_rows(snapshot, folds, &mut rows, index, label, &key, 1);
                continue;
            }
            let job_key = NodeKey::Job(job.clone());
            let open = is_open(folds, &job_key);
            rows.push(Row {
                key: job_key.clone(),
                parent: Some(key.clone()),
                depth: 1,
                kind: RowKind::Job { name: job },
                open: Some(open),
                instances: indices.clone(),
            });
            if open {
                for index in indices {
                    let label = format!("@{}", snapshot.instances[index].id.host);
                    instance_rows(snapshot, folds, &mut rows, index, label, &job_key, 2);
                }
            }
        }
    }
    rows
}

fn instance_rows(
    snapshot: &Snapshot,
    folds: &HashMap<NodeKey, bool>,
    rows: &mut Vec<Row>,
    index: usize,
    label: String,
    parent: &NodeKey,
    depth: usize,
) {
    let instance = &snapshot.instances[index];
    let key = NodeKey::Instance(instance.id.clone());
    let open = is_open(folds, &key);
    rows.push(Row {
        key: key.clone(),
        parent: Some(parent.clone()),
        depth,
        kind: RowKind::Instance { index, label },
        open: (!instance.steps.is_empty()).then_some(open),
        instances: vec![index],
    });
    if !open {
        return;
    }
    for position in 0..instance.steps.len() {
        let step = StepIndex(u32::try_from(position + 1).unwrap_or(u32::MAX));
        rows.push(Row {
            key: NodeKey::Step(instance.id.clone(), step),
            parent: Some(key.clone()),
            depth: depth + 1,
            kind: RowKind::Step { index, step },
            open: None,
            instances: vec![index],
        });
    }
}
