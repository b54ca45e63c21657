//! The way headless output reaches stdout without ever holding up the
//! supervisor for long: lines are put together on the supervisor's thread
//! and handed to a shared buffer, which a thread of its own writes out,
//! waking when the buffer is large or every [`WRITE_EVERY`] (so steady
//! output costs it a few wake-ups a second, not one per event).
//!
//! A stdout that reads slowly slows zap down, as a pipe should: a full
//! buffer makes the supervisor wait for room. A stdout that takes nothing
//! for [`STALL_AFTER`] (a pager left paused, a terminal after Ctrl+S, a fifo
//! nobody reads) is given up on: from then on what does not fit is dropped
//! and counted, and the count is said as soon as output flows again, while
//! the connections, `zap status` and signals carry on.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The supervisor's own buffer is handed over once it holds this much, or
/// when the supervisor is idle.
const CHUNK_BYTES: usize = 64 * 1024;

/// The most output waiting for the writer thread.
const LIMIT_BYTES: usize = 4 * 1024 * 1024;

/// The writer thread writes at least this often while output waits.
const WRITE_EVERY: Duration = Duration::from_millis(20);

/// How long a full buffer may stay full before stdout counts as stuck.
const STALL_AFTER: Duration = Duration::from_secs(1);

/// How long `zap up` waits, as it exits, for a stdout that takes nothing:
/// SIGTERM must end it however its output is read.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// What the supervisor and the writer thread share.
#[derive(Default)]
struct Shared {
    waiting: Vec<u8>,
    /// Lines dropped since stdout stalled, not yet said.
    dropped_lines: u64,
    /// Where in `waiting` they would have been: the note goes there.
    dropped_at: usize,
    /// Stdout took nothing for `STALL_AFTER`: drop instead of waiting,
    /// until it takes half the buffer.
    stalled: bool,
    /// No more output will come.
    closed: bool,
    /// The writer thread wrote everything and ended.
    finished: bool,
}

struct Queue {
    shared: Mutex<Shared>,
    /// Wakes the writer: much waiting, or closed.
    work: Condvar,
    /// Wakes the supervisor: room in the buffer, or the writer finished.
    room: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Whoever panicked held it only to move bytes: use what is there.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Outlet {
    buffer: Vec<u8>,
    queue: Arc<Queue>,
}

impl Outlet {
    /// Writes to `out` from a thread of its own. `kept_elsewhere` is said
    /// with any count of dropped lines.
    pub fn new(out: impl Write + Send + 'static, kept_elsewhere: Option<String>) -> Outlet {
        let queue = Arc::new(Queue {
            shared: Mutex::new(Shared::default()),
            work: Condvar::new(),
            room: Condvar::new(),
        });
        let writer = Arc::clone(&queue);
        thread::Builder::new()
            .name("zap-stdout".into())
            .spawn(move || write_out(&writer, out, kept_elsewhere.as_deref()))
            .map_err(|error| eprintln!("zap: cannot start the output thread: {error}"))
            .ok();
        Outlet {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            queue,
        }
    }

    /// Stdout, with the output thread's own buffer.
    pub fn stdout(kept_elsewhere: Option<String>) -> Outlet {
        Outlet::new(io::BufWriter::new(io::stdout()), kept_elsewhere)
    }

    /// Lines dropped and not yet said.
    pub fn dropped_lines(&self) -> u64 {
        self.queue.lock().dropped_lines
    }

    /// Moves the buffer to the writer's: waits while it is full and stdout
    /// still takes something, drops (and counts) once stdout is stuck.
    fn hand_over(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let mut shared = self.queue.lock();
        let mut full_since: Option<Instant> = None;
        while !shared.stalled
            && !shared.finished
            && shared.waiting.len() + self.buffer.len() > LIMIT_BYTES
        {
            let since = *full_since.get_or_insert_with(Instant::now);
            let left = STALL_AFTER.saturating_sub(since.elapsed());
            if left.is_zero() {
                shared.stalled = true;
                break;
            }
            self.queue.work.notify_one();
            shared = self
                .queue
                .room
                .wait_timeout(shared, left)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard);
        }
        if shared.finished {
            self.buffer.clear();
            return;
        }
        if shared.stalled && shared.waiting.len() + self.buffer.len() > LIMIT_BYTES {
            if shared.dropped_lines == 0 {
                shared.dropped_at = shared.waiting.len();
            }
            shared.dropped_lines += memchr::memchr_iter(b'\n', &self.buffer).count() as u64;
            self.buffer.clear();
            return;
        }
        // The writer is woken for the first bytes of a burst (it then
        // gathers for WRITE_EVERY) and for a large buffer.
        let first = shared.waiting.is_empty();
        shared.waiting.append(&mut self.buffer);
        if first || shared.waiting.len() >= CHUNK_BYTES {
            self.queue.work.notify_one();
        }
    }

    /// Hands over the rest and waits, at most `within` if given, for it all
    /// to be written (with the count of lines dropped, if any). Returns
    /// whether it was; if not, the output thread is left waiting on its
    /// stdout.
    pub fn close(mut self, within: Option<Duration>) -> bool {
        self.hand_over();
        let deadline = within.map(|within| Instant::now() + within);
        let mut shared = self.queue.lock();
        shared.closed = true;
        self.queue.work.notify_one();
        while !shared.finished {
            shared = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.queue
                        .room
                        .wait_timeout(shared, left)
                        .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard)
                }
                None => self
                    .queue
                    .room
                    .wait(shared)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
        }
        true
    }
}

