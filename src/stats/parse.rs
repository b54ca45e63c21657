//! Reads the snapshots the host-side poller (`poll.awk`) prints into plain
//! structs. No clock, no I/O; a [`SnapshotReader`] keeps the processes of
//! its last snapshot, which the next one may name by pid alone.
//!
//! The text between the begin and end lines, one record per line, the tag
//! first. The poller parses nothing: in `/proc` mode it hands on the lines
//! of `/proc` as they are.
//!
//! ```text
//! h proc TCK PAGE          clock ticks per second, page size in bytes
//! u LINE                   /proc/uptime
//! l LINE                   /proc/loadavg
//! c LINE                   the "cpu" line of /proc/stat
//! n CPUS                   how many cpuN lines /proc/stat has
//! m LINE                   a line of /proc/meminfo, up to "Cached:"
//! P STATM|STAT             /proc/PID/statm and /proc/PID/stat (see `procstat`)
//! = PID                    a process whose stat line is as at the last poll
//!
//! h ps
//! d EPOCH                  `date +%s`
//! w UPTIME_OUTPUT          `uptime`, for the load average
//! q PID PPID PGID STAT TIME ETIME RSS_KB COMM      a `ps -o` row
//! ```
//!
//! A process line that cannot be read (the process vanished while the
//! poller read it) is skipped and counted, never fatal: the rest of the
//! snapshot is still good.

use std::collections::HashMap;

use super::procstat::{ProcLine, read_proc_line};

use thiserror::Error;

/// Where a snapshot's figures come from; it decides their precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/proc`: CPU times in clock ticks, starts to the tick, host uptime to 10 ms.
    Proc,
    /// `ps`: CPU times to 1 s (procps) or 10 ms (BSD), starts to about a second.
    Ps,
}

impl Source {
    /// How far apart, in clock ticks, two starts of one process may read:
    /// `ps` derives a start from the current time minus the elapsed time,
    /// each rounded to the second.
    pub fn start_slack(self, clock_ticks: u64) -> u64 {
        match self {
            Source::Proc => 0,
            Source::Ps => 2 * clock_ticks,
        }
    }
}

/// The host's CPU use as `/proc/stat` tells it: cumulative jiffies since
/// boot, so a rate needs two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostCpu {
    pub busy: u64,
    pub total: u64,
}

/// One process as the poller saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcSample {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    /// Session id; 0 when the source does not tell (`ps` mode).
    pub sid: u32,
    /// `R`, `S`, `D`, `Z`, `T`, … as in `/proc/PID/stat`.
    pub state: char,
    pub comm: String,
    /// utime + stime, in the snapshot's clock ticks.
    pub cpu_ticks: u64,
    /// cutime + cstime: the CPU time of the children it has reaped (and of
    /// theirs), in the snapshot's clock ticks; `None` where the source does
    /// not tell (`ps` mode, an older poller).
    pub children_ticks: Option<u64>,
    /// When it started, in clock ticks on the snapshot's timeline (since
    /// boot for `/proc`, since the epoch otherwise). With the pid, it tells
    /// a process from a later one that got the same pid.
    pub start: u64,
    pub rss_bytes: u64,
}

/// Everything one poll of one host read.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub source: Source,
    /// The unit of `cpu_ticks`, `start` and `now`, per second.
    pub clock_ticks: u64,
    /// The host's clock at the poll, on the timeline of the starts.
    pub now: Option<u64>,
    pub load: Option<[f64; 3]>,
    pub cpu: Option<HostCpu>,
    pub cores: Option<u32>,
    pub mem_total: Option<u64>,
    pub mem_available: Option<u64>,
    pub processes: Vec<ProcSample>,
    /// Kernel threads seen (left out of `processes`): the poller may stop
    /// reading them.
    pub kernel_threads: Vec<u32>,
    /// Process lines that could not be read and were left out.
    pub skipped: u32,
}

/// Why a snapshot could not be read. Only the host figures and the header
/// can fail it; a bad process line is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("the snapshot has no header line")]
    NoHeader,
    #[error("line {line}: {reason}: {text:?}")]
    BadLine {
        line: usize,
        text: String,
        reason: &'static str,
    },
}

/// Reads a snapshot that names no process by pid alone (the first of a
/// poller, or one from a test).
pub fn parse_snapshot(text: &str) -> Result<Snapshot, ParseError> {
    SnapshotReader::default().read(text)
}

