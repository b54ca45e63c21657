//! One stats poller per host: a long-lived channel on the host's existing
//! connection (or a local shell, for this machine) runs `poll.awk`, which prints a snapshot every interval; this
//! task reads them, adds the rates, and sends [`HostStats`]. When the
//! channel fails it says so (a [`HostStats`] with `unavailable`) and starts
//! again with capped backoff.
//!
//! One channel for the poller's whole life, rather than an exec per poll:
//! it holds one `MaxSessions` place, costs no channel setup per poll, and
//! lets the host side remember what it read last time.

use std::time::Duration;

use std::collections::HashSet;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::HostStats;
use super::frame::Framer;
use super::parse::{Snapshot, SnapshotReader};
use super::rate::measure;
use super::tree::pids_in_jobs;
use crate::model::{HostName, Signal};
use crate::transport::host::Transport;
use crate::transport::script::Nonce;
use crate::transport::{CHUNK_QUEUE, Chunk};

/// The host-side program; see its header for its variables.
pub const POLL_AWK: &str = include_str!("poll.awk");

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The shortest interval zap asks a host for: below it the poller's own
/// cost on the host would show in the figures.
const EVERY_MIN: Duration = Duration::from_millis(200);

/// The shells of the jobs running on a host, as the supervisor knows them.
/// The poller keeps reading their process trees and tells the host side to
/// stop reading what has settled outside them.
pub type ShellPids = watch::Receiver<Vec<u32>>;

/// How old a process outside every job's tree must be before the host side
/// stops reading it: older than any job whose start the supervisor may not
/// have heard of yet.
const SETTLED: Duration = Duration::from_secs(10);

/// Every this many polls the host side forgets what it skips and reads
/// everything once: zap cannot see a skipped process end, so what it
/// remembers as skipped would otherwise only grow.
const SKIP_RESET_EVERY: u64 = 300;

/// How the host-side program is started.
#[derive(Debug, Clone)]
pub struct PollScript {
    pub nonce: String,
    /// Poll once per line read from stdin (and end at EOF) rather than
    /// every `every`: zap paces it, and no `sleep` is started per poll.
    pub fed: bool,
    pub every: Duration,
    /// Snapshots to print before exiting; 0 = until stopped.
    pub polls: u32,
    /// Use `ps` even where `/proc` is readable (tests).
    pub force_ps: bool,
    /// The proc folder (tests point it at fixtures); `/proc` when `None`.
    /// Holds no single quote and no space.
    pub root: Option<String>,
    /// The awk to run: `awk` (whichever the host has) but in the tests
    /// that run the script under each awk it must work with.
    pub awk: &'static str,
}

impl PollScript {
    pub fn new(nonce: String, every: Duration) -> PollScript {
        PollScript {
            nonce,
            fed: false,
            every,
            polls: 0,
            force_ps: false,
            root: None,
            awk: "awk",
        }
    }

    /// The POSIX sh text a transport feeds to `/bin/sh` on the host: it
    /// looks for `/proc`, asks `getconf` for the clock tick and page size,
    /// and replaces itself with awk, so the pid it reports (`$$`) leads the
    /// poller's process group.
    pub fn render(&self) -> String {
        let mode = if self.force_ps {
            "mode=ps".to_string()
        } else {
            "if [ -r /proc/self/stat ]; then mode=proc; else mode=ps; fi".to_string()
        };
        let root = self.root.as_deref().unwrap_or("/proc");
        let every = self.every.max(EVERY_MIN).as_secs_f64();
        // USER_HZ is 100 on every Linux architecture but alpha; 100 stands
        // only where getconf is missing.
        format!(
            "LC_ALL=C\nexport LC_ALL\n{mode}\n\
             tck=$(getconf CLK_TCK 2>/dev/null) || tck=\n\
             page=$(getconf PAGESIZE 2>/dev/null) || page=\n\
             exec {awk} -v nonce={nonce} -v fed={fed} -v every={every} -v polls={polls} -v mode=\"$mode\" \
             -v tck=\"${{tck:-100}}\" -v page=\"${{page:-4096}}\" -v pid=$$ -v refresh=5 \
             -v root={root} '{POLL_AWK}'\n",
            nonce = self.nonce,
            awk = self.awk,
            fed = u8::from(self.fed),
            polls = self.polls,
        )
    }
}

