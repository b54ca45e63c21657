//! The stats poller for this machine: the same [`HostStats`] as a remote
//! host's, read with `sysinfo` instead of `poll.awk`, so local jobs get the
//! same figures and the same attribution.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sysinfo::{MemoryRefreshKind, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::HostStats;
use super::parse::{HostCpu, ProcSample, Snapshot, Source};
use super::rate::measure;
use crate::model::HostName;

/// `sysinfo` gives CPU time in milliseconds: the local clock tick.
const LOCAL_TICKS: u64 = 1000;

/// Reads this machine every `every` and sends a [`HostStats`] each time.
/// Ends when `tx`'s receiver is dropped.
pub fn spawn_local_poller(
    host: HostName,
    every: Duration,
    tx: mpsc::Sender<HostStats>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader: Option<LocalReader> = None;
        let mut previous: Option<(Snapshot, Instant)> = None;
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(200)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = tx.closed() => return,
            }
            // Reading /proc blocks: off the runtime's threads.
            let taken = reader.take();
            let read = tokio::task::spawn_blocking(move || {
                let mut reader = match taken {
                    Some(reader) => reader,
                    None => LocalReader::new().map_err(|error| error.to_string())?,
                };
                let snapshot = reader.read();
                Ok::<_, String>((reader, snapshot))
            })
            .await
            .unwrap_or_else(|panic| Err(panic.to_string()));
            let at = Instant::now();
            let stats = match read {
                Ok((kept, snapshot)) => {
                    reader = Some(kept);
                    let before = previous.as_ref().map(|(snapshot, at)| (snapshot, *at));
                    let stats = measure(host.clone(), before, &snapshot, at);
                    previous = Some((snapshot, at));
                    stats
                }
                Err(error) => {
                    previous = None;
                    HostStats::unavailable(
                        host.clone(),
                        at,
                        format!("reading this machine failed: {error}"),
                    )
                }
            };
            if tx.send(stats).await.is_err() {
                return;
            }
        }
    })
}

/// A `sysinfo` view of this machine, kept between polls (it needs the last
/// reading for the host's CPU%).
pub struct LocalReader {
    system: System,
    polls: u64,
}

impl LocalReader {
    pub fn new() -> Result<LocalReader, sysinfo::Error> {
        Ok(LocalReader {
            system: System::new()?,
            polls: 0,
        })
    }

    /// One snapshot of this machine, in the units of [`Source::Local`]:
    /// CPU time and starts in milliseconds.
    pub fn read(&mut self) -> Snapshot {
        // Before the processes: a child reaped in between is then simply
        // gone from the list, its time in the next reading of its parent's,
        // never in both.
        let children = children_times();
        let system = &mut self.system;
        system.refresh_cpu_usage();
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            // Threads are not processes here: their time is in their
            // process's already.
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .without_tasks(),
        );
        self.polls += 1;
        let processes = system
            .processes()
            .values()
            .filter(|process| process.thread_kind() != Some(sysinfo::ThreadKind::Userland))
            .map(|process| {
                let pid = process.pid().as_u32();
                ProcSample {
                    pid,
                    ppid: process.parent().map_or(0, |parent| parent.as_u32()),
                    pgid: process_group(pid),
                    sid: process.session_id().map_or(0, |sid| sid.as_u32()),
                    state: state_letter(process.status()),
                    comm: process.name().to_string_lossy().into_owned(),
                    cpu_ticks: process.accumulated_cpu_time(),
                    children_ticks: children.get(&pid).copied(),
                    start: process.start_time().saturating_mul(LOCAL_TICKS),
                    rss_bytes: process.memory(),
                }
            })
            .collect();
        let load = System::load_average();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
            .ok();
        Snapshot {
            source: Source::Local,
            clock_ticks: LOCAL_TICKS,
            now,
            load: load.ok().map(|load| [load.one, load.five, load.fifteen]),
            // sysinfo's usage is a rate since its last refresh: none on the first.
            cpu: (self.polls > 1).then(|| HostCpu::Percent(f64::from(system.global_cpu_usage()))),
            cores: u32::try_from(system.cpus().len())
                .ok()
                .filter(|&cores| cores > 0),
            mem_total: Some(system.total_memory()).filter(|&total| total > 0),
            mem_available: Some(system.available_memory()).filter(|_| system.total_memory() > 0),
            processes,
            skipped: 0,
        }
    }
}

/// Every process's reaped children's CPU time (`cutime`+`cstime`), in
/// milliseconds, by pid: `sysinfo` does not read it, `/proc` has it.
#[cfg(target_os = "linux")]
fn children_times() -> HashMap<u32, u64> {
    // SAFETY: sysconf(3) takes a plain integer and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let Ok(ticks) = u64::try_from(ticks) else {
        return HashMap::new();
    };
    if ticks == 0 {
        return HashMap::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((
                pid,
                children_ticks(&stat)?.saturating_mul(LOCAL_TICKS) / ticks,
            ))
        })
        .collect()
}