/// Reads one poller's snapshots in order.
#[derive(Debug, Default)]
pub struct SnapshotReader {
    /// The processes (and kernel threads) of the last snapshot read, by pid.
    last: HashMap<u32, ProcLine>,
}

/// The lines of /proc/meminfo zap needs, in kB.
#[derive(Debug, Default)]
struct MemInfo {
    total: Option<u64>,
    free: u64,
    available: Option<u64>,
    buffers: u64,
    cached: u64,
}

impl SnapshotReader {
    /// Reads a snapshot. Lines starting with `@@` (the begin and end frame
    /// lines) and lines with unknown tags are ignored, so the poller can
    /// learn new records without breaking an older reader.
    pub fn read(&mut self, text: &str) -> Result<Snapshot, ParseError> {
        let mut seen = HashMap::with_capacity(self.last.len());
        let snapshot = read_into(text, &self.last, &mut seen)?;
        self.last = seen;
        Ok(snapshot)
    }
}

/// Reads `text`, taking processes named by pid alone from `last`, and
/// putting every process read into `seen`.
fn read_into(
    text: &str,
    last: &HashMap<u32, ProcLine>,
    seen: &mut HashMap<u32, ProcLine>,
) -> Result<Snapshot, ParseError> {
    let mut snapshot: Option<Snapshot> = None;
    let mut uptime: Option<f64> = None;
    let mut page_size = 0u64;
    let mut memory = MemInfo::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let bad = |reason| ParseError::BadLine {
            line: number,
            text: line.chars().take(200).collect(),
            reason,
        };
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        if tag == "h" {
            let mut fields = rest.split_whitespace();
            let source = match fields.next() {
                Some("proc") => Source::Proc,
                Some("ps") => Source::Ps,
                _ => return Err(bad("unknown source")),
            };
            let clock_ticks = match source {
                Source::Proc => {
                    let ticks = number_field(fields.next()).ok_or_else(|| bad("no clock ticks"))?;
                    page_size = number_field(fields.next()).ok_or_else(|| bad("no page size"))?;
                    if ticks == 0 || page_size == 0 {
                        return Err(bad("zero clock ticks or page size"));
                    }
                    ticks
                }
                // `ps` times are read to the hundredth of a second.
                _ => PS_TICKS,
            };
            snapshot = Some(Snapshot {
                source,
                clock_ticks,
                now: None,
                load: None,
                cpu: None,
                cores: None,
                mem_total: None,
                mem_available: None,
                processes: Vec::new(),
                kernel_threads: Vec::new(),
                skipped: 0,
            });
            continue;
        }
        let Some(snapshot) = snapshot.as_mut() else {
            if line.starts_with("@@") || line.is_empty() {
                continue;
            }
            return Err(ParseError::NoHeader);
        };
        match tag {
            "u" => uptime = Some(float_field(rest).ok_or_else(|| bad("bad uptime"))?),
            "l" => snapshot.load = Some(load(rest).ok_or_else(|| bad("bad load average"))?),
            "c" => snapshot.cpu = Some(cpu_times(rest).ok_or_else(|| bad("bad cpu line"))?),
            "n" => {
                let cores = number_field(Some(rest)).ok_or_else(|| bad("bad cpu count"))?;
                snapshot.cores = u32::try_from(cores).ok().filter(|&cores| cores > 0);
            }
            "m" => memory.take(rest).ok_or_else(|| bad("bad memory line"))?,
            "P" => match read_proc_line(rest, page_size) {
                Some(line) => snapshot.take(line, seen),
                None => snapshot.skipped += 1,
            },
            "=" => match rest
                .trim()
                .parse::<u32>()
                .ok()
                .and_then(|pid| last.get(&pid))
            {
                Some(line) => snapshot.take(line.clone(), seen),
                None => snapshot.skipped += 1,
            },
            "d" => {
                let epoch = number_field(Some(rest)).ok_or_else(|| bad("bad date"))?;
                snapshot.now = Some(epoch * PS_TICKS);
            }
            // `uptime` without a load average (some containers) says nothing.
            "w" => snapshot.load = uptime_load(rest),
            "q" => match (snapshot.now, ps_line(rest)) {
                (Some(now), Some((mut sample, elapsed))) => {
                    sample.start = now.saturating_sub(elapsed);
                    snapshot.processes.push(sample);
                }
                _ => snapshot.skipped += 1,
            },
            _ => {}
        }
    }
    let mut snapshot = snapshot.ok_or(ParseError::NoHeader)?;
    if let Some(total) = memory.total {
        let available = memory
            .available
            // MemAvailable exists since Linux 3.14; before it, estimate it.
            .unwrap_or(memory.free + memory.buffers + memory.cached);
        snapshot.mem_total = Some(total * 1024);
        snapshot.mem_available = Some(available * 1024);
    }
    if snapshot.source == Source::Proc {
        // Starts are in ticks since boot: put "now" on the same timeline.
        snapshot.now = uptime.map(|seconds| (seconds * snapshot.clock_ticks as f64).round() as u64);
    }
    Ok(snapshot)
}

