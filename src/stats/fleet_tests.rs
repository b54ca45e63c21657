//! The stats poller against the container fleet of `scripts/fleet up`: real
//! sshd, dash and mawk, jobs started through a [`Transport`] as zap starts
//! them. Run with `cargo test -- --ignored stats::fleet_tests`.
//!
//! The fleet shares this machine's cores with whatever else runs on it, so
//! a busy loop may get less than a core: each rate test also asks the
//! host's own `top` what the loop got, and holds the poller to that when
//! the machine is too busy for the loop to get 70%.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::poller::spawn_host_poller;
use super::tree::job_tree;
use super::{HostStats, JobStats, attribute};
use crate::config::{self, SourceFile};
use crate::model::{HostName, InstanceId, JobName, Signal};
use crate::transport::host::{Transport, transports_for};
use crate::transport::{CHUNK_QUEUE, Chunk};

/// One test at a time: busy loops of two tests would share the cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const HOST: &str = "n3";
const EVERY: Duration = Duration::from_secs(1);

fn transport() -> Transport {
    transport_to(HOST)
}

fn transport_to(name: &str) -> Transport {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("tests/fleet/hosts.toml")).expect("hosts.toml");
    let state = root.join("tests/fleet/.state");
    let text = text.replace("\".state/", &format!("\"{}/", state.display()));
    let plan = config::load_sources(root, &[SourceFile::new("hosts.toml", text)])
        .expect("the fleet's hosts.toml is valid");
    let host = HostName(name.into());
    let mut transports = transports_for(&plan, [&host]).expect("a transport");
    transports.remove(&host).expect("the host's transport")
}

fn instance() -> InstanceId {
    InstanceId {
        job: JobName {
            system: "stats".into(),
            job: "probe".into(),
        },
        host: HostName(HOST.into()),
    }
}

/// A job started as zap starts one: its shell prints its pid (which leads
/// its process group and session) before running `body`.
struct Job {
    pid: u32,
    started: Instant,
    _output: mpsc::Receiver<Chunk>,
}

async fn start_job(transport: &Transport, body: &str) -> Job {
    let (tx, mut output) = mpsc::channel(CHUNK_QUEUE);
    transport
        .start(format!("echo $$\n{body}\n"), tx)
        .await
        .expect("the job starts");
    let mut text = String::new();
    while !text.contains('\n') {
        match output.recv().await {
            Some(Chunk::Stdout(data)) => text.push_str(&String::from_utf8_lossy(&data)),
            Some(Chunk::Stderr(_)) => {}
            other => panic!("the job ended before saying its pid: {other:?} {text}"),
        }
    }
    let pid = text
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok());
    Job {
        pid: pid.expect("a pid"),
        started: Instant::now(),
        _output: output,
    }
}

/// A failed assertion must not leave a busy loop spinning in the
/// container: it would take the CPU the next tests measure.
impl Drop for Job {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::process::Command::new("docker")
                .args(["exec", &format!("zaptest-{HOST}"), "kill", "-KILL", "--"])
                .arg(format!("-{}", self.pid))
                .status();
        }
    }
}

async fn kill_job(transport: &Transport, job: &Job) {
    let _ = transport.signal_group(job.pid, Signal::Kill).await;
}

struct Watch {
    rx: mpsc::Receiver<HostStats>,
    poller: JoinHandle<()>,
    /// The job shells the poller is told of, as the supervisor tells it.
    shells: watch::Sender<Vec<u32>>,
}

impl Watch {
    fn start(transport: &Transport) -> Watch {
        let (tx, rx) = mpsc::channel(8);
        let (shells, shells_rx) = watch::channel(Vec::new());
        let poller = spawn_host_poller(
            HostName(HOST.into()),
            transport.clone(),
            EVERY,
            tx,
            shells_rx,
        );
        Watch { rx, poller, shells }
    }

    /// The next snapshot with figures, and the job's share of it.
    async fn next(&mut self, job: &Job) -> (HostStats, Option<JobStats>) {
        self.shells.send_replace(vec![job.pid]);
        let stats = tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("a snapshot in time")
            .expect("the poller runs");
        if let Some(reason) = &stats.unavailable {
            panic!("stats unavailable: {reason}");
        }
        let mut jobs: BTreeMap<InstanceId, JobStats> = attribute(&stats, &[(instance(), job.pid)]);
        let share = jobs.remove(&instance());
        (stats, share)
    }

