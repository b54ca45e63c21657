//! The parser, the rates and the attribution on output captured from real
//! hosts, and `poll.awk` itself on real `/proc` files (see
//! `fixtures/README.md`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::frame::Framer;
use super::parse::{HostCpu, Snapshot, SnapshotReader, Source};
use super::poller::PollScript;
use super::rate::measure;
use super::{HostStats, attribute};
use crate::model::{HostName, InstanceId, JobName};

const NONCE: &str = "5eb1e0f1c0ffee00d15ea5e0ba5eba11";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/stats/fixtures")
}

/// Every snapshot of one poller's output, read in order as zap does.
fn snapshots(text: &str) -> Vec<Snapshot> {
    let mut reader = SnapshotReader::default();
    Framer::new(NONCE)
        .push(text.as_bytes())
        .iter()
        .map(|body| reader.read(body).expect("a readable snapshot"))
        .collect()
}

fn fixture(name: &str) -> Vec<Snapshot> {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("fixture");
    snapshots(&text)
}

/// Each snapshot measured against the one before, `seconds` apart by zap's
/// clock (the `/proc` ones use the host's uptime instead).
fn measured(snapshots: &[Snapshot], seconds: u64) -> Vec<HostStats> {
    let start = Instant::now();
    let at = |index: usize| start + Duration::from_secs(seconds * index as u64);
    (0..snapshots.len())
        .map(|index| {
            let before = index
                .checked_sub(1)
                .map(|earlier| (&snapshots[earlier], at(earlier)));
            measure(HostName("n1".into()), before, &snapshots[index], at(index))
        })
        .collect()
}

fn instance(job: &str) -> InstanceId {
    InstanceId {
        job: JobName {
            system: "fixture".into(),
            job: job.into(),
        },
        host: HostName("n1".into()),
    }
}

fn cpu_of(stats: &HostStats, pid: u32) -> Option<f64> {
    stats.processes.iter().find(|p| p.pid == pid)?.cpu_percent
}

#[test]
fn fleet_snapshots_keep_odd_names_and_zombies() {
    let taken = fixture("fleet-n1.txt");
    assert_eq!(taken.len(), 3);
    for snapshot in &taken {
        assert_eq!((snapshot.source, snapshot.clock_ticks), (Source::Proc, 100));
        assert_eq!(snapshot.skipped, 0);
        assert_eq!(snapshot.cores, Some(2));
        assert!(snapshot.mem_total > snapshot.mem_available);
        let comm = |pid: u32| {
            let p = snapshot.processes.iter().find(|p| p.pid == pid);
            p.map(|p| p.comm.as_str()).expect("present")
        };
        assert_eq!(comm(3754), "a b) (c");
        assert_eq!(comm(3755), "nl x");
        let zombie = snapshot
            .processes
            .iter()
            .find(|p| p.pid == 3758)
            .expect("zombie");
        assert_eq!(
            (zombie.state, zombie.rss_bytes, zombie.ppid),
            ('Z', 0, 3756)
        );
    }
}

#[test]
fn fleet_busy_loop_reads_a_full_core_and_idle_processes_nothing() {
    let stats = measured(&fixture("fleet-n1.txt"), 1);
    assert_eq!(
        cpu_of(&stats[0], 3803),
        None,
        "no rate on the first snapshot"
    );
    for later in &stats[1..] {
        let busy = cpu_of(later, 3803).expect("a rate");
        assert!((95.0..=105.0).contains(&busy), "{busy}");
        assert_eq!(cpu_of(later, 3754), Some(0.0));
        let host = later.cpu_percent.expect("host CPU");
        assert!(
            (50.0..=100.0).contains(&host),
            "one of two cores spins: {host}"
        );
    }
}

#[test]
fn fleet_job_group_is_attributed_with_its_zombie() {
    let stats = measured(&fixture("fleet-n1.txt"), 1);
    let jobs = attribute(
        &stats[2],
        &[(instance("odd"), 3746), (instance("spin"), 3797)],
    );
    let odd = &jobs[&instance("odd")];
    // sh, "a b) (c", "nl x", sleep and its zombie.
    assert_eq!(odd.procs, 5);
    assert_eq!(odd.cpu_percent, Some(0.0));
    assert_eq!(odd.rss_bytes, (404 + 334 + 365 + 366) * 4096);
    // `timeout` (3797) and its busy child.
    let spin = &jobs[&instance("spin")];
    assert_eq!(spin.procs, 2);
    assert!(spin.cpu_percent.is_some_and(|cpu| cpu > 95.0));
}

#[test]
fn fleet_ps_mode_reads_the_same_processes() {
    let taken = fixture("fleet-n1-ps.txt");
    assert_eq!(taken.len(), 2);
    let first = &taken[0];
    assert_eq!(first.source, Source::Ps);
    assert_eq!(first.skipped, 0);
    assert!(first.load.is_some());
    let odd = first
        .processes
        .iter()
        .find(|p| p.pid == 3754)
        .expect("present");
    assert_eq!((odd.comm.as_str(), odd.rss_bytes), ("a b) (c", 1336 * 1024));
    // `ps` shows time to the second: 3 s then 5 s of CPU, 2 s apart.
    let stats = measured(&taken, 2);
    let busy = cpu_of(&stats[1], 3803).expect("a rate");
    assert!((95.0..=105.0).contains(&busy), "{busy}");
    assert_eq!(cpu_of(&stats[1], 3754), Some(0.0));
}

