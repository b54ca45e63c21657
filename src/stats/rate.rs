//! CPU% as the recent rate, like top: the CPU time a process used between
//! two snapshots over the wall time between them (100% = one core), never
//! `ps`'s lifetime average. Pure.
//!
//! A process is known by its pid AND its start time, so a new process that
//! got an old pid never inherits the old one's CPU time. One seen for the
//! first time counts from there (no rate yet), except one that started
//! after the previous snapshot: all of its CPU time is then inside the
//! interval.
//!
//! Children too short-lived for any poll to see (a shell loop forking
//! `date`, a `make -j4`'s compilers) would read as nothing: their CPU time
//! lands in their parent's `cutime`+`cstime` when it reaps them. So a
//! process's delta counts the growth of those too, minus the part of it that
//! was already counted: the time, up to the previous snapshot, of the
//! children seen there that have vanished since (see `already_counted`). A
//! child never seen counts whole; one seen counts only what it used after.

use std::collections::HashMap;
use std::time::Instant;

use super::parse::{HostCpu, ProcSample, Snapshot, Source};
use super::{HostStats, ProcessStats};
use crate::model::HostName;

/// Turns a snapshot into what the rest of zap sees, with the rates against
/// the previous snapshot of the same poller (`None` for its first).
pub fn measure(
    host: HostName,
    previous: Option<(&Snapshot, Instant)>,
    current: &Snapshot,
    at: Instant,
) -> HostStats {
    let rates = previous
        .and_then(|(before, before_at)| {
            let seconds = elapsed_seconds(before, before_at, current, at)?;
            Some(process_rates(before, current, seconds))
        })
        .unwrap_or_else(|| vec![None; current.processes.len()]);
    let processes = current
        .processes
        .iter()
        .zip(rates)
        .map(|(sample, cpu_percent)| ProcessStats {
            pid: sample.pid,
            ppid: sample.ppid,
            pgid: sample.pgid,
            sid: sample.sid,
            state: sample.state,
            comm: sample.comm.clone(),
            cpu_percent,
            rss_bytes: sample.rss_bytes,
        })
        .collect();
    HostStats {
        host,
        at,
        load: current.load,
        cpu_percent: host_cpu_percent(previous.map(|(before, _)| before), current),
        cores: current.cores,
        mem_used: current
            .mem_total
            .zip(current.mem_available)
            .map(|(total, available)| total.saturating_sub(available)),
        mem_total: current.mem_total,
        // A process table with nothing in it is a reader that saw nothing
        // (no /proc, no ps), never a host at rest: its jobs get no figures
        // rather than a silent zero.
        unavailable: current
            .processes
            .is_empty()
            .then(|| "the host's process table read as empty".to_string()),
        processes,
    }
}

/// The wall time between two snapshots, in seconds: the host's own clock
/// when both read `/proc/uptime` (it does not carry the network's jitter),
/// else the times zap received them. `None` if no time passed.
pub fn elapsed_seconds(
    before: &Snapshot,
    before_at: Instant,
    after: &Snapshot,
    after_at: Instant,
) -> Option<f64> {
    if before.source == Source::Proc
        && after.source == Source::Proc
        && before.clock_ticks == after.clock_ticks
        && let (Some(then), Some(now)) = (before.now, after.now)
        && now > then
    {
        return Some((now - then) as f64 / after.clock_ticks as f64);
    }
    let seconds = after_at.saturating_duration_since(before_at).as_secs_f64();
    (seconds > 0.0).then_some(seconds)
}