    async fn stop(self) {
        drop(self.rx);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.poller).await;
    }
}

/// What the host's own `top` says `pid` got over one second.
async fn top_percent(transport: &Transport, pid: u32) -> Option<f64> {
    let command = format!("COLUMNS=200 top -b -n 2 -d 1 -p {pid}");
    let (_, stdout, _) = transport.run_capture(&command).await.ok()?;
    let text = String::from_utf8_lossy(&stdout);
    // The last row for the pid is the second sample: a rate over 1 s.
    let row = text
        .lines()
        .rev()
        .find(|line| line.split_whitespace().next() == Some(&pid.to_string()))?;
    row.split_whitespace().nth(8)?.parse().ok()
}

/// `ours` reads a busy loop right: 70–130%, or, when the machine was too
/// busy to give the loop a whole core (says `top`), within 25 points of
/// `top`.
fn assert_busy(ours: f64, top: Option<f64>, what: &str) {
    eprintln!("{what}: zap {ours:.1}%, top {top:?}");
    match top {
        Some(top) if top < 90.0 => assert!(
            (ours - top).abs() <= 25.0,
            "{what}: zap {ours:.1}% but top {top:.1}% on a crowded machine"
        ),
        _ => assert!((70.0..=130.0).contains(&ours), "{what}: zap {ours:.1}%"),
    }
}

