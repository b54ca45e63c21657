//! Which processes of a host belong to a job instance, and what they add up to.
//!
//! The rule: a job owns its shell, every process still in the shell's
//! process group or session, and every descendant (by parent pid) of any of
//! those. The shell leads its own group (and, over SSH, its own session).
//! - The tree alone would lose children whose parent died: they are
//!   reparented to init (or a container's init), yet keep running for the
//!   job (`cmd &` from a step that then exits, `nohup`, double forks).
//! - The group or session alone would lose children that moved out of it
//!   (`setsid`, a shell with job control giving each pipeline its own
//!   group), which still run under the shell.
//!
//! The union holds both, and it covers what stopping the job signals (its
//! process group). A pid that leads a live group or session is never given
//! to a new process, so a group id cannot point at a stranger.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{HostStats, JobStats, ProcessStats};
use crate::model::InstanceId;

/// Each job instance's CPU, memory and process count on `host`, given the
/// pid of its shell. A job none of whose processes is on the host (its shell
/// is gone, or not in the table yet) has no entry; a host without figures
/// gives none at all.
pub fn attribute(host: &HostStats, jobs: &[(InstanceId, u32)]) -> BTreeMap<InstanceId, JobStats> {
    let mut result = BTreeMap::new();
    if host.unavailable.is_some() {
        return result;
    }
    let index = Index::new(&host.processes);
    for (instance, shell) in jobs {
        let members = index.members(*shell);
        if members.is_empty() {
            continue;
        }
        let processes = members.iter().map(|&member| &host.processes[member]);
        let rates: Vec<f64> = processes.clone().filter_map(|p| p.cpu_percent).collect();
        result.insert(
            instance.clone(),
            JobStats {
                cpu_percent: (!rates.is_empty()).then(|| rates.iter().sum()),
                rss_bytes: processes.map(|p| p.rss_bytes).sum(),
                procs: u32::try_from(members.len()).unwrap_or(u32::MAX),
                at: host.at,
            },
        );
    }
    result
}

/// The pids of every process in the trees of `shells` (the shells
/// included when listed), by the same rule as [`attribute`], the table
/// indexed once for all of them.
pub fn pids_in_jobs(processes: &[ProcessStats], shells: &[u32]) -> HashSet<u32> {
    let index = Index::new(processes);
    shells
        .iter()
        .flat_map(|&shell| index.members(shell))
        .map(|member| processes[member].pid)
        .collect()
}

/// The job's processes as a tree to draw: (index into `processes`, depth),
/// parents before their children, the shell first. Processes whose parent
/// is not the job's (orphans kept by the group rule) are roots at depth 0.
pub fn job_tree(processes: &[ProcessStats], shell: u32) -> Vec<(usize, u32)> {
    let index = Index::new(processes);
    let members: BTreeSet<usize> = index.members(shell).into_iter().collect();
    let pids: BTreeSet<u32> = members.iter().map(|&m| processes[m].pid).collect();
    let mut roots: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&m| processes[m].pid == shell || !pids.contains(&processes[m].ppid))
        .collect();
    roots.sort_by_key(|&m| (processes[m].pid != shell, processes[m].pid));
    let mut order = Vec::with_capacity(members.len());
    let mut stack: Vec<(usize, u32)> = roots.into_iter().rev().map(|m| (m, 0)).collect();
    let mut placed = BTreeSet::new();
    while let Some((member, depth)) = stack.pop() {
        if !placed.insert(member) {
            continue;
        }
        order.push((member, depth));
        let mut children: Vec<usize> = index
            .children(processes[member].pid)
            .iter()
            .copied()
            .filter(|child| members.contains(child))
            .collect();
        children.sort_by_key(|&child| std::cmp::Reverse(processes[child].pid));
        stack.extend(children.into_iter().map(|child| (child, depth + 1)));
    }
    order
}

/// Lookups over one host's process table, built once for all its jobs.
struct Index<'a> {
    processes: &'a [ProcessStats],
    children: HashMap<u32, Vec<usize>>,
}