impl Write for Outlet {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.hand_over();
        }
        Ok(bytes.len())
    }

    /// Hands the buffer over; the writing itself happens on the thread.
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over();
        Ok(())
    }
}

/// The writer thread: takes what waits (when there is much, when closed,
/// or every `WRITE_EVERY`) and writes it, saying first how many lines were
/// dropped if stdout had stalled.
fn write_out(queue: &Queue, mut out: impl Write, kept_elsewhere: Option<&str>) {
    let mut writing = Vec::with_capacity(CHUNK_BYTES);
    loop {
        let mut shared = queue.lock();
        while shared.waiting.is_empty() && !shared.closed {
            shared = queue
                .work
                .wait(shared)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if shared.waiting.len() < CHUNK_BYTES && !shared.closed {
            // A little waits: let more join it, unless it grows large.
            shared = queue
                .work
                .wait_timeout(shared, WRITE_EVERY)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(guard, _)| guard);
        }
        std::mem::swap(&mut writing, &mut shared.waiting);
        // Here stdout took the last write: it flows again.
        if shared.dropped_lines > 0 {
            let note = behind_note(shared.dropped_lines, kept_elsewhere);
            let at = shared.dropped_at.min(writing.len());
            writing.splice(at..at, note.into_bytes());
            shared.dropped_lines = 0;
            shared.stalled = false;
        }
        let done = shared.closed && writing.is_empty();
        if done {
            shared.finished = true;
        }
        drop(shared);
        queue.room.notify_all();
        if done {
            return;
        }
        // A closed stdout (`zap run | head`) must not stop the run: the
        // rest is taken and thrown away.
        let _ = out.write_all(&writing).and_then(|()| out.flush());
        writing.clear();
    }
}

fn behind_note(dropped: u64, kept_elsewhere: Option<&str>) -> String {
    let plural = if dropped == 1 { "" } else { "s" };
    let elsewhere = kept_elsewhere.map_or(String::new(), |place| format!(", {place}"));
    format!(
        "zap: headless output fell behind: {} line{plural} not printed{elsewhere}\n",
        thousands(dropped)
    )
}

/// 12000 → "12,000".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Condvar, Mutex};

    /// A stdout that takes nothing until it is opened (a paused pager).
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        taken: Arc<Mutex<Vec<u8>>>,
    }

    impl Gate {
        fn open(&self) {
            let (lock, wake) = &*self.open;
            *lock.lock().expect("lock") = true;
            wake.notify_all();
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.taken.lock().expect("lock")).into_owned()
        }
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let (lock, wake) = &*self.open;
            let mut open = lock.lock().expect("lock");
            while !*open {
                open = wake.wait(open).expect("wait");
            }
            self.taken.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stdout_that_takes_nothing_never_blocks_the_writer_and_the_loss_is_said() {
        let gate = Gate::default();
        let mut outlet = Outlet::new(gate.clone(), Some("all are in .zap/logs".into()));
        let line = format!("{}\n", "x".repeat(99));
        // Far more than the buffer holds: after one wait of STALL_AFTER,
        // what does not fit is dropped.
        let began = Instant::now();
        for _ in 0..200_000 {
            outlet.write_all(line.as_bytes()).expect("never fails");
        }
        assert!(began.elapsed() < STALL_AFTER * 3, "{:?}", began.elapsed());
        outlet.flush().expect("never fails");
        let dropped = outlet.dropped_lines();
        assert!(dropped > 100_000, "most lines did not fit: {dropped}");
        gate.open();
        assert!(outlet.close(Some(Duration::from_secs(10))), "all written");
        let text = gate.text();
        let note = format!(
            "zap: headless output fell behind: {} lines not printed, all are in .zap/logs\n",
            thousands(dropped)
        );
        // Said where the lines went missing, once.
        assert_eq!(
            text.matches(&note).count(),
            1,
            "{}",
            &text[text.len() - 300..]
        );
        let printed = text.lines().filter(|l| l.starts_with('x')).count() as u64;
        assert_eq!(printed + dropped, 200_000, "every line printed or counted");
    }

    /// A stdout that takes a little at a time, slowly: a pipe to a busy
    /// reader.
    struct Trickle(Arc<Mutex<Vec<u8>>>);

    impl Write for Trickle {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            thread::sleep(Duration::from_micros(100));
            let taken = bytes.len().min(8192);
            self.0
                .lock()
                .expect("lock")
                .extend_from_slice(&bytes[..taken]);
            Ok(taken)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_stdout_that_keeps_reading_slows_zap_down_and_loses_nothing() {
        let taken = Arc::new(Mutex::new(Vec::new()));
        let mut outlet = Outlet::new(Trickle(Arc::clone(&taken)), None);
        let line = format!("{}\n", "y".repeat(99));
        for _ in 0..100_000 {
            outlet.write_all(line.as_bytes()).expect("never fails");
        }
        assert_eq!(outlet.dropped_lines(), 0);
        assert!(outlet.close(None));
        let text = String::from_utf8(taken.lock().expect("lock").clone()).expect("text");
        assert_eq!(text.lines().count(), 100_000);
        assert!(!text.contains("fell behind"));
    }

    #[test]
    fn closing_gives_up_on_a_stdout_that_never_reads() {
        let gate = Gate::default();
        let mut outlet = Outlet::new(gate, None);
        outlet.write_all(b"stuck\n").expect("write");
        assert!(!outlet.close(Some(Duration::from_millis(200))));
    }

    #[test]
    fn counts_read_at_a_glance() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(12_000), "12,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