/// The busy process of the job (state R), for `top`.
fn busy_pid(stats: &HostStats, job: &Job) -> Option<u32> {
    job_tree(&stats.processes, job.pid)
        .into_iter()
        .map(|(member, _)| &stats.processes[member])
        .find(|p| p.state == 'R' && p.pid != job.pid)
        .map(|p| p.pid)
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn a_job_that_idles_then_spins_reads_a_core_within_two_polls() {
    let _serial = SERIAL.lock().await;
    let transport = transport();
    let mut watch = Watch::start(&transport);
    let job = start_job(
        &transport,
        "sh -c 'sleep 5; while :; do :; done'\nsleep 600",
    )
    .await;
    let spin_at = job.started + Duration::from_secs(5);
    // Idle: every poll with a rate before the spin reads under 5%.
    let mut idle_polls = 0;
    let (mut stats, mut share) = watch.next(&job).await;
    while stats.at < spin_at {
        if let Some(cpu) = share.as_ref().and_then(|share| share.cpu_percent) {
            assert!(cpu < 5.0, "idle job at {cpu}%");
            idle_polls += 1;
        }
        (stats, share) = watch.next(&job).await;
    }
    assert!(idle_polls >= 2, "only {idle_polls} idle polls");
    // The first poll after the spin started may cover part of an interval;
    // the second is a whole one.
    (stats, share) = watch.next(&job).await;
    let cpu = share.and_then(|share| share.cpu_percent).expect("a rate");
    let spinner = busy_pid(&stats, &job).expect("the busy loop is in the job's tree");
    let top = top_percent(&transport, spinner).await;
    assert_busy(cpu, top, "spin after idle, 2nd poll");
    // It drops back within two polls after it stops (the shell sleeps on).
    transport
        .run_capture(&format!("kill {spinner}"))
        .await
        .expect("kill the loop");
    // Snapshots taken before the kill may wait in the channel (top took a
    // second): the first poll after it is the first one zap read later than
    // the kill plus a transit; it still holds the loop's last moments (in
    // the shell's cutime, once the shell reaped it), the second none.
    let killed_at = std::time::Instant::now() + Duration::from_millis(200);
    while watch.next(&job).await.0.at < killed_at {}
    let (_, share) = watch.next(&job).await;
    let share = share.expect("the shell still runs");
    assert!(share.cpu_percent.is_some_and(|cpu| cpu < 5.0), "{share:?}");
    kill_job(&transport, &job).await;
    watch.stop().await;
    transport.close().await;
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn a_job_holding_200_mb_reads_its_rss() {
    let _serial = SERIAL.lock().await;
    let transport = transport();
    let mut watch = Watch::start(&transport);
    // tail keeps a line with no newline in memory until its input ends,
    // which the sleep holds off (and nothing comes back over SSH).
    let job = start_job(
        &transport,
        "{ head -c 200m /dev/zero; sleep 600; } | tail >/dev/null",
    )
    .await;
    let wanted = 200.0 * 1024.0 * 1024.0;
    let mut last = None;
    for _ in 0..20 {
        let (stats, share) = watch.next(&job).await;
        let rss = share.map_or(0, |share| share.rss_bytes) as f64;
        last = Some(rss);
        let tail = stats.processes.iter().find(|p| {
            p.comm == "tail"
                && job_tree(&stats.processes, job.pid)
                    .iter()
                    .any(|(m, _)| stats.processes[*m].pid == p.pid)
        });
        // Filled once two polls agree within 1%.
        if rss > wanted * 0.9 && tail.is_some() {
            let (_, again) = watch.next(&job).await;
            let again = again.map_or(0, |share| share.rss_bytes) as f64;
            if (again - rss).abs() < rss * 0.01 {
                let top = top_res_kib(&transport, tail.map_or(0, |p| p.pid)).await;
                eprintln!(
                    "200 MB job: zap {:.1} MiB, top RES of tail {top:?} KiB",
                    again / 1048576.0
                );
                assert!((wanted * 0.75..=wanted * 1.25).contains(&again), "{again}");
                kill_job(&transport, &job).await;
                watch.stop().await;
                transport.close().await;
                return;
            }
        }
    }
    panic!("the job's RSS never settled near 200 MB: last {last:?}");
}

/// The host's `top` RES column for `pid`, in KiB.
async fn top_res_kib(transport: &Transport, pid: u32) -> Option<String> {
    let command = format!("COLUMNS=200 top -b -n 1 -p {pid}");
    let (_, stdout, _) = transport.run_capture(&command).await.ok()?;
    let text = String::from_utf8_lossy(&stdout);
    let row = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(&pid.to_string()))?;
    row.split_whitespace().nth(5).map(str::to_string)
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn a_busy_grandchild_counts_for_the_job() {
    let _serial = SERIAL.lock().await;
    let transport = transport();
    let mut watch = Watch::start(&transport);
    let job = start_job(&transport, "sh -c 'sh -c \"while :; do :; done\"'").await;
    // Two polls with the loop running, the second a whole interval.
    watch.next(&job).await;
    watch.next(&job).await;
    let (stats, share) = watch.next(&job).await;
    let share = share.expect("the job is there");
    assert_eq!(share.procs, 3, "shell, sh, and the looping grandchild");
    let spinner = busy_pid(&stats, &job).expect("the grandchild");
    let depth = job_tree(&stats.processes, job.pid)
        .into_iter()
        .find(|(member, _)| stats.processes[*member].pid == spinner)
        .map(|(_, depth)| depth);
    assert_eq!(depth, Some(2), "a grandchild");
    let top = top_percent(&transport, spinner).await;
    assert_busy(share.cpu_percent.expect("a rate"), top, "grandchild");
    kill_job(&transport, &job).await;
    watch.stop().await;
    transport.close().await;
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn an_orphaned_busy_loop_still_counts_by_its_group() {
    let _serial = SERIAL.lock().await;
    let transport = transport();
    let mut watch = Watch::start(&transport);
    // The loop's parent exits at once: the loop is reparented to init but
    // stays in the job's process group.
    let job = start_job(
        &transport,
        "sh -c '(while :; do :; done) & exit 0'\nsleep 600",
    )
    .await;
    watch.next(&job).await;
    watch.next(&job).await;
    let (stats, share) = watch.next(&job).await;
    let share = share.expect("the job is there");
    let spinner = busy_pid(&stats, &job).expect("the orphan");
    let orphan = stats
        .processes
        .iter()
        .find(|p| p.pid == spinner)
        .expect("listed");
    assert_ne!(orphan.ppid, job.pid);
    assert_eq!(orphan.pgid, job.pid);
    assert_eq!(share.procs, 3, "shell, sleep, and the orphan");
    let top = top_percent(&transport, spinner).await;
    assert_busy(share.cpu_percent.expect("a rate"), top, "orphan");
    kill_job(&transport, &job).await;
    watch.stop().await;
    transport.close().await;
}

/// utime+stime+cutime+cstime of `pid` in fleet container `container`, in
/// seconds, read from outside (`docker exec`): the host's own figure for a
/// process and all it reaped.
async fn container_cpu_seconds(container: &str, pid: u32) -> Option<f64> {
    let read = |args: Vec<String>| async move {
        let output = tokio::process::Command::new("docker")
            .args(&args)
            .output()
            .await
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let ticks: f64 = read(vec![
        "exec".into(),
        container.into(),
        "getconf".into(),
        "CLK_TCK".into(),
    ])
    .await?
    .trim()
    .parse()
    .ok()?;
    let stat = read(vec![
        "exec".into(),
        container.into(),
        "cat".into(),
        format!("/proc/{pid}/stat"),
    ])
    .await?;
    let (_, tail) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let total: u64 = (11..15)
        .map(|i| fields.get(i)?.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(total as f64 / ticks)
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn a_loop_forking_short_lived_children_reads_what_the_host_says() {
    let _serial = SERIAL.lock().await;
    let transport = transport();
    let mut watch = Watch::start(&transport);
    // Each `$(date +%s)` forks a child that lives a few ms: no poll sees
    // them; their time reaches the shell's cutime+cstime when it reaps them.
    let job = start_job(
        &transport,
        "i=0; end=$(($(date +%s)+8)); while [ $(date +%s) -lt $end ]; do :; done",
    )
    .await;
    // A first rate for the job: the loop runs.
    let mut last_at = loop {
        let (stats, share) = watch.next(&job).await;
        if share.and_then(|share| share.cpu_percent).is_some() {
            break stats.at;
        }
        assert!(
            job.started.elapsed() < Duration::from_secs(6),
            "no rate in time"
        );
    };
    let container = format!("zaptest-{HOST}");
    let host_before = container_cpu_seconds(&container, job.pid)
        .await
        .expect("the shell's stat");
    let wall_before = Instant::now();
    // Three intervals, each rate weighed by its length.
    let mut cpu_seconds = 0.0;
    let mut seconds = 0.0;
    for _ in 0..3 {
        let (stats, share) = watch.next(&job).await;
        let rate = share
            .and_then(|share| share.cpu_percent)
            .expect("the job still runs, with a rate");
        let interval = stats.at.duration_since(last_at).as_secs_f64();
        cpu_seconds += rate / 100.0 * interval;
        seconds += interval;
        last_at = stats.at;
    }
    let host_after = container_cpu_seconds(&container, job.pid)
        .await
        .expect("the shell still runs");
    let host = (host_after - host_before) / wall_before.elapsed().as_secs_f64() * 100.0;
    let ours = cpu_seconds / seconds * 100.0;
    eprintln!("forking loop: zap {ours:.1}%, the shell's utime+stime+cutime+cstime {host:.1}%");
    // The loop gets 25–35% of a core on the fleet (forking is slow in a
    // container sharing two cores); zap read about 1% before it counted the
    // reaped children.
    assert!(
        host > 10.0,
        "the loop got {host:.1}% of a core: too little to tell anything"
    );
    assert!(
        (ours - host).abs() <= 25.0 && ours >= host / 2.0,
        "zap {ours:.1}% but the host {host:.1}%"
    );
    kill_job(&transport, &job).await;
    watch.stop().await;
    transport.close().await;
}

/// This process's CPU time (user + system) so far.
fn own_cpu() -> Duration {
    // SAFETY: getrusage(2) fills the struct we hand it, nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// utime+stime+cutime+cstime of `pid` on the host, in ticks: the poller's
/// awk with the `sh` and `sleep` it started and waited for.
async fn host_ticks(transport: &Transport, pid: u32) -> Option<u64> {
    let (_, stdout, _) = transport
        .run_capture(&format!("cat /proc/{pid}/stat"))
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&stdout);
    let (_, tail) = text.rsplit_once(')')?;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    (11..15).map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}

/// The benchmark: 3 hosts × 20 jobs polled every 2 s for
/// `ZAP_STATS_BENCH_SECS` seconds (60 is the figure; unset, it does
/// nothing, so `--include-ignored` runs stay short). Prints zap's own CPU
/// and, per host, the poller's and its sshd's CPU per poll:
/// `ZAP_STATS_BENCH_SECS=60 cargo test --release --lib stats::fleet_tests::cost -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: needs the container fleet (scripts/fleet up)"]
async fn cost_of_polling_three_hosts() {
    let Some(seconds) = std::env::var("ZAP_STATS_BENCH_SECS")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
    else {
        eprintln!("set ZAP_STATS_BENCH_SECS to measure");
        return;
    };
    let _serial = SERIAL.lock().await;
    let every = Duration::from_secs(2);
    let names = ["n1", "n2", "n3"];
    let transports: Vec<Transport> = names.iter().map(|name| transport_to(name)).collect();
    // 20 jobs per host, each a shell in its own session with 5 children.
    let start_jobs = "rm -f /tmp/zap-bench.pids; i=0; while [ $i -lt 20 ]; do \
        setsid sh -c 'echo $$ >>/tmp/zap-bench.pids; for j in 1 2 3 4 5; do sleep 900 & done; wait' \
        </dev/null >/dev/null 2>&1 & i=$((i+1)); done; sleep 1; cat /tmp/zap-bench.pids";
    let mut jobs = Vec::new();
    for transport in &transports {
        let (_, stdout, _) = transport.run_capture(start_jobs).await.expect("jobs start");
        let pids: Vec<u32> = String::from_utf8_lossy(&stdout)
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect();
        assert_eq!(pids.len(), 20);
        jobs.push(pids);
    }
    let (tx, mut rx) = mpsc::channel(16);
    let pollers: Vec<JoinHandle<()>> = names
        .iter()
        .zip(&transports)
        .zip(&jobs)
        .map(|((name, transport), shells)| {
            spawn_host_poller(
                HostName((*name).into()),
                transport.clone(),
                every,
                tx.clone(),
                watch::channel(shells.clone()).1,
            )
        })
        .collect();
    drop(tx);
    // Warm up: the connections, a first snapshot from every host.
    let mut latest: BTreeMap<HostName, HostStats> = BTreeMap::new();
    while latest.len() < names.len() {
        let stats = rx.recv().await.expect("stats");
        latest.insert(stats.host.clone(), stats);
    }
    let poller_of = |stats: &HostStats| {
        let awk = stats
            .processes
            .iter()
            .find(|p| p.comm == "awk" && p.pid == p.pgid);
        awk.map(|awk| (awk.pid, awk.ppid))
            .expect("the poller is in its own table")
    };
    let mut before = Vec::new();
    for (transport, name) in transports.iter().zip(names) {
        let (awk, sshd) = poller_of(&latest[&HostName(name.into())]);
        before.push((
            awk,
            sshd,
            host_ticks(transport, awk).await,
            host_ticks(transport, sshd).await,
        ));
    }
    let zap_before = own_cpu();
    let started = Instant::now();
    let mut polls = 0u64;
    let mut attributed = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        let stats = rx.recv().await.expect("stats");
        assert_eq!(stats.unavailable, None);
        let host_index = names
            .iter()
            .position(|name| stats.host.0 == *name)
            .expect("ours");
        let pairs: Vec<(InstanceId, u32)> = jobs[host_index]
            .iter()
            .enumerate()
            .map(|(i, pid)| {
                let mut id = instance();
                id.job.job = format!("j{i}");
                id.host = stats.host.clone();
                (id, *pid)
            })
            .collect();
        let shares = attribute(&stats, &pairs);
        assert!(shares.values().all(|share| share.procs == 6));
        attributed += shares.len();
        polls += 1;
    }
    let wall = started.elapsed();
    let zap = own_cpu() - zap_before;
    eprintln!(
        "zap: {:.0} ms CPU in {:.0} s = {:.2}% of a core, polling {} hosts every {}s \
         ({polls} snapshots, {attributed} job figures)",
        zap.as_secs_f64() * 1000.0,
        wall.as_secs_f64(),
        zap.as_secs_f64() / wall.as_secs_f64() * 100.0,
        names.len(),
        every.as_secs()
    );
    for ((transport, name), (awk, sshd, awk_before, sshd_before)) in
        transports.iter().zip(names).zip(before)
    {
        let awk_after = host_ticks(transport, awk).await;
        let sshd_after = host_ticks(transport, sshd).await;
        let per_poll = |before: Option<u64>, after: Option<u64>| {
            let ticks = after? - before?;
            Some(ticks as f64 * 10.0 / (polls as f64 / names.len() as f64))
        };
        eprintln!(
            "{name}: poller {:.2?} ms, its sshd {:.2?} ms CPU per poll (10 ms ticks)",
            per_poll(awk_before, awk_after),
            per_poll(sshd_before, sshd_after)
        );
        let kill =
            "for p in $(cat /tmp/zap-bench.pids); do kill -- -$p; done; rm -f /tmp/zap-bench.pids";
        let _ = transport.run_capture(kill).await;
    }
    drop(rx);
    for poller in pollers {
        let _ = tokio::time::timeout(Duration::from_secs(10), poller).await;
    }
    for transport in &transports {
        transport.close().await;
    }
}