#[test]
fn this_machine_leaves_kernel_threads_out() {
    let taken = fixture("this-machine.txt");
    assert_eq!(taken.len(), 2);
    for snapshot in &taken {
        assert_eq!(snapshot.skipped, 0);
        assert!(snapshot.processes.len() > 20);
        // kthreadd (2) and its children are no job's.
        assert!(snapshot.processes.iter().all(|p| p.pid != 2 && p.ppid != 2));
        assert!(
            snapshot
                .processes
                .iter()
                .all(|p| p.rss_bytes > 0 || p.state == 'Z')
        );
    }
    // Every process seen in both snapshots has a rate in the second.
    let stats = measured(&taken, 1);
    let before: Vec<u32> = taken[0].processes.iter().map(|p| p.pid).collect();
    for process in &stats[1].processes {
        assert!(
            process.cpu_percent.is_some() || !before.contains(&process.pid),
            "{process:?}"
        );
    }
}

#[test]
fn other_clock_ticks_and_page_sizes_scale_the_figures() {
    let taken = fixture("synthetic-250hz.txt");
    assert_eq!((taken[0].clock_ticks, taken[0].now), (250, Some(250_000)));
    let stats = measured(&taken, 2);
    let second = &stats[1];
    // 500 ticks at 250/s in 2 s: one core.
    assert_eq!(cpu_of(second, 50), Some(100.0));
    assert_eq!(cpu_of(second, 51), Some(0.0));
    // Born between the snapshots: all of its 125 ticks count.
    assert_eq!(cpu_of(second, 52), Some(25.0));
    assert_eq!(second.cpu_percent, Some(35.0));
    assert_eq!(second.processes[1].rss_bytes, 100 * 16384);
    assert_eq!(
        (second.mem_total, second.mem_used),
        (Some(1_024_000), Some(614_400))
    );
    let jobs = attribute(second, &[(instance("spin"), 50)]);
    let spin = &jobs[&instance("spin")];
    assert_eq!((spin.procs, spin.cpu_percent), (3, Some(125.0)));
}

/// The awks hosts have: Debian's default, GNU, the one true awk (BWK) and
/// BusyBox's (small images). `scripts/test-all` installs them all; a
/// missing one fails these tests.
const AWKS: [&str; 4] = ["mawk", "gawk", "original-awk", "busybox awk"];

/// `poll.awk` itself, run by `awk`, on real `/proc` files copied from a
/// fleet container: `polls` snapshots 0.2 s apart.
fn poll_fixture_proc_times(awk: &'static str, polls: u32) -> Vec<Snapshot> {
    let mut script = PollScript::new(NONCE.into(), Duration::from_millis(200));
    script.polls = polls;
    script.awk = awk;
    script.root = Some(fixtures().join("proc").display().to_string());
    let output = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script.render())
        .output()
        .expect("run /bin/sh");
    assert!(
        output.status.success(),
        "{awk}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let taken = snapshots(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(taken.len(), polls as usize, "{awk}");
    taken
}

fn poll_fixture_proc(awk: &'static str) -> Snapshot {
    poll_fixture_proc_times(awk, 1).remove(0)
}

#[test]
fn every_awk_reads_the_same_snapshot() {
    let reference = poll_fixture_proc(AWKS[0]);
    assert!(!reference.processes.is_empty());
    for awk in &AWKS[1..] {
        assert_eq!(
            poll_fixture_proc(awk),
            reference,
            "{awk} against {}",
            AWKS[0]
        );
    }
}

#[test]
fn later_polls_that_name_unchanged_processes_by_pid_say_the_same() {
    // Unchanged processes come as "= PID" (their statm not read again) for
    // 5 polls: every snapshot still says the same.
    for awk in AWKS {
        let taken = poll_fixture_proc_times(awk, 7);
        for snapshot in &taken[1..] {
            assert_eq!(snapshot.processes, taken[0].processes, "{awk}");
        }
    }
}

#[test]
fn the_poller_takes_the_comm_up_to_the_last_parenthesis() {
    for awk in AWKS {
        comms_are_cut_at_the_last_parenthesis(awk);
    }
}

fn comms_are_cut_at_the_last_parenthesis(awk: &'static str) {
    let snapshot = poll_fixture_proc(awk);
    let comms: Vec<(u32, &str)> = snapshot
        .processes
        .iter()
        .map(|p| (p.pid, p.comm.as_str()))
        .collect();
    assert_eq!(
        comms,
        vec![
            (1, "docker-init"),
            (3746, "sh"),
            (3754, "a b) (c"),
            (3755, "nl x"),
            (3756, "sleep"),
            (3758, "sleep"),
            (3857, "x) R 9 (y"),
        ],
        "{awk}: kernel threads (2, 10) and vanished processes (4000 without files, \
         4001 with empty ones) are left out"
    );
    let tricky = &snapshot.processes[6];
    assert_eq!((tricky.state, tricky.ppid, tricky.pgid), ('S', 0, 3857));
}

