//! Which job instances a command acts on: TARGET is `system`, `system.job` or
//! `system.job@host`; no target means every system with `autostart = true`.

use std::collections::BTreeSet;

use crate::config::Plan;
use crate::model::{HostName, InstanceId, JobName};

/// The instances `targets` name, plus the jobs they come `after` (a job is
/// not run without what it depends on), in plan order.
pub fn select(plan: &Plan, targets: &[String]) -> Result<Vec<InstanceId>, String> {
    let mut chosen: BTreeSet<InstanceId> = BTreeSet::new();
    if targets.is_empty() {
        for job in &plan.jobs {
            if plan
                .system(&job.name.system)
                .is_some_and(|system| system.autostart)
            {
                chosen.extend(instances_of(plan, &job.name));
            }
        }
    }
    for target in targets {
        chosen.extend(resolve(plan, target)?);
    }
    // Pull in dependencies until nothing changes.
    loop {
        let mut missing = Vec::new();
        for id in &chosen {
            let Some(job) = plan.job(&id.job) else {
                continue;
            };
            for dependency in &job.after {
                if !chosen.iter().any(|other| &other.job == dependency) {
                    missing.extend(instances_of(plan, dependency));
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        chosen.extend(missing);
    }
    let mut ordered = Vec::new();
    for job in &plan.jobs {
        for host in &job.hosts {
            let id = InstanceId {
                job: job.name.clone(),
                host: host.clone(),
            };
            if chosen.contains(&id) {
                ordered.push(id);
            }
        }
    }
    Ok(ordered)
}

fn instances_of(plan: &Plan, name: &JobName) -> Vec<InstanceId> {
    plan.job(name)
        .map(|job| {
            job.hosts
                .iter()
                .map(|host| InstanceId {
                    job: name.clone(),
                    host: host.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The instances one TARGET names (`system`, `system.job`, `system.job@host`),
/// without what they depend on.
pub fn resolve(plan: &Plan, target: &str) -> Result<Vec<InstanceId>, String> {
    let (name, host) = match target.split_once('@') {
        Some((name, host)) => (name, Some(HostName(host.to_string()))),
        None => (target, None),
    };
    let found: Vec<InstanceId> = match name.split_once('.') {
        None => {
            if plan.system(name).is_none() {
                let known: Vec<&str> = plan
                    .systems
                    .iter()
                    .map(|system| system.name.as_str())
                    .collect();
                return Err(format!(
                    "no system named {name:?} (systems: {})",
                    known.join(", ")
                ));
            }
            plan.jobs
                .iter()
                .filter(|job| job.name.system == name)
                .flat_map(|job| instances_of(plan, &job.name))
                .collect()
        }
        Some((system, job)) => {
            let job_name = JobName {
                system: system.to_string(),
                job: job.to_string(),
            };
            if plan.job(&job_name).is_none() {
                return Err(format!("no job named {job_name}"));
            }
            instances_of(plan, &job_name)
        }
    };
    match host {
        None => Ok(found),
        Some(host) => {
            let on_host: Vec<InstanceId> = found.into_iter().filter(|id| id.host == host).collect();
            if on_host.is_empty() {
                Err(format!("{name} does not run on host {host}"))
            } else {
                Ok(on_host)
            }
        }
    }
}