/// How a fed poller's shell takes its script: exactly `len` bytes of
/// stdin, read a byte at a time so that the lines zap writes after it stay
/// there for the poller (`cat` would wait for EOF, and a buffered read
/// could swallow them). Like the job launch command, it holds nothing a
/// login shell other than sh would read differently.
fn fed_launch_command(len: usize) -> String {
    format!(r#"exec /bin/sh -c 'eval "$(dd bs=1 count={len} 2>/dev/null)"'"#)
}

/// Polls `host` every `every` with `poll.awk`, through whichever transport
/// reaches it (this machine's too). Ends (after stopping the host side)
/// when `tx`'s receiver is dropped.
///
/// The first poll waits one interval. A CPU figure takes two polls, so a
/// job that ends sooner would get none anyway, and a short `zap run` then
/// never pays for starting the poller on every host (a channel, a shell,
/// awk reading the whole process table) while its own jobs start.
pub fn spawn_poller(
    host: HostName,
    transport: Transport,
    every: Duration,
    tx: mpsc::Sender<HostStats>,
    shells: ShellPids,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = tx.closed() => return,
        }
        // Ends when the poller does, so that whoever awaits this handle
        // waits for the host side to be stopped.
        let _ = spawn_host_poller(host, transport, every, tx, shells).await;
    })
}

/// Runs `poll.awk` on `host` through `transport` and sends a [`HostStats`] per snapshot. Ends (after
/// stopping the host side) when `tx`'s receiver is dropped.
pub fn spawn_host_poller(
    host: HostName,
    transport: Transport,
    every: Duration,
    tx: mpsc::Sender<HostStats>,
    shells: ShellPids,
) -> JoinHandle<()> {
    spawn_with_prelude(host, transport, every, tx, shells, "")
}

/// [`spawn_host_poller`] with shell text run before the poller's (tests).
fn spawn_with_prelude(
    host: HostName,
    transport: Transport,
    every: Duration,
    tx: mpsc::Sender<HostStats>,
    shells: ShellPids,
    prelude: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = BACKOFF_FIRST;
        loop {
            let ended = poll_channel(&host, &transport, every, &tx, &shells, prelude).await;
            let (reason, snapshots) = match ended {
                Ended::Stopped => return,
                Ended::Failed { reason, snapshots } => (reason, snapshots),
            };
            // A channel that worked for a while earns a quick retry.
            if snapshots > 0 {
                backoff = BACKOFF_FIRST;
            }
            let failed = HostStats::unavailable(host.clone(), std::time::Instant::now(), reason);
            if tx.send(failed).await.is_err() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = tx.closed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    })
}

enum Ended {
    /// Nobody listens any more.
    Stopped,
    Failed {
        reason: String,
        snapshots: u64,
    },
}