#[test]
fn the_poller_reads_host_figures_and_precise_memory() {
    for awk in AWKS {
        host_figures_and_precise_memory(awk);
    }
}

fn host_figures_and_precise_memory(awk: &'static str) {
    let snapshot = poll_fixture_proc(awk);
    assert_eq!(snapshot.load, Some([1.3, 1.77, 1.9]));
    assert_eq!(snapshot.cores, Some(2));
    assert_eq!(snapshot.mem_total, Some(24_684_084 * 1024));
    assert_eq!(snapshot.mem_available, Some(23_808_336 * 1024));
    assert_eq!(snapshot.now, Some(389_999));
    assert!(matches!(snapshot.cpu, Some(HostCpu { .. })));
    // statm's resident size (334 pages), not stat's approximate rss (294).
    let odd = snapshot
        .processes
        .iter()
        .find(|p| p.pid == 3754)
        .expect("present");
    assert_eq!(odd.rss_bytes, 334 * 4096);
    assert_eq!(odd.cpu_ticks, 0);
    assert_eq!(odd.start, 386_364);
    // cutime + cstime: what the shell and init reaped.
    let children = |pid: u32| {
        let p = snapshot.processes.iter().find(|p| p.pid == pid);
        p.and_then(|p| p.children_ticks)
    };
    assert_eq!(children(3746), Some(392 + 1));
    assert_eq!(children(1), Some(52 + 13));
    let zombie = snapshot
        .processes
        .iter()
        .find(|p| p.pid == 3758)
        .expect("zombie");
    assert_eq!((zombie.state, zombie.rss_bytes), ('Z', 0));
}

/// zap's own cost per snapshot of 500 processes: framing, parsing, rates
/// and attribution of 20 jobs. Prints the figure; run it in release mode:
/// `cargo test --release --lib stats::fixture_tests::zap_side_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test"]
fn zap_side_cost() {
    // `fresh`: every process read afresh (the poller's first poll, or one
    // where all of them ran); else one in 25 did, the rest named by pid.
    let snapshot = |uptime: u64, extra_ticks: u64, fresh: bool| {
        let mut text = format!(
            "@@zapstats:{NONCE}:begin 1 7\nh proc 100 4096\nu {uptime}.00 0.00\nl 0.1 0.2 0.3 1/2 3\n\
             c cpu  1 2 3 4 5 6 7 8 0 0\nn 2\nm MemTotal: 24684084 kB\nm MemAvailable: 23808336 kB\n"
        );
        for pid in 1000..1500u32 {
            let group = 1000 + (pid - 1000) / 25 * 25;
            if !fresh && pid != group {
                text.push_str(&format!("= {pid}\n"));
                continue;
            }
            let sample = crate::stats::ProcSample {
                pid,
                ppid: group,
                pgid: group,
                sid: group,
                state: 'S',
                comm: "worker (odd) name".into(),
                cpu_ticks: u64::from(pid) + extra_ticks,
                children_ticks: Some(0),
                start: 386_364,
                rss_bytes: 334 * 4096,
            };
            let line = crate::stats::procstat::proc_line_text(&sample, 4096, 0);
            text.push_str(&format!("P {line}\n"));
        }
        text.push_str(&format!("@@zapstats:{NONCE}:end 1\n"));
        text
    };
    let jobs: Vec<(InstanceId, u32)> = (0..20u32)
        .map(|job| (instance(&format!("j{job}")), 1000 + job * 25))
        .collect();
    for fresh in [true, false] {
        let texts = [snapshot(1000, 0, fresh), snapshot(1002, 7, fresh)];
        let mut reader = SnapshotReader::default();
        // What a steady poll names by pid, the reader has from a first one.
        let first = Framer::new(NONCE)
            .push(snapshot(998, 0, true).as_bytes())
            .remove(0);
        reader.read(&first).expect("parses");
        let rounds = 2000;
        let start = Instant::now();
        let mut previous: Option<(Snapshot, Instant)> = None;
        let mut attributed = 0;
        for round in 0..rounds {
            let body = Framer::new(NONCE)
                .push(texts[round % 2].as_bytes())
                .remove(0);
            let snapshot = reader.read(&body).expect("parses");
            assert_eq!(snapshot.processes.len(), 500);
            let at = Instant::now();
            let before = previous.as_ref().map(|(snapshot, at)| (snapshot, *at));
            let stats = measure(HostName("n1".into()), before, &snapshot, at);
            attributed += attribute(&stats, &jobs).len();
            previous = Some((snapshot, at));
        }
        let each = start.elapsed() / rounds as u32;
        assert_eq!(attributed, 20 * rounds);
        eprintln!(
            "zap side, {}: {:.0} µs per snapshot of 500 processes with 20 jobs = {:.3}% of a core per host at 2 s",
            if fresh {
                "every process read"
            } else {
                "20 read, 480 named by pid"
            },
            each.as_secs_f64() * 1e6,
            each.as_secs_f64() / 2.0 * 100.0
        );
    }
}