/// Each process of `after`: its CPU% over the `seconds` since `before`, or
/// `None` when there is no earlier figure to compare with.
///
/// A process's delta is its own CPU time's growth plus what its reaped
/// children brought to its `cutime`+`cstime` (see the module doc), so a
/// child too short-lived for any poll to see still counts.
pub fn process_rates(before: &Snapshot, after: &Snapshot, seconds: f64) -> Vec<Option<f64>> {
    if before.source != after.source || before.clock_ticks != after.clock_ticks || seconds <= 0.0 {
        return vec![None; after.processes.len()];
    }
    let percent = |ticks: u64| ticks as f64 / after.clock_ticks as f64 / seconds * 100.0;
    let slack = after.source.start_slack(after.clock_ticks);
    let earlier: HashMap<u32, &ProcSample> = before
        .processes
        .iter()
        .map(|sample| (sample.pid, sample))
        .collect();
    let later: HashMap<u32, &ProcSample> = after
        .processes
        .iter()
        .map(|sample| (sample.pid, sample))
        .collect();
    let owed = already_counted(&earlier, &later, slack);
    // What reaped children can have brought in one interval at most: every
    // core busy all along. A bound on the guesses of `already_counted`.
    let children_max = after
        .cores
        .map(|cores| (f64::from(cores) * seconds * after.clock_ticks as f64).ceil() as u64);
    after
        .processes
        .iter()
        .map(|sample| match earlier.get(&sample.pid) {
            // The same process, its counter moving forward as counters do.
            // A counter that went back (wrapped, or a glitch) is a new start.
            Some(seen)
                if same_process(seen, sample, slack) && sample.cpu_ticks >= seen.cpu_ticks =>
            {
                let own = sample.cpu_ticks - seen.cpu_ticks;
                // Children's time that went back has no baseline: none counts.
                let reaped = match (seen.children_ticks, sample.children_ticks) {
                    (Some(then), Some(now)) if now >= then => {
                        (now - then).saturating_sub(owed.get(&sample.pid).copied().unwrap_or(0))
                    }
                    _ => 0,
                };
                let reaped = children_max.map_or(reaped, |max| reaped.min(max));
                Some(percent(own.saturating_add(reaped)))
            }
            // New, or a new process under an old pid: all of its time is
            // in the interval only if it started inside it, and then so is
            // all the time of the children it reaped.
            _ => before
                .now
                .filter(|&then| sample.start >= then.saturating_add(slack))
                .map(|_| {
                    percent(
                        sample
                            .cpu_ticks
                            .saturating_add(sample.children_ticks.unwrap_or(0)),
                    )
                }),
        })
        .collect()
}

/// One process in two snapshots: the same pid and start.
fn same_process(before: &ProcSample, after: &ProcSample, slack: u64) -> bool {
    before.start.abs_diff(after.start) <= slack
}

/// The CPU time that will show up in survivors' `cutime`+`cstime` but was
/// already counted, by surviving pid: each process of `before` that is gone
/// from `after` was reaped, and its total (its own time and its reaped
/// children's) up to `before` had its rate then. Its reaper is its parent,
/// or, when the parent is gone too (and reaped it first), the parent's
/// reaper: the nearest ancestor in `before` still alive. Only the rest of
/// its time, used after `before`, is new.
///
/// A process whose parent died before reaping it went to init (or a
/// subreaper) instead: its ancestor then counts less than it should (never
/// below its own time) and init more. With no surviving ancestor in the
/// table, its time is lost, as top loses it.
fn already_counted(
    earlier: &HashMap<u32, &ProcSample>,
    later: &HashMap<u32, &ProcSample>,
    slack: u64,
) -> HashMap<u32, u64> {
    let alive = |sample: &ProcSample| {
        later
            .get(&sample.pid)
            .is_some_and(|now| same_process(sample, now, slack))
    };
    let mut owed: HashMap<u32, u64> = HashMap::new();
    for gone in earlier.values().filter(|sample| !alive(sample)) {
        let total = gone
            .cpu_ticks
            .saturating_add(gone.children_ticks.unwrap_or(0));
        let mut parent = gone.ppid;
        // A broken table may hold a cycle: no chain is longer than the table.
        for _ in 0..earlier.len() {
            let Some(ancestor) = earlier.get(&parent).filter(|_| parent != 0) else {
                break;
            };
            if alive(ancestor) {
                let entry = owed.entry(ancestor.pid).or_default();
                *entry = entry.saturating_add(total);
                break;
            }
            parent = ancestor.ppid;
        }
    }
    owed
}