/// One run of the host-side poller, from its start to its failure.
async fn poll_channel(
    host: &HostName,
    transport: &Transport,
    every: Duration,
    tx: &mpsc::Sender<HostStats>,
    shells: &ShellPids,
    prelude: &str,
) -> Ended {
    let nonce = Nonce::random().to_string();
    let mut poll_script = PollScript::new(nonce.clone(), every);
    poll_script.fed = true;
    let script = format!("{prelude}{}", poll_script.render());
    let command = fed_launch_command(script.len());
    let (chunks_tx, mut chunks) = mpsc::channel(CHUNK_QUEUE);
    let (feed, feed_rx) = mpsc::channel::<Vec<u8>>(1);
    let mut ticks = tokio::time::interval(every.max(EVERY_MIN));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One poll at a time: a line sent while the host still works on the
    // last poll would start the next one right after it, and rates over a
    // few clock ticks are noise. A tick that finds a poll outstanding is
    // kept and sent when its snapshot arrives.
    let mut pacer = Pacer::default();
    // A new channel is a new host-side poller, which skips nothing yet.
    let mut skips = Skips::default();
    if let Err(error) = transport
        .launch_fed(&command, script.into_bytes(), feed_rx, chunks_tx)
        .await
    {
        return Ended::Failed {
            reason: format!("cannot start the stats poller: {error}"),
            snapshots: 0,
        };
    }
    let mut framer = Framer::new(&nonce);
    // A new host-side poller names no process by pid alone at first.
    let mut reader = SnapshotReader::default();
    let mut stderr = Vec::new();
    let mut previous: Option<(Snapshot, std::time::Instant)> = None;
    let mut snapshots = 0u64;
    // Later than this without a snapshot, the last one is no longer fresh.
    let stale_after = (every * 3).max(Duration::from_secs(10));
    let mut deadline = Instant::now() + stale_after;
    let mut stale_told = false;
    loop {
        tokio::select! {
            chunk = chunks.recv() => match chunk {
                Some(Chunk::Stdout(data)) => {
                    for body in framer.push(&data) {
                        let at = std::time::Instant::now();
                        let snapshot = match reader.read(&body) {
                            Ok(snapshot) => snapshot,
                            Err(error) => {
                                stop_host_side(transport, framer.pid()).await;
                                return Ended::Failed {
                                    reason: format!("unreadable stats snapshot: {error}"),
                                    snapshots,
                                };
                            }
                        };
                        let before = previous.as_ref().map(|(snapshot, at)| (snapshot, *at));
                        let stats = measure(host.clone(), before, &snapshot, at);
                        skips.learn(&snapshot, &stats, &shells.borrow());
                        if tx.send(stats).await.is_err() {
                            stop_host_side(transport, framer.pid()).await;
                            return Ended::Stopped;
                        }
                        previous = Some((snapshot, at));
                        snapshots += 1;
                        if pacer.answered() {
                            let _ = feed.try_send(skips.line());
                        }
                        deadline = Instant::now() + stale_after;
                        stale_told = false;
                    }
                }
                Some(Chunk::Stderr(data)) => keep_tail(&mut stderr, &data),
                Some(Chunk::Exit(exit)) => {
                    return Ended::Failed {
                        reason: with_stderr(format!("the stats poller ended ({exit})"), &stderr),
                        snapshots,
                    };
                }
                Some(Chunk::Lost(reason)) => {
                    return Ended::Failed {
                        reason: format!("the connection was lost: {reason}"),
                        snapshots,
                    };
                }
                None => {
                    return Ended::Failed {
                        reason: "the stats poller's channel closed".into(),
                        snapshots,
                    };
                }
            },
            _ = ticks.tick() => {
                if pacer.tick() {
                    let _ = feed.try_send(skips.line());
                }
            }
            () = tokio::time::sleep_until(deadline), if !stale_told => {
                stale_told = true;
                let reason = format!("no stats snapshot for {}s", stale_after.as_secs());
                let stale = HostStats::unavailable(host.clone(), std::time::Instant::now(), reason);
                if tx.send(stale).await.is_err() {
                    stop_host_side(transport, framer.pid()).await;
                    return Ended::Stopped;
                }
            }
            () = tx.closed() => {
                stop_host_side(transport, framer.pid()).await;
                return Ended::Stopped;
            }
        }
    }
}

/// What the host-side poller is told to skip: processes that settled
/// outside every job's tree (see `told` in poll.awk).
#[derive(Debug, Default)]
struct Skips {
    /// Skipped by the host side, as far as zap knows.
    skipped: HashSet<u32>,
    /// To be named in the next line.
    news: Vec<u32>,
    /// Lines written since the host side last forgot its skips.
    lines: u64,
}

impl Skips {
    /// Takes in a snapshot read from the host side and the job shells the
    /// supervisor knows on the host.
    fn learn(&mut self, snapshot: &Snapshot, stats: &HostStats, shells: &[u32]) {
        // What the snapshot holds was read: the host side does not skip it
        // (any more: the pid left /proc and came back as a new process).
        for process in &snapshot.processes {
            self.skipped.remove(&process.pid);
        }
        // Kernel threads are never part of a job: skipped at once.
        let kernel = snapshot.kernel_threads.iter().copied();
        for pid in kernel.chain(settled_outside(snapshot, stats, shells)) {
            if self.skipped.insert(pid) {
                self.news.push(pid);
            }
        }
    }