impl<'a> Index<'a> {
    fn new(processes: &'a [ProcessStats]) -> Index<'a> {
        let mut children: HashMap<u32, Vec<usize>> = HashMap::new();
        for (position, process) in processes.iter().enumerate() {
            // pid 0's "children" are init and kthreadd; a process is never
            // its own child.
            if process.ppid != 0 && process.ppid != process.pid {
                children.entry(process.ppid).or_default().push(position);
            }
        }
        Index {
            processes,
            children,
        }
    }

    fn children(&self, pid: u32) -> &[usize] {
        self.children.get(&pid).map_or(&[], Vec::as_slice)
    }

    /// Indexes of the job's processes (see the module doc for the rule).
    fn members(&self, shell: u32) -> Vec<usize> {
        // pid 1 and below are init and the kernel: never a job's shell.
        if shell <= 1 {
            return Vec::new();
        }
        let mut queue: Vec<usize> = self
            .processes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.pid == shell || p.pgid == shell || p.sid == shell)
            .map(|(position, _)| position)
            .collect();
        let mut members = BTreeSet::new();
        while let Some(member) = queue.pop() {
            if members.insert(member) {
                queue.extend_from_slice(self.children(self.processes[member].pid));
            }
        }
        members.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::model::{HostName, JobName};

    fn process(pid: u32, ppid: u32, pgid: u32, sid: u32, cpu: Option<f64>) -> ProcessStats {
        ProcessStats {
            pid,
            ppid,
            pgid,
            sid,
            state: 'S',
            comm: format!("p{pid}"),
            cpu_percent: cpu,
            rss_bytes: u64::from(pid) * 1000,
        }
    }

    fn host(processes: Vec<ProcessStats>) -> HostStats {
        HostStats {
            host: HostName("n1".into()),
            at: Instant::now(),
            load: None,
            cpu_percent: None,
            cores: None,
            mem_used: None,
            mem_total: None,
            unavailable: None,
            processes,
        }
    }

    fn instance(job: &str) -> InstanceId {
        InstanceId {
            job: JobName {
                system: "web".into(),
                job: job.into(),
            },
            host: HostName("n1".into()),
        }
    }

    /// sshd (7) runs two job shells, 100 and 200, each leading its own
    /// group and session.
    fn table() -> Vec<ProcessStats> {
        vec![
            process(1, 0, 1, 1, Some(0.0)),
            process(7, 1, 7, 7, Some(1.0)),
            // Job A: shell 100 → make 101 → cc 102 (busy grandchild).
            process(100, 7, 100, 100, Some(0.0)),
            process(101, 100, 100, 100, Some(2.0)),
            process(102, 101, 100, 100, Some(97.0)),
            // An orphan of job A, reparented to init, still in its group.
            process(103, 1, 100, 100, Some(5.0)),
            // A child of job A that called setsid: its own group and session.
            process(104, 100, 104, 104, Some(10.0)),
            // ... and that one's child.
            process(105, 104, 104, 104, None),
            // Job B.
            process(200, 7, 200, 200, Some(0.5)),
            // A stranger.
            process(300, 1, 300, 300, Some(50.0)),
        ]
    }

    #[test]
    fn a_job_owns_its_tree_its_group_and_their_descendants() {
        let stats = attribute(
            &host(table()),
            &[(instance("a"), 100), (instance("b"), 200)],
        );
        let a = &stats[&instance("a")];
        assert_eq!(a.procs, 6, "100..=105");
        assert_eq!(a.cpu_percent, Some(114.0));
        assert_eq!(a.rss_bytes, (100..=105).sum::<u64>() * 1000);
        let b = &stats[&instance("b")];
        assert_eq!(
            (b.procs, b.cpu_percent, b.rss_bytes),
            (1, Some(0.5), 200_000)
        );
    }

    #[test]
    fn a_job_whose_shell_is_gone_keeps_its_leftovers() {
        let mut processes = table();
        processes.retain(|p| p.pid != 100);
        let stats = attribute(&host(processes), &[(instance("a"), 100)]);
        // 101, 102 and 103 are still in group 100; 104 and 105 left it.
        assert_eq!(stats[&instance("a")].procs, 3);
    }

    #[test]
    fn unknown_shells_init_and_failed_hosts_give_nothing() {
        let stats = attribute(
            &host(table()),
            &[
                (instance("gone"), 999),
                (instance("init"), 1),
                (instance("zero"), 0),
            ],
        );
        assert!(stats.is_empty(), "{stats:?}");
        let mut failed = host(table());
        failed.unavailable = Some("connection lost".into());
        assert!(attribute(&failed, &[(instance("a"), 100)]).is_empty());
    }

    #[test]
    fn cpu_is_unknown_until_some_process_has_a_rate() {
        let processes = vec![
            process(100, 7, 100, 100, None),
            process(101, 100, 100, 100, None),
        ];
        let stats = attribute(&host(processes), &[(instance("a"), 100)]);
        assert_eq!(stats[&instance("a")].cpu_percent, None);
    }

    #[test]
    fn a_pid_cycle_in_a_broken_table_ends() {
        let processes = vec![
            process(100, 101, 100, 100, None),
            process(101, 100, 100, 100, None),
        ];
        assert_eq!(
            attribute(&host(processes), &[(instance("a"), 100)])[&instance("a")].procs,
            2
        );
    }

    #[test]
    fn the_tree_to_draw_puts_parents_first_and_orphans_as_roots() {
        let processes = table();
        let drawn: Vec<(u32, u32)> = job_tree(&processes, 100)
            .into_iter()
            .map(|(member, depth)| (processes[member].pid, depth))
            .collect();
        assert_eq!(
            drawn,
            vec![(100, 0), (101, 1), (102, 2), (104, 1), (105, 2), (103, 0)]
        );
    }
}
