//! CPU% as the recent rate, like top: the CPU time a process used between
//! two snapshots over the wall time between them (100% = one core), never
//! `ps`'s lifetime average. Pure.
//!
//! A process is known by its pid AND its start time, so a new process that
//! got an old pid never inherits the old one's CPU time. One seen for the
//! first time counts from there (no rate yet), except one that started
//! after the previous snapshot: all of its CPU time is then inside the
//! interval, and counting it keeps short-lived children (a `make -j4`'s
//! compilers) from vanishing.

use std::collections::HashMap;
use std::time::Instant;

use super::parse::{HostCpu, Snapshot, Source};
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
        unavailable: None,
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
pub fn process_rates(before: &Snapshot, after: &Snapshot, seconds: f64) -> Vec<Option<f64>> {
    if before.source != after.source || before.clock_ticks != after.clock_ticks || seconds <= 0.0 {
        return vec![None; after.processes.len()];
    }
    let percent = |ticks: u64| ticks as f64 / after.clock_ticks as f64 / seconds * 100.0;
    let slack = after.source.start_slack(after.clock_ticks);
    let seen: HashMap<u32, (u64, u64)> = before
        .processes
        .iter()
        .map(|sample| (sample.pid, (sample.start, sample.cpu_ticks)))
        .collect();
    after
        .processes
        .iter()
        .map(|sample| match seen.get(&sample.pid) {
            // The same process, its counter moving forward as counters do.
            // A counter that went back (wrapped, or a glitch) is a new start.
            Some(&(start, cpu))
                if start.abs_diff(sample.start) <= slack && sample.cpu_ticks >= cpu =>
            {
                Some(percent(sample.cpu_ticks - cpu))
            }
            // New, or a new process under an old pid: all of its time is
            // in the interval only if it started inside it.
            _ => before
                .now
                .filter(|&then| sample.start >= then.saturating_add(slack))
                .map(|_| percent(sample.cpu_ticks)),
        })
        .collect()
}

/// The host's CPU use over the interval, 0–100 for all cores together.
pub fn host_cpu_percent(before: Option<&Snapshot>, after: &Snapshot) -> Option<f64> {
    match (before.and_then(|before| before.cpu), after.cpu?) {
        (_, HostCpu::Percent(percent)) => Some(percent),
        (
            Some(HostCpu::Times {
                busy: busy_before,
                total: total_before,
            }),
            HostCpu::Times { busy, total },
        ) => {
            let total = total.checked_sub(total_before).filter(|&total| total > 0)?;
            let busy = busy.checked_sub(busy_before)?;
            Some((busy as f64 / total as f64 * 100.0).min(100.0))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::parse::ProcSample;

    fn process(pid: u32, start: u64, cpu_ticks: u64) -> ProcSample {
        ProcSample {
            pid,
            ppid: 1,
            pgid: pid,
            sid: pid,
            state: 'S',
            comm: format!("p{pid}"),
            cpu_ticks,
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
        before.cpu = Some(HostCpu::Times {
            busy: 1000,
            total: 4000,
        });
        after.cpu = Some(HostCpu::Times {
            busy: 1100,
            total: 4400,
        });
        assert_eq!(host_cpu_percent(Some(&before), &after), Some(25.0));
        assert_eq!(host_cpu_percent(None, &after), None);
        after.cpu = Some(HostCpu::Percent(12.5));
        assert_eq!(host_cpu_percent(None, &after), Some(12.5));
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
}