/// The host's CPU use over the interval, 0–100 for all cores together.
pub fn host_cpu_percent(before: Option<&Snapshot>, after: &Snapshot) -> Option<f64> {
    let (before, after): (HostCpu, HostCpu) = (before?.cpu?, after.cpu?);
    let total = after
        .total
        .checked_sub(before.total)
        .filter(|&total| total > 0)?;
    let busy = after.busy.checked_sub(before.busy)?;
    Some((busy as f64 / total as f64 * 100.0).min(100.0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn process(pid: u32, start: u64, cpu_ticks: u64) -> ProcSample {
        ProcSample {
            pid,
            ppid: 1,
            pgid: pid,
            sid: pid,
            state: 'S',
            comm: format!("p{pid}"),
            cpu_ticks,
            children_ticks: None,
            start,
            rss_bytes: 4096,
        }
    }

    /// A `/proc` snapshot taken `uptime` seconds after boot, 100 ticks/s.
    fn snapshot(uptime: u64, processes: Vec<ProcSample>) -> Snapshot {
        Snapshot {
            source: Source::Proc,
            clock_ticks: 100,
            now: Some(uptime * 100),
            load: Some([0.5, 0.4, 0.3]),
            cpu: None,
            cores: Some(2),
            mem_total: Some(1000),
            mem_available: Some(400),
            processes,
            kernel_threads: Vec::new(),
            skipped: 0,
        }
    }

    fn rates(before: &Snapshot, after: &Snapshot) -> Vec<Option<f64>> {
        let at = Instant::now();
        let seconds = elapsed_seconds(before, at, after, at).expect("time passed");
        process_rates(before, after, seconds)
    }

    fn close(value: Option<f64>, expected: f64) -> bool {
        value.is_some_and(|value| (value - expected).abs() < 0.01)
    }

    #[test]
    fn rate_is_the_delta_over_the_interval() {
        // 2 s apart; 150 ticks = 1.5 s of CPU = 75%, 400 ticks = two cores.
        let before = snapshot(100, vec![process(10, 50, 1000), process(11, 60, 0)]);
        let after = snapshot(102, vec![process(10, 50, 1150), process(11, 60, 400)]);
        let got = rates(&before, &after);
        assert!(close(got[0], 75.0), "{got:?}");
        assert!(close(got[1], 200.0), "{got:?}");
    }

    #[test]
    fn a_process_that_slept_a_minute_then_spins_reads_a_full_core() {
        // Started at 10 s, slept until 70 s (1 tick used), then spins.
        let slept = snapshot(70, vec![process(10, 1000, 1)]);
        let spinning = snapshot(72, vec![process(10, 1000, 201)]);
        let got = rates(&slept, &spinning);
        assert!(close(got[0], 100.0), "{got:?}");
        // And drops back once it stops.
        let stopped = snapshot(74, vec![process(10, 1000, 201)]);
        assert!(close(rates(&spinning, &stopped)[0], 0.0));
    }

    #[test]
    fn a_new_process_with_an_old_pid_never_inherits_its_cpu_time() {
        // pid 10 ran 5000 ticks and exited; a new pid 10 started at 101 s
        // (inside the interval) and used 20 ticks: 10%, not 5020 ticks.
        let before = snapshot(100, vec![process(10, 500, 5000)]);
        let after = snapshot(102, vec![process(10, 10_100, 20)]);
        assert!(close(rates(&before, &after)[0], 10.0));
        // Even when its counter is above the old one's: 150 ticks of its
        // own (75%), not 150 - 100 (25%).
        let before = snapshot(100, vec![process(10, 500, 100)]);
        let after = snapshot(102, vec![process(10, 10_100, 150)]);
        let got = rates(&before, &after);
        assert!(close(got[0], 75.0), "counted from its own start: {got:?}");
    }

    /// A process of the family tests: `ppid`'s child, with `children`
    /// ticks of reaped children of its own.
    fn family(pid: u32, ppid: u32, start: u64, cpu_ticks: u64, children: u64) -> ProcSample {
        ProcSample {
            ppid,
            children_ticks: Some(children),
            ..process(pid, start, cpu_ticks)
        }
    }

    fn rate_of(before: &Snapshot, after: &Snapshot, pid: u32) -> Option<f64> {
        let position = after.processes.iter().position(|p| p.pid == pid)?;
        rates(before, after)[position]
    }

    #[test]
    fn a_reaped_child_never_seen_counts_whole_in_its_parent() {
        // A shell loop forking `date`s that each live a few ms: none is in
        // any snapshot; 150 ticks of them reaped, and 10 of the shell's own.
        let before = snapshot(100, vec![family(10, 1, 500, 0, 0)]);
        let after = snapshot(102, vec![family(10, 1, 500, 10, 150)]);
        assert!(close(rate_of(&before, &after, 10), 80.0));
    }

    #[test]
    fn a_reaped_child_seen_before_counts_only_its_time_since() {
        // Child 11 had used 100 ticks (counted in earlier rates), used 60
        // more, and was reaped: the parent's cutime grew by 160.
        let before = snapshot(
            100,
            vec![family(10, 1, 500, 0, 0), family(11, 10, 9900, 100, 0)],
        );
        let after = snapshot(102, vec![family(10, 1, 500, 0, 160)]);
        assert!(close(rate_of(&before, &after, 10), 30.0));
        // Over the three snapshots, the child's 160 ticks count once: 100
        // while it was seen (born in the first interval), 60 after.
        let first = snapshot(98, vec![family(10, 1, 500, 0, 0)]);
        let seen = rate_of(&first, &before, 11).expect("born inside");
        let reaped = rate_of(&before, &after, 10).expect("the parent");
        assert!(close(Some((seen + reaped) * 2.0), 160.0));
    }

    #[test]
    fn grandchildren_reaped_with_their_parent_count_once() {
        // 11 (50 ticks seen) reaped 12 (30 ticks seen), each having used 20
        // and 10 more, and 10 reaped 11: 10's cutime grew by 50+20 of 11's
        // own and 30+10 of 11's cutime.
        let before = snapshot(
            100,
            vec![
                family(10, 1, 500, 0, 0),
                family(11, 10, 9000, 50, 0),
                family(12, 11, 9100, 30, 0),
            ],
        );
        let after = snapshot(102, vec![family(10, 1, 500, 0, 110)]);
        assert!(close(rate_of(&before, &after, 10), 15.0));
    }

    #[test]
    fn a_parent_that_vanished_takes_its_reaped_childrens_time_along() {
        // 20 (whose parent is not in the table) reaped a child, then went
        // itself: no surviving ancestor, nobody's cutime shows it, and no
        // one else's rate moves (lost, as top loses it).
        let before = snapshot(
            100,
            vec![
                family(10, 1, 500, 40, 7),
                family(20, 999, 600, 50, 10),
                family(21, 20, 9000, 30, 0),
            ],
        );
        let after = snapshot(102, vec![family(10, 1, 500, 40, 7)]);
        assert_eq!(rates(&before, &after), vec![Some(0.0)]);
    }

    #[test]
    fn a_reused_pid_is_a_vanished_child_and_a_new_one() {
        // Old 11 (100 ticks seen) used 30 more and was reaped; a new 11,
        // born inside the interval, used 20 and still runs.
        let before = snapshot(
            100,
            vec![family(10, 1, 500, 0, 0), family(11, 10, 9000, 100, 0)],
        );
        let after = snapshot(
            102,
            vec![family(10, 1, 500, 0, 130), family(11, 10, 10_100, 20, 0)],
        );
        let got = rates(&before, &after);
        assert!(close(got[0], 15.0), "{got:?}");
        assert!(close(got[1], 10.0), "{got:?}");
    }

    #[test]
    fn a_process_born_inside_the_interval_counts_its_reaped_children_too() {
        let before = snapshot(100, vec![family(10, 1, 500, 0, 0)]);
        let after = snapshot(
            102,
            vec![family(10, 1, 500, 0, 0), family(11, 10, 10_050, 20, 60)],
        );
        assert!(close(rate_of(&before, &after, 11), 40.0));
    }

    #[test]
    fn childrens_time_that_goes_back_or_is_unknown_adds_nothing() {
        // Gone back: the process's own time still counts.
        let before = snapshot(100, vec![family(10, 1, 500, 0, 500)]);
        let after = snapshot(102, vec![family(10, 1, 500, 40, 100)]);
        assert!(close(rate_of(&before, &after, 10), 20.0));
        // Not told (`ps`, an older poller's line) on either side.
        let mut unknown = family(10, 1, 500, 40, 0);
        unknown.children_ticks = None;
        let after = snapshot(102, vec![unknown.clone()]);
        assert!(close(rate_of(&before, &after, 10), 20.0));
        let before = snapshot(
            100,
            vec![ProcSample {
                cpu_ticks: 0,
                ..unknown
            }],
        );
        let after = snapshot(102, vec![family(10, 1, 500, 40, 900)]);
        assert!(close(rate_of(&before, &after, 10), 20.0));
    }

    #[test]
    fn childrens_time_never_counts_more_than_every_core_busy() {
        // A child seen once but left out of the previous snapshot (its stat
        // was unreadable) had 5000 ticks of earlier life: at most 2 cores
        // × 2 s = 400 ticks of it can be new.
        let before = snapshot(100, vec![family(10, 1, 500, 0, 0)]);
        let after = snapshot(102, vec![family(10, 1, 500, 0, 5000)]);
        assert!(close(rate_of(&before, &after, 10), 200.0));
    }

    #[test]
    fn a_counter_that_goes_back_is_a_new_process_counted_from_first_sight() {
        // A 32-bit host's utime wraps after 2^32 ticks; same pid and start.
        let before = snapshot(100, vec![process(10, 500, u64::from(u32::MAX) - 10)]);
        let after = snapshot(102, vec![process(10, 500, 30)]);
        assert_eq!(rates(&before, &after), vec![None]);
        // The next poll has a baseline again.
        let later = snapshot(104, vec![process(10, 500, 130)]);
        assert!(close(rates(&after, &later)[0], 50.0));
    }

    #[test]
    fn processes_missing_from_one_snapshot_count_from_first_sight() {
        // pid 11 ran since 50 s but its stat could not be read before.
        let before = snapshot(100, vec![process(10, 500, 0)]);
        let after = snapshot(102, vec![process(10, 500, 0), process(11, 5000, 900)]);
        assert_eq!(rates(&before, &after), vec![Some(0.0), None]);
        // A process gone from the later snapshot simply has no row.
        let gone = snapshot(104, vec![process(11, 5000, 1000)]);
        assert!(close(rates(&after, &gone)[0], 50.0));
    }

    #[test]
    fn a_process_born_inside_the_interval_counts_all_its_time() {
        let before = snapshot(100, vec![]);
        let after = snapshot(102, vec![process(12, 10_050, 80)]);
        assert!(close(rates(&before, &after)[0], 40.0));
    }

    #[test]
    fn clock_ticks_other_than_100_scale_the_rate() {
        let mut before = snapshot(100, vec![process(10, 500, 1000)]);
        let mut after = snapshot(102, vec![process(10, 500, 1250)]);
        for snapshot in [&mut before, &mut after] {
            snapshot.clock_ticks = 250;
            snapshot.now = snapshot.now.map(|now| now / 100 * 250);
        }
        // 250 ticks at 250/s = 1 s of CPU in 2 s.
        assert!(close(rates(&before, &after)[0], 50.0));
    }

    #[test]
    fn without_a_host_clock_the_receive_times_give_the_interval() {
        let mut before = snapshot(100, vec![process(10, 500, 0)]);
        let mut after = snapshot(100, vec![process(10, 500, 100)]);
        before.now = None;
        after.now = None;
        let at = Instant::now();
        let seconds = elapsed_seconds(&before, at, &after, at + Duration::from_secs(4));
        assert_eq!(seconds, Some(4.0));
        assert!(close(process_rates(&before, &after, 4.0)[0], 25.0));
        assert_eq!(elapsed_seconds(&before, at, &after, at), None);
    }

    #[test]
    fn ps_starts_a_second_apart_are_one_process() {
        let mut before = snapshot(100, vec![process(10, 500 * 100, 100)]);
        let mut after = snapshot(102, vec![process(10, 501 * 100, 300)]);
        before.source = Source::Ps;
        after.source = Source::Ps;
        assert!(close(process_rates(&before, &after, 2.0)[0], 100.0));
    }

    #[test]
    fn host_cpu_is_busy_over_total_jiffies() {
        let mut before = snapshot(100, vec![]);
        let mut after = snapshot(102, vec![]);
        before.cpu = Some(HostCpu {
            busy: 1000,
            total: 4000,
        });
        after.cpu = Some(HostCpu {
            busy: 1100,
            total: 4400,
        });
        assert_eq!(host_cpu_percent(Some(&before), &after), Some(25.0));
        assert_eq!(host_cpu_percent(None, &after), None);
    }

    #[test]
    fn measure_keeps_every_process_and_the_memory_figures() {
        let at = Instant::now();
        let before = snapshot(100, vec![process(10, 500, 0)]);
        let after = snapshot(102, vec![process(10, 500, 100), process(11, 500, 7)]);
        let first = measure(HostName("n1".into()), None, &before, at);
        assert_eq!(first.processes[0].cpu_percent, None);
        let stats = measure(
            HostName("n1".into()),
            Some((&before, at)),
            &after,
            at + Duration::from_secs(2),
        );
        assert_eq!(stats.mem_used, Some(600));
        assert_eq!(stats.mem_total, Some(1000));
        assert_eq!(stats.load, Some([0.5, 0.4, 0.3]));
        assert_eq!(stats.unavailable, None);
        assert_eq!(stats.processes.len(), 2);
        assert!(close(stats.processes[0].cpu_percent, 50.0));
        assert_eq!(stats.processes[1].cpu_percent, None);
    }

    #[test]
    fn a_reader_that_saw_no_process_is_unavailable_never_a_silent_zero() {
        let at = Instant::now();
        let empty = snapshot(100, vec![]);
        let stats = measure(HostName("n1".into()), None, &empty, at);
        assert_eq!(
            stats.unavailable.as_deref(),
            Some("the host's process table read as empty")
        );
    }
}