/// Elsewhere `sysinfo` is all there is: no children's time.
#[cfg(not(target_os = "linux"))]
fn children_times() -> HashMap<u32, u64> {
    HashMap::new()
}

/// cutime + cstime (fields 16 and 17) of a `/proc/PID/stat` line, in clock
/// ticks. The comm (field 2) may hold anything: the fields after it start
/// after the last `)`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn children_ticks(stat: &str) -> Option<u64> {
    let (_, tail) = stat.rsplit_once(')')?;
    let mut fields = tail.split_whitespace().skip(13);
    let cutime: u64 = fields.next()?.parse().ok()?;
    let cstime: u64 = fields.next()?.parse().ok()?;
    cutime.checked_add(cstime)
}

/// The process group of `pid`, 0 if it is gone; `sysinfo` does not read it.
fn process_group(pid: u32) -> u32 {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return 0;
    };
    // SAFETY: getpgid(2) takes a plain integer and touches no memory of ours.
    let group = unsafe { libc::getpgid(pid) };
    u32::try_from(group).unwrap_or(0)
}

fn state_letter(status: ProcessStatus) -> char {
    match status {
        ProcessStatus::Run => 'R',
        ProcessStatus::Sleep => 'S',
        ProcessStatus::Idle => 'I',
        ProcessStatus::Stop => 'T',
        ProcessStatus::Zombie => 'Z',
        ProcessStatus::Tracing => 't',
        ProcessStatus::Dead => 'X',
        ProcessStatus::Wakekill => 'K',
        ProcessStatus::Waking => 'W',
        ProcessStatus::Parked => 'P',
        ProcessStatus::UninterruptibleDiskSleep => 'D',
        _ => '?',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_reads_with_pids_groups_and_memory() {
        let mut reader = LocalReader::new().expect("sysinfo works here");
        let first = reader.read();
        assert_eq!(first.cpu, None);
        let snapshot = reader.read();
        assert!(matches!(snapshot.cpu, Some(HostCpu::Percent(_))));
        let own = std::process::id();
        let me = snapshot
            .processes
            .iter()
            .find(|p| p.pid == own)
            .expect("the test process");
        // SAFETY: getpgid(0) and getsid(0) ask about the caller; plain integers.
        let (group, session) = unsafe { (libc::getpgid(0), libc::getsid(0)) };
        assert_eq!(i64::from(me.pgid), i64::from(group), "{me:?}");
        // Under a pid namespace whose session leader lives outside it (a
        // container, a CI runner) the kernel says 0: compare, never assume.
        assert_eq!(i64::from(me.sid), i64::from(session), "{me:?}");
        assert!(me.rss_bytes > 1024 * 1024, "{me:?}");
        assert!(snapshot.mem_total.is_some() && snapshot.load.is_some());
        // Threads of this test binary are not rows of their own.
        let tids = std::fs::read_dir("/proc/self/task").map_or(0, |dir| dir.count());
        let rows = snapshot.processes.iter().filter(|p| p.pid == own).count();
        assert_eq!(rows, 1, "{tids} threads, one row");
    }

    #[test]
    fn the_childrens_time_is_read_past_any_comm() {
        let stat = "3746 (a) b (c) S 0 3746 3746 0 -1 4194560 1036 261 0 3 1 1 392 1 \
                    20 0 1 0 386359 2654208 378";
        assert_eq!(children_ticks(stat), Some(393));
        assert_eq!(children_ticks("3746 (sh) S 0 3746"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine_tells_the_time_of_reaped_children() {
        // A child that burns some CPU and is reaped: this test's own
        // cutime+cstime grows by it.
        let before = children_times().get(&std::process::id()).copied();
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .expect("run a busy child");
        assert!(status.success());
        let after = children_times().get(&std::process::id()).copied();
        let (Some(before), Some(after)) = (before, after) else {
            panic!("no children's time for this test: {before:?} {after:?}");
        };
        assert!(after > before, "{before} ms then {after} ms");
    }

    #[tokio::test]
    async fn local_jobs_get_rates_like_remote_ones() {
        let (tx, mut rx) = mpsc::channel(4);
        let poller = spawn_local_poller(HostName("local".into()), Duration::from_millis(300), tx);
        // A busy child of this test: one core.
        let mut spin = std::process::Command::new("/bin/sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("spawn a busy loop");
        let pid = spin.id();
        let mut seen = None;
        for _ in 0..10 {
            let stats = rx.recv().await.expect("stats");
            if let Some(rate) = stats
                .processes
                .iter()
                .find(|p| p.pid == pid)
                .and_then(|p| p.cpu_percent)
            {
                seen = Some(rate);
                break;
            }
        }
        let _ = spin.kill();
        let _ = spin.wait();
        drop(rx);
        let _ = poller.await;
        let rate = seen.expect("a rate for the busy loop");
        // 2 cores shared with builds and other tests: well above idle will do.
        assert!(rate > 10.0 && rate < 130.0, "{rate}");
    }
}