    /// The line that asks for the next poll: `s PID...` when there are
    /// processes to skip, `r` to forget every skip once in a while.
    fn line(&mut self) -> Vec<u8> {
        self.lines += 1;
        if self.lines.is_multiple_of(SKIP_RESET_EVERY) {
            self.skipped.clear();
            self.news.clear();
            return b"r\n".to_vec();
        }
        if self.news.is_empty() {
            return b"\n".to_vec();
        }
        let mut line = String::from("s");
        for pid in self.news.drain(..) {
            line.push_str(&format!(" {pid}"));
        }
        line.push('\n');
        line.into_bytes()
    }
}

/// The processes of `snapshot` that the host side may stop reading: in no
/// job's tree, not a job's shell, and older than [`SETTLED`]. Such a
/// process never joins a job later: its children and process group stay
/// in its session, which is no job's; being reparented takes it to init.
/// None when the snapshot has no clock (ps mode, which lists everything
/// anyway).
fn settled_outside(snapshot: &Snapshot, stats: &HostStats, shells: &[u32]) -> Vec<u32> {
    let Some(now) = snapshot.now else {
        return Vec::new();
    };
    let settled = SETTLED.as_secs() * snapshot.clock_ticks;
    let in_jobs = pids_in_jobs(&stats.processes, shells);
    snapshot
        .processes
        .iter()
        .filter(|process| !in_jobs.contains(&process.pid) && !shells.contains(&process.pid))
        .filter(|process| now.saturating_sub(process.start) >= settled)
        .map(|process| process.pid)
        .collect()
}

/// When a fed poller gets its next line: on each tick, unless a poll is
/// still outstanding, in which case as soon as its snapshot arrives.
#[derive(Debug, Default)]
struct Pacer {
    outstanding: bool,
    due: bool,
}

impl Pacer {
    /// An interval has passed; true if a poll should be asked for now.
    fn tick(&mut self) -> bool {
        if self.outstanding {
            self.due = true;
            return false;
        }
        self.outstanding = true;
        true
    }

    /// A snapshot arrived; true if a poll should be asked for now.
    fn answered(&mut self) -> bool {
        self.outstanding = std::mem::take(&mut self.due);
        self.outstanding
    }
}

/// Stops the host-side poller, which otherwise runs until its channel's
/// connection closes: dropping our end of the channel stops nothing there.
async fn stop_host_side(transport: &Transport, pid: Option<u32>) {
    let Some(pid) = pid else { return };
    // Best effort: a host that does not answer in time has bigger trouble,
    // and the poller dies with the connection anyway.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        transport.signal_group(pid, Signal::Term),
    )
    .await;
}

/// Keeps the last few hundred bytes of the poller's stderr, for the reason.
fn keep_tail(tail: &mut Vec<u8>, data: &[u8]) {
    const KEEP: usize = 400;
    tail.extend_from_slice(data);
    if tail.len() > KEEP {
        tail.drain(..tail.len() - KEEP);
    }
}