impl Snapshot {
    /// Takes in one process (or kernel thread), remembering it in `seen`.
    fn take(&mut self, line: ProcLine, seen: &mut HashMap<u32, ProcLine>) {
        match &line {
            ProcLine::Process(sample) => {
                seen.insert(sample.pid, line.clone());
                self.processes.push(sample.clone());
            }
            ProcLine::KernelThread(pid) => {
                seen.insert(*pid, line.clone());
                self.kernel_threads.push(*pid);
            }
        }
    }
}

impl MemInfo {
    /// Takes one `Key:   VALUE kB` line; `None` when it is not one.
    fn take(&mut self, line: &str) -> Option<()> {
        let (key, value) = line.split_once(':')?;
        let kb: u64 = value.split_whitespace().next()?.parse().ok()?;
        match key.trim() {
            "MemTotal" => self.total = Some(kb),
            "MemFree" => self.free = kb,
            "MemAvailable" => self.available = Some(kb),
            "Buffers" => self.buffers = kb,
            "Cached" => self.cached = kb,
            _ => {}
        }
        Some(())
    }
}

/// `ps` fields are read in hundredths of a second.
const PS_TICKS: u64 = 100;

fn number_field(field: Option<&str>) -> Option<u64> {
    field?.trim().parse().ok()
}

fn float_field(field: &str) -> Option<f64> {
    let value: f64 = field.split_whitespace().next()?.parse().ok()?;
    value.is_finite().then_some(value).filter(|&v| v >= 0.0)
}

