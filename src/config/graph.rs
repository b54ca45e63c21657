//! `after`: names resolved to jobs across every system, and no job waiting,
//! through others, on itself.

use std::collections::{BTreeMap, BTreeSet};

use super::jobs::ReadJob;
use super::reader::{Errors, Spot};
use crate::model::JobName;

/// Resolves every job's `after` entries (`"job"` in the job's own system,
/// `"system.job"` elsewhere), reporting unknown names and cycles. `systems`
/// are the names of every system, and `unreadable` those whose file had a
/// syntax error: their jobs are unknown but not reported missing.
pub fn resolve_after(
    jobs: &[&ReadJob],
    systems: &BTreeSet<&str>,
    unreadable: &BTreeSet<&str>,
    errors: &mut Errors<'_>,
) -> BTreeMap<JobName, Vec<JobName>> {
    let names: BTreeSet<&JobName> = jobs.iter().map(|job| &job.name).collect();
    let mut edges: BTreeMap<&JobName, Vec<(JobName, &Spot)>> = BTreeMap::new();
    for job in jobs {
        let resolved = edges.entry(&job.name).or_default();
        for (written, spot) in &job.after {
            let target = match written.split_once('.') {
                None => JobName {
                    system: job.name.system.clone(),
                    job: written.clone(),
                },
                Some((system, name)) if !system.is_empty() && !name.contains('.') => JobName {
                    system: system.to_string(),
                    job: name.to_string(),
                },
                Some(_) => {
                    errors.at(
                        spot,
                        format!("bad job name \"{written}\": write \"job\" or \"system.job\""),
                    );
                    continue;
                }
            };
            if names.contains(&target) {
                resolved.push((target, spot));
            } else if !unreadable.contains(target.system.as_str()) {
                let message = if systems.contains(target.system.as_str()) {
                    format!("unknown job \"{target}\" in after")
                } else {
                    format!(
                        "unknown job \"{target}\" in after: there is no system \"{}\"",
                        target.system
                    )
                };
                errors.at(spot, message);
            }
        }
    }
    report_cycles(jobs, &edges, errors);
    edges
        .into_iter()
        .map(|(job, after)| {
            (
                job.clone(),
                after.into_iter().map(|(target, _)| target).collect(),
            )
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Unvisited,
    OnPath,
    Done,
}

/// A depth-first walk in file order; each edge back onto the current path
/// closes a cycle, reported at that `after` entry.
fn report_cycles(
    jobs: &[&ReadJob],
    edges: &BTreeMap<&JobName, Vec<(JobName, &Spot)>>,
    errors: &mut Errors<'_>,
) {
    let mut marks: BTreeMap<JobName, Mark> = jobs
        .iter()
        .map(|job| (job.name.clone(), Mark::Unvisited))
        .collect();
    let mut path = Vec::new();
    for job in jobs {
        visit(&job.name, edges, &mut marks, &mut path, errors);
    }
}

fn visit(
    job: &JobName,
    edges: &BTreeMap<&JobName, Vec<(JobName, &Spot)>>,
    marks: &mut BTreeMap<JobName, Mark>,
    path: &mut Vec<JobName>,
    errors: &mut Errors<'_>,
) {
    if marks.get(job) != Some(&Mark::Unvisited) {
        return;
    }
    marks.insert(job.clone(), Mark::OnPath);
    path.push(job.clone());
    for (target, spot) in edges.get(job).map(Vec::as_slice).unwrap_or_default() {
        match marks.get(target) {
            Some(Mark::OnPath) => {
                let start = path.iter().position(|on| on == target).unwrap_or(0);
                let cycle: Vec<String> = path[start..]
                    .iter()
                    .chain([target])
                    .map(JobName::to_string)
                    .collect();
                errors.at(spot, format!("dependency cycle: {}", cycle.join(" → ")));
            }
            Some(Mark::Unvisited) => visit(target, edges, marks, path, errors),
            _ => {}
        }
    }
    path.pop();
    marks.insert(job.clone(), Mark::Done);
}