fn with_stderr(reason: String, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        reason
    } else {
        format!("{reason}: {}", text.replace('\n', " / "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_fits_in_single_quotes() {
        assert!(
            !POLL_AWK.contains('\''),
            "poll.awk must hold no single quote"
        );
    }

    fn run_sh(script: &str) -> (String, String, bool) {
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("run /bin/sh");
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            output.status.success(),
        )
    }

    /// Every snapshot of one poller's output, read in order as zap does.
    fn snapshots(nonce: &str, stdout: &str) -> Vec<Snapshot> {
        let mut reader = SnapshotReader::default();
        Framer::new(nonce)
            .push(stdout.as_bytes())
            .iter()
            .map(|body| reader.read(body).expect("a readable snapshot"))
            .collect()
    }

    #[test]
    fn this_machine_polled_through_proc_reads_itself() {
        let mut script = PollScript::new("ab".repeat(16), Duration::from_millis(200));
        script.polls = 2;
        let (stdout, stderr, ok) = run_sh(&script.render());
        assert!(ok, "{stderr}");
        let taken = snapshots(&script.nonce, &stdout);
        assert_eq!(taken.len(), 2, "{stdout}");
        let own = std::process::id();
        let snapshot = &taken[1];
        assert!(
            snapshot.processes.iter().any(|p| p.pid == own),
            "the test itself is there"
        );
        assert!(snapshot.processes.len() > 3);
        assert!(snapshot.mem_total.is_some() && snapshot.load.is_some() && snapshot.now.is_some());
        assert_eq!(snapshot.skipped, 0);
    }

    #[test]
    fn this_machine_polled_through_ps_reads_itself() {
        let mut script = PollScript::new("cd".repeat(16), Duration::from_millis(200));
        script.polls = 1;
        script.force_ps = true;
        let (stdout, stderr, ok) = run_sh(&script.render());
        assert!(ok, "{stderr}");
        let taken = snapshots(&script.nonce, &stdout);
        let snapshot = &taken[0];
        assert_eq!(snapshot.source, crate::stats::parse::Source::Ps);
        let own = std::process::id();
        let me = snapshot
            .processes
            .iter()
            .find(|p| p.pid == own)
            .expect("the test is there");
        assert!(me.rss_bytes > 0);
        assert!(snapshot.load.is_some());
    }

    #[test]
    fn a_fed_poller_is_asked_once_per_interval_and_never_twice_at_once() {
        let mut pacer = Pacer::default();
        assert!(pacer.tick(), "the first tick asks");
        assert!(!pacer.answered(), "nothing was due");
        assert!(pacer.tick());
        // A slow host: the next tick comes before the snapshot.
        assert!(!pacer.tick());
        assert!(!pacer.tick(), "ticks missed meanwhile ask once");
        assert!(pacer.answered(), "the missed tick asks on the answer");
        assert!(!pacer.tick(), "that poll is outstanding");
        assert!(pacer.answered());
        assert!(!pacer.answered(), "an answer alone does not ask");
        assert!(pacer.tick());
    }

    /// Starts a fed poller as zap launches it, its script written: what
    /// follows on the stdin returned are the lines that ask for polls.
    fn start_fed(script: &PollScript) -> (std::process::Child, std::process::ChildStdin) {
        use std::io::Write;
        let text = script.render();
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(fed_launch_command(text.len()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run /bin/sh");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("the script");
        (child, stdin)
    }

    /// Runs a fed poller as zap launches it, with `lines` on its stdin.
    fn run_fed(script: &PollScript, lines: usize) -> (String, String, bool) {
        use std::io::Write;
        let (child, mut stdin) = start_fed(script);
        stdin.write_all(&b"\n".repeat(lines)).expect("the lines");
        drop(stdin);
        let output = child.wait_with_output().expect("waited");
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            output.status.success(),
        )
    }

    /// A fed poller over a folder standing for /proc, driven a line at a
    /// time: each poll is read whole before the next line is written.
    struct Driven {
        child: std::process::Child,
        stdin: std::process::ChildStdin,
        stdout: std::io::BufReader<std::process::ChildStdout>,
        nonce: String,
        polls: u64,
        reader: SnapshotReader,
    }

    impl Driven {
        fn start(root: &std::path::Path) -> Driven {
            let mut script = PollScript::new("cd".repeat(16), Duration::from_secs(60));
            script.fed = true;
            script.root = Some(root.display().to_string());
            let (mut child, stdin) = start_fed(&script);
            let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
            Driven {
                child,
                stdin,
                stdout,
                nonce: script.nonce,
                polls: 0,
                reader: SnapshotReader::default(),
            }
        }

        /// The pids of the snapshot that `line` asks for, in order.
        fn poll(&mut self, line: &str) -> Vec<u32> {
            use std::io::{BufRead, Write};
            self.stdin.write_all(line.as_bytes()).expect("a line");
            self.stdin.flush().expect("flushed");
            self.polls += 1;
            let end = format!("@@zapstats:{}:end {}", self.nonce, self.polls);
            let mut text = String::new();
            loop {
                let mut read = String::new();
                assert!(
                    self.stdout.read_line(&mut read).expect("read") > 0,
                    "{text}"
                );
                text.push_str(&read);
                if read.trim_end() == end {
                    break;
                }
            }
            let bodies = Framer::new(&self.nonce).push(text.as_bytes());
            assert_eq!(bodies.len(), 1, "{text}");
            let taken = self.reader.read(&bodies[0]).expect("a readable snapshot");
            let mut pids: Vec<u32> = taken.processes.iter().map(|p| p.pid).collect();
            pids.sort_unstable();
            pids
        }
    }

    impl Drop for Driven {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A folder with this machine's host files and `pids` as processes,
    /// each a copy of this test's own stat and statm.
    fn fake_proc(pids: &[u32]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("a temp dir");
        for file in ["uptime", "loadavg", "stat", "meminfo"] {
            let text = std::fs::read(format!("/proc/{file}")).expect("a host file");
            std::fs::write(root.path().join(file), text).expect("written");
        }
        for &pid in pids {
            add_process(root.path(), pid);
        }
        root
    }

    fn add_process(root: &std::path::Path, pid: u32) {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("own stat");
        let (_, rest) = stat.split_once(' ').expect("a pid first");
        let dir = root.join(pid.to_string());
        std::fs::create_dir(&dir).expect("a process folder");
        std::fs::write(dir.join("stat"), format!("{pid} {rest}")).expect("stat");
        let statm = std::fs::read("/proc/self/statm").expect("own statm");
        std::fs::write(dir.join("statm"), statm).expect("statm");
    }

    #[test]
    fn a_skipped_process_is_left_out_until_its_pid_leaves_and_comes_back() {
        let root = fake_proc(&[4242, 4343]);
        let mut poller = Driven::start(root.path());
        assert_eq!(poller.poll("\n"), [4242, 4343]);
        assert_eq!(poller.poll("s 4242\n"), [4343], "4242 is skipped");
        assert_eq!(poller.poll("\n"), [4343], "and stays skipped");
        // The process ends; a new one takes its pid: that one is read.
        std::fs::remove_dir_all(root.path().join("4242")).expect("gone");
        assert_eq!(poller.poll("\n"), [4343]);
        add_process(root.path(), 4242);
        assert_eq!(poller.poll("\n"), [4242, 4343], "a new process, read");
        // Forgetting every skip reads everything again.
        assert_eq!(poller.poll("s 4242 4343\n"), Vec::<u32>::new());
        assert_eq!(poller.poll("r\n"), [4242, 4343]);
    }

    #[test]
    fn only_processes_settled_outside_every_job_are_skipped() {
        let snapshot = |processes: &[(u32, u32, u32, u64)]| Snapshot {
            source: super::super::parse::Source::Proc,
            clock_ticks: 100,
            now: Some(100_000),
            load: None,
            cpu: None,
            cores: None,
            mem_total: None,
            mem_available: None,
            processes: processes
                .iter()
                .map(|&(pid, ppid, sid, start)| super::super::parse::ProcSample {
                    pid,
                    ppid,
                    pgid: pid,
                    sid,
                    state: 'S',
                    comm: "x".into(),
                    cpu_ticks: 0,
                    children_ticks: None,
                    start,
                    rss_bytes: 0,
                })
                .collect(),
            kernel_threads: Vec::new(),
            skipped: 0,
        };
        let old = 100_000 - 11 * 100;
        let young = 100_000 - 9 * 100;
        // 10: a job's shell; 11 its child, 12 a grandchild; 20 an old
        // daemon; 21 a young process outside (maybe a job not heard of yet);
        // 30 the shell of a job the supervisor does not know (yet): young.
        let taken = snapshot(&[
            (10, 1, 10, old),
            (11, 10, 10, old),
            (12, 11, 10, old),
            (20, 1, 20, old),
            (21, 1, 21, young),
            (30, 1, 30, young),
        ]);
        let stats = measure(
            HostName("n1".into()),
            None,
            &taken,
            std::time::Instant::now(),
        );
        assert_eq!(settled_outside(&taken, &stats, &[10]), [20]);
        assert_eq!(settled_outside(&taken, &stats, &[10, 30]), [20]);
        assert_eq!(settled_outside(&taken, &stats, &[]), [10, 11, 12, 20]);
        let mut skips = Skips::default();
        skips.learn(&taken, &stats, &[10]);
        assert_eq!(skips.line(), b"s 20\n");
        skips.learn(&taken, &stats, &[10]);
        assert_eq!(skips.line(), b"s 20\n", "read again, so skipped no longer");
        assert_eq!(skips.line(), b"\n", "nothing new");
        // ps mode has no clock: nothing is skipped.
        let ps = Snapshot {
            now: None,
            ..taken.clone()
        };
        assert_eq!(settled_outside(&ps, &stats, &[]), Vec::<u32>::new());
    }

    #[test]
    fn processes_ending_while_they_are_read_never_stop_the_poller() {
        // Thousands of processes a second start and end beside the poller:
        // some end between the opening of their files and the reading.
        let mut churn = std::process::Command::new("/bin/sh")
            .args(["-c", "while :; do /bin/true & /bin/true & wait; done"])
            .spawn()
            .expect("start the churn");
        let mut script = PollScript::new("fe".repeat(16), Duration::from_secs(60));
        script.fed = true;
        let (stdout, stderr, ok) = run_fed(&script, 300);
        let _ = churn.kill();
        let _ = churn.wait();
        assert!(ok, "{stderr}");
        assert_eq!(snapshots(&script.nonce, &stdout).len(), 300, "{stderr}");
    }

    #[test]
    fn a_fed_poller_polls_once_per_line_and_ends_at_eof() {
        for force_ps in [false, true] {
            let mut script = PollScript::new("ef".repeat(16), Duration::from_secs(60));
            script.fed = true;
            script.force_ps = force_ps;
            // Polls are not paced by `every` (a minute here) but by the
            // lines, and EOF ends the poller without a half snapshot.
            let (stdout, stderr, ok) = run_fed(&script, 3);
            assert!(ok, "{stderr}");
            let taken = snapshots(&script.nonce, &stdout);
            assert_eq!(taken.len(), 3, "ps: {force_ps}: {stdout}");
            assert_eq!(stdout.matches(":begin ").count(), 3);
            assert!(taken.iter().all(|s| !s.processes.is_empty()));
        }
    }

    #[tokio::test]
    async fn the_task_sends_rates_then_stops_its_poller_when_nobody_listens() {
        let (tx, mut rx) = mpsc::channel(4);
        let transport = Transport::local();
        let poller = spawn_host_poller(
            HostName("here".into()),
            transport,
            Duration::from_millis(300),
            tx,
            watch::channel(Vec::new()).1,
        );
        let first = rx.recv().await.expect("a first snapshot");
        assert_eq!(first.unavailable, None);
        assert_eq!(first.cpu_percent, None, "no rate on the first snapshot");
        let second = rx.recv().await.expect("a second snapshot");
        assert!(second.cpu_percent.is_some());
        assert!(second.processes.iter().any(|p| p.cpu_percent.is_some()));
        let awk = second
            .processes
            .iter()
            .find(|p| p.ppid == std::process::id() && p.comm.contains("awk"))
            .map(|p| p.pid)
            .expect("the poller runs as awk, a child of this test");
        drop(rx);
        tokio::time::timeout(Duration::from_secs(10), poller)
            .await
            .expect("the task ends")
            .expect("no panic");
        // Gone, or a zombie until it is reaped. The bound is generous: a
        // poll under way finishes first, and beside the tests that start
        // thousands of processes a second one poll can take seconds.
        let mut state = String::new();
        for _ in 0..300 {
            state = std::fs::read_to_string(format!("/proc/{awk}/stat")).unwrap_or_default();
            if state.is_empty() || state.contains(") Z ") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the host-side poller still runs: {state}");
    }

    #[tokio::test]
    async fn a_failing_poller_is_unavailable_with_the_reason_and_retried() {
        let (tx, mut rx) = mpsc::channel(4);
        // A host without awk: the script finds none on its PATH.
        let poller = spawn_with_prelude(
            HostName("bare".into()),
            Transport::local(),
            Duration::from_millis(300),
            tx,
            watch::channel(Vec::new()).1,
            "PATH=/nonexistent\n",
        );
        for attempt in 0..2 {
            let stats = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("told in time")
                .expect("a report");
            let reason = stats.unavailable.expect("unavailable");
            assert!(reason.contains("awk"), "attempt {attempt}: {reason}");
            assert!(stats.processes.is_empty() && stats.load.is_none());
        }
        drop(rx);
        tokio::time::timeout(Duration::from_secs(10), poller)
            .await
            .expect("the task ends")
            .expect("no panic");
    }
}