fn load(rest: &str) -> Option<[f64; 3]> {
    let mut fields = rest.split_whitespace().map(float_field);
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// The `cpu` line of /proc/stat: user nice system idle iowait irq softirq
/// steal (guest time is already inside user). Busy is all but idle and
/// iowait, as top counts it.
fn cpu_times(rest: &str) -> Option<HostCpu> {
    let rest = rest.trim_start().strip_prefix("cpu ")?;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .take(8)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(HostCpu {
        busy: total - idle,
        total,
    })
}

/// Splits off `count` fields separated by runs of spaces (`ps` aligns its
/// columns); the rest (which may hold spaces of its own) comes last.
fn fields_then_rest(line: &str, count: usize) -> Option<(Vec<&str>, &str)> {
    let mut fields = Vec::with_capacity(count);
    let mut rest = line.trim_start();
    for _ in 0..count {
        let end = rest.find(' ').unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start_matches(' ');
    }
    Some((fields, rest))
}

/// A `ps -o pid=,ppid=,pgid=,stat=,time=,etime=,rss=,comm=` row, and how
/// long ago (in ticks) the process started.
fn ps_line(rest: &str) -> Option<(ProcSample, u64)> {
    let (fields, comm) = fields_then_rest(rest, 7)?;
    let id = |index: usize| fields[index].parse::<u32>().ok();
    Some((
        ProcSample {
            pid: id(0).filter(|&pid| pid > 0)?,
            ppid: id(1)?,
            pgid: id(2)?,
            sid: 0,
            state: fields[3].chars().next()?,
            comm: comm.to_string(),
            cpu_ticks: ps_duration(fields[4])?,
            children_ticks: None,
            start: 0,
            rss_bytes: fields[6].parse::<u64>().ok()?.saturating_mul(1024),
        },
        ps_duration(fields[5])?,
    ))
}

/// `[DD-][HH:]MM:SS[.cc]` (procps `time`/`etime`, BSD `time`) in hundredths
/// of a second. BSD writes minutes past 59 (`123:45.67`); that reads too.
pub(crate) fn ps_duration(text: &str) -> Option<u64> {
    let (days, clock) = match text.split_once('-') {
        Some((days, clock)) => (days.parse::<u64>().ok()?, clock),
        None => (0, text),
    };
    let (whole, hundredths) = match clock.split_once('.') {
        Some((whole, fraction)) => {
            let digits: String = fraction.chars().chain("00".chars()).take(2).collect();
            (whole, digits.parse::<u64>().ok()?)
        }
        None => (clock, 0),
    };
    let parts: Vec<u64> = whole
        .split(':')
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let seconds = parts.iter().fold(0u64, |total, part| total * 60 + part) + days * 86_400;
    Some(seconds * PS_TICKS + hundredths)
}

/// The three numbers after "load average:" (Linux) or "load averages:"
/// (BSD, macOS), with or without commas between them.
fn uptime_load(line: &str) -> Option<[f64; 3]> {
    let (_, after) = line.rsplit_once("load average")?;
    let after = after.trim_start_matches('s').trim_start_matches(':');
    let mut numbers = after
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(float_field);
    Some([numbers.next()??, numbers.next()??, numbers.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::procstat::proc_line_text;

    /// Host lines as /proc has them.
    const HEAD: &str = "h proc 100 4096\nu 1000.50 1900.20\nl 0.10 0.20 0.30 1/234 5678\n\
                        c cpu  100 5 50 800 40 0 5 0 0 0\nn 2\n\
                        m MemTotal:        2048 kB\nm MemFree:          512 kB\n\
                        m MemAvailable:    1024 kB\nm Buffers:          128 kB\nm Cached:           256 kB\n";

    fn one(line: &str) -> Snapshot {
        parse_snapshot(&format!("{HEAD}{line}\n")).expect("parses")
    }

    fn sample(pid: u32, comm: &str) -> ProcSample {
        ProcSample {
            pid,
            ppid: 1,
            pgid: pid,
            sid: pid,
            state: 'S',
            comm: comm.into(),
            cpu_ticks: 7,
            children_ticks: Some(300),
            start: 1000,
            rss_bytes: 25 * 4096,
        }
    }

    fn p_line(sample: &ProcSample) -> String {
        format!("P {}", proc_line_text(sample, 4096, 0))
    }

    #[test]
    fn host_figures_are_read_in_bytes_and_ticks() {
        let snapshot = one("");
        assert_eq!(snapshot.source, Source::Proc);
        assert_eq!(snapshot.clock_ticks, 100);
        assert_eq!(snapshot.now, Some(100_050));
        assert_eq!(snapshot.load, Some([0.1, 0.2, 0.3]));
        assert_eq!(snapshot.cores, Some(2));
        assert_eq!(snapshot.mem_total, Some(2048 * 1024));
        assert_eq!(snapshot.mem_available, Some(1024 * 1024));
        // busy = all but idle (800) and iowait (40).
        assert_eq!(
            snapshot.cpu,
            Some(HostCpu {
                busy: 160,
                total: 1000
            })
        );
    }

    #[test]
    fn without_mem_available_the_free_buffers_and_cache_stand_for_it() {
        let old = HEAD.replace("m MemAvailable:    1024 kB\n", "");
        let snapshot = parse_snapshot(&old).expect("parses");
        assert_eq!(snapshot.mem_available, Some((512 + 128 + 256) * 1024));
    }

    #[test]
    fn process_lines_read_as_written_and_a_known_one_by_its_pid() {
        let (a, b) = (sample(42, "a b) (c"), sample(43, " lead"));
        let mut reader = SnapshotReader::default();
        let first = reader
            .read(&format!("{HEAD}{}\n{}\n", p_line(&a), p_line(&b)))
            .expect("parses");
        assert_eq!(first.processes, [a.clone(), b.clone()]);
        // The next poll names 42 by its pid alone; 43 is gone.
        let second = reader.read(&format!("{HEAD}= 42\n")).expect("parses");
        assert_eq!(second.processes, std::slice::from_ref(&a));
        // Only the last snapshot's processes are remembered.
        let third = reader.read(&format!("{HEAD}= 42\n= 43\n")).expect("parses");
        assert_eq!((third.processes, third.skipped), (vec![a], 1));
    }

    #[test]
    fn kernel_threads_are_left_out_and_listed() {
        let kthread = sample(2, "kthreadd");
        let line = format!("P {}", proc_line_text(&kthread, 4096, 0x0020_0000));
        let mut reader = SnapshotReader::default();
        let first = reader.read(&format!("{HEAD}{line}\n")).expect("parses");
        assert!(first.processes.is_empty());
        assert_eq!(first.kernel_threads, [2]);
        let second = reader.read(&format!("{HEAD}= 2\n")).expect("parses");
        assert_eq!((second.kernel_threads, second.skipped), (vec![2], 0));
    }

    #[test]
    fn vanished_and_broken_process_lines_are_skipped_not_fatal() {
        let good = p_line(&sample(1, "init"));
        for line in ["P", "P 43", "P 1 2 3|43 (x) S 1 43", "= x", "= 99"] {
            let snapshot =
                parse_snapshot(&format!("{HEAD}{good}\n{line}\n")).expect("the snapshot survives");
            assert_eq!(
                (snapshot.processes.len(), snapshot.skipped),
                (1, 1),
                "{line}"
            );
        }
    }

    #[test]
    fn other_clock_ticks_put_now_on_the_start_timeline() {
        let text = HEAD.replace("h proc 100", "h proc 250");
        let snapshot = parse_snapshot(&text).expect("parses");
        assert_eq!((snapshot.clock_ticks, snapshot.now), (250, Some(250_125)));
    }

    #[test]
    fn a_bad_header_or_host_line_fails_the_snapshot() {
        assert_eq!(parse_snapshot(""), Err(ParseError::NoHeader));
        assert_eq!(parse_snapshot("= 1\n"), Err(ParseError::NoHeader));
        assert!(parse_snapshot("h proc 0 4096\n").is_err());
        assert!(parse_snapshot("h bsd\n").is_err());
        assert!(parse_snapshot("h proc 100 4096\nu soon\n").is_err());
        assert!(parse_snapshot("h proc 100 4096\nl 1 2\n").is_err());
        assert!(parse_snapshot("h proc 100 4096\nc 1 2 3 4\n").is_err());
        assert!(parse_snapshot("h proc 100 4096\nm MemTotal: lots\n").is_err());
        // Frame lines and unknown tags are not the parser's business.
        assert!(parse_snapshot("@@zapstats:x:begin 1 2\nh proc 100 4096\nz new\n").is_ok());
    }

    #[test]
    fn ps_durations_read_every_form() {
        assert_eq!(ps_duration("00:01:02"), Some(6200));
        assert_eq!(ps_duration("1-02:03:04"), Some((86_400 + 7384) * 100));
        assert_eq!(ps_duration("0:00.01"), Some(1));
        assert_eq!(ps_duration("123:45.67"), Some((123 * 60 + 45) * 100 + 67));
        assert_eq!(ps_duration("05:07"), Some(307 * 100));
        assert_eq!(ps_duration("1:2:3:4"), None);
        assert_eq!(ps_duration("soon"), None);
    }

    #[test]
    fn ps_rows_get_their_start_from_the_date_and_elapsed_time() {
        let text = "h ps\nd 1000\n\
                    w  10:00:00 up 3 days,  1:02,  0 users,  load average: 1.50, 0.75, 0.25\n\
                    q     1     0     1 Ss   00:00:03       16:40   524 docker-init\n\
                    q   345     1   345 R+   00:00:01       00:10  2048 my (odd) name\n\
                    q   346     1\n";
        let snapshot = parse_snapshot(text).expect("parses");
        assert_eq!(snapshot.source, Source::Ps);
        assert_eq!(snapshot.load, Some([1.5, 0.75, 0.25]));
        assert_eq!(snapshot.now, Some(100_000));
        assert_eq!(snapshot.skipped, 1);
        let p = &snapshot.processes[1];
        assert_eq!(
            (p.pid, p.ppid, p.pgid, p.sid, p.state),
            (345, 1, 345, 0, 'R')
        );
        assert_eq!(
            (p.cpu_ticks, p.start, p.rss_bytes),
            (100, 99_000, 2048 * 1024)
        );
        assert_eq!(p.comm, "my (odd) name");
        assert_eq!(snapshot.processes[0].start, 0);
    }

    #[test]
    fn the_load_average_is_found_in_every_uptime() {
        let mac = "10:00  up 3 days, 2 users, load averages: 1.23 1.45 1.67";
        assert_eq!(uptime_load(mac), Some([1.23, 1.45, 1.67]));
        let linux = " 10:00:00 up 1 min,  0 user,  load average: 0.00, 0.01, 0.05";
        assert_eq!(uptime_load(linux), Some([0.0, 0.01, 0.05]));
        assert_eq!(uptime_load(" 10:00:00 up 1 min"), None);
    }
}
