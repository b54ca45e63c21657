//! One process as `poll.awk` hands it on: its `/proc/PID/statm` and
//! `/proc/PID/stat` lines as read (`P STATM|STAT`), parsed here. Pure.

use super::parse::ProcSample;

/// What a process line is.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcLine {
    Process(ProcSample),
    /// A kernel thread: never part of a job, and real hosts have hundreds;
    /// the poller is told to stop reading it.
    KernelThread(u32),
}

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Reads `STATM|STAT` (the text after `P `), sizes in pages of
/// `page_size` bytes; `None` when it cannot be read (the process vanished
/// while it was read, or the line is cut).
pub fn read_proc_line(text: &str, page_size: u64) -> Option<ProcLine> {
    let (statm, stat) = text.split_once('|')?;
    // The comm (field 2) may hold anything, parentheses and spaces too:
    // it is inside the first "(" and the LAST ")".
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    if close < open {
        return None;
    }
    let pid: u32 = stat[..open].trim().parse().ok().filter(|&pid| pid > 0)?;
    let comm = &stat[open + 1..close];
    // Fields 3 onwards: state is field 3, so field N is at N - 3.
    let mut fields = [""; 22];
    let mut after = stat[close + 1..].split_ascii_whitespace();
    for field in &mut fields {
        *field = after.next()?;
    }
    let number = |field: usize| fields[field].parse::<u64>().ok();
    let id = |field: usize| fields[field].parse::<u32>().ok();
    let mut letters = fields[0].chars();
    let (Some(state), None) = (letters.next(), letters.next()) else {
        return None;
    };
    let flags = number(6)?;
    let vsize = number(20)?;
    if flags & PF_KTHREAD != 0 || (vsize == 0 && state != 'Z') {
        return Some(ProcLine::KernelThread(pid));
    }
    // statm's resident pages (its second field) are precise; stat's rss
    // (field 24) is the fallback when statm could not be read.
    let resident = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse::<u64>().ok())
        .or_else(|| number(21))?;
    let utime = number(11)?;
    let stime = number(12)?;
    let cutime = number(13)?;
    let cstime = number(14)?;
    Some(ProcLine::Process(ProcSample {
        pid,
        ppid: id(1)?,
        pgid: id(2)?,
        sid: id(3)?,
        state,
        comm: comm.to_string(),
        cpu_ticks: utime.checked_add(stime)?,
        children_ticks: Some(cutime.checked_add(cstime)?),
        start: number(19)?,
        rss_bytes: if state == 'Z' {
            0
        } else {
            resident.saturating_mul(page_size)
        },
    }))
}

/// A `P` line's text for a process with these figures, as `poll.awk`
/// prints it (the stat line has every field up to rss; the rest, zeros):
/// for tests and fixtures written by hand.
#[cfg(test)]
pub fn proc_line_text(sample: &ProcSample, page_size: u64, flags: u64) -> String {
    let pages = sample.rss_bytes / page_size;
    let (utime, stime) = (sample.cpu_ticks, 0);
    let (cutime, cstime) = (sample.children_ticks.unwrap_or(0), 0);
    let vsize = if sample.state == 'Z' { 0 } else { 4096 };
    format!(
        "0 {pages} 0 0 0 0 0|{} ({}) {} {} {} {} 0 -1 {flags} 0 0 0 0 {utime} {stime} {cutime} {cstime} \
         20 0 1 0 {} {vsize} {pages} 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
        sample.pid, sample.comm, sample.state, sample.ppid, sample.pgid, sample.sid, sample.start
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real lines from a fleet container's /proc (see `fixtures/proc/`).
    const ODD: &str = "3746 (a b) (c) S 0 3746 3746 0 -1 4194560 1036 261 0 3 1 1 392 1 \
                       20 0 1 0 386359 2654208 378 18446744073709551615 1 1 0 0 0 0 0 0 65536 \
                       0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
    const KTHREADD: &str = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 11 0 0 20 0 1 0 1 0 0 \
                            18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0";

    fn process(text: &str) -> ProcSample {
        match read_proc_line(text, 4096) {
            Some(ProcLine::Process(sample)) => sample,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_fields_are_read_past_any_comm_and_memory_comes_from_statm() {
        let p = process(&format!("648 334 290 163 0 218 0|{ODD}"));
        assert_eq!(
            (p.pid, p.ppid, p.pgid, p.sid, p.state),
            (3746, 0, 3746, 3746, 'S')
        );
        assert_eq!(p.comm, "a b) (c");
        assert_eq!((p.cpu_ticks, p.children_ticks), (2, Some(393)));
        assert_eq!((p.start, p.rss_bytes), (386_359, 334 * 4096));
        // statm unreadable: stat's rss.
        assert_eq!(process(&format!("|{ODD}")).rss_bytes, 378 * 4096);
    }

    #[test]
    fn kernel_threads_are_told_apart() {
        assert_eq!(
            read_proc_line(&format!("0 0 0 0 0 0 0|{KTHREADD}"), 4096),
            Some(ProcLine::KernelThread(2))
        );
    }

    #[test]
    fn a_zombie_is_a_process_without_memory() {
        let zombie = ODD
            .replace(") S ", ") Z ")
            .replace(" 2654208 378 ", " 0 0 ");
        let p = process(&format!("0 0 0 0 0 0 0|{zombie}"));
        assert_eq!((p.state, p.rss_bytes), ('Z', 0));
    }

    #[test]
    fn cut_and_broken_lines_are_unreadable() {
        for text in [
            "",
            "1 2 3",
            &format!("1 2|{}", &ODD[..60]),
            "1 2|3746 a b S 0",
            &format!("1 2|{}", ODD.replace("3746 (", "x (")),
            &format!("1 2|{}", ODD.replace(") S ", ") SS ")),
        ] {
            assert_eq!(read_proc_line(text, 4096), None, "{text}");
        }
    }

    #[test]
    fn a_hand_written_line_reads_back_as_written() {
        let sample = ProcSample {
            pid: 42,
            ppid: 1,
            pgid: 42,
            sid: 42,
            state: 'R',
            comm: "my (odd) name".into(),
            cpu_ticks: 7,
            children_ticks: Some(300),
            start: 1000,
            rss_bytes: 25 * 4096,
        };
        assert_eq!(process(&proc_line_text(&sample, 4096, 0)), sample);
    }
}
