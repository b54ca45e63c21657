//! CPU and memory as the UI shows them, read from the supervisor's state in
//! this one place. The stats pollers fill the state in; until a
//! host's first poll, or when its poller failed, these return `None` and the
//! screens show "-".

use crate::model::HostName;
use crate::supervisor::{Instance, State};

/// A job instance's share of its host: the whole process tree under its shell.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobFigures {
    /// 100 = one core; `None` until two samples were compared.
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// The tree under the job's shell, parents before children.
    pub processes: Vec<ProcessFigures>,
}

/// One process of a job's tree, for the host view.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessFigures {
    pub pid: u32,
    /// How deep under the job's shell (the shell is 0).
    pub depth: usize,
    pub command: String,
    pub cpu_percent: Option<f64>,
    pub rss_bytes: u64,
}

/// A host as a whole.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostFigures {
    /// Load average over 1, 5 and 15 minutes.
    pub load: Option<[f64; 3]>,
    /// 0–100, 100 = every core busy.
    pub cpu_percent: Option<f64>,
    pub cores: Option<u32>,
    pub mem_used: Option<u64>,
    pub mem_total: Option<u64>,
    /// Why there are no figures (the poller failed), if it said.
    pub unavailable: Option<String>,
}

/// The figures of `instance`, if the state has any: the one place the UI
/// reads a job's CPU and memory. With `processes`, also its process tree
/// (costlier: only the host view asks for it).
pub fn job_figures(state: &State, instance: &Instance, processes: bool) -> Option<JobFigures> {
    let stats = instance.stats.as_ref()?;
    let tree = match (processes, state.host_stats(&instance.id.host), instance.pid) {
        (true, Some(host), Some(shell)) if instance.is_live() => {
            crate::stats::tree::job_tree(&host.processes, shell)
                .into_iter()
                .filter_map(|(index, depth)| {
                    let process = host.processes.get(index)?;
                    Some(ProcessFigures {
                        pid: process.pid,
                        depth: usize::try_from(depth).unwrap_or(usize::MAX),
                        command: process.comm.clone(),
                        cpu_percent: process.cpu_percent,
                        rss_bytes: process.rss_bytes,
                    })
                })
                .collect()
        }
        _ => Vec::new(),
    };
    Some(JobFigures {
        cpu_percent: stats.cpu_percent,
        rss_bytes: Some(stats.rss_bytes),
        processes: tree,
    })
}

/// The figures of `host`, if the state has any: the one place the UI reads
/// a host's load, CPU and memory.
pub fn host_figures(state: &State, host: &HostName) -> Option<HostFigures> {
    let stats = state.host_stats(host)?;
    Some(HostFigures {
        load: stats.load,
        cpu_percent: stats.cpu_percent,
        cores: stats.cores,
        mem_used: stats.mem_used,
        mem_total: stats.mem_total,
        unavailable: stats.unavailable.clone(),
    })
}
