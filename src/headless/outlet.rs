//! The way headless output reaches stdout without ever holding up the
//! supervisor: lines are put together in a buffer on the supervisor's
//! thread, and a thread of their own writes them out. A stdout that blocks
//! (a pager left paused, a terminal after Ctrl+S, a fifo nobody reads)
//! makes that thread wait, nobody else. When its queue is full, what does
//! not fit is dropped and counted, and the count is said as soon as output
//! flows again.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

/// A chunk is handed over once it holds this much, or at the next flush.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks that may wait for the writer thread: up to ~4 MB of output.
const QUEUE_CHUNKS: usize = 64;

/// How long `zap up` waits, as it exits, for a stdout that takes nothing:
/// SIGTERM must end it however its output is read.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(2);

pub struct Outlet {
    buffer: Vec<u8>,
    queue: Option<SyncSender<Vec<u8>>>,
    /// Tells that the writer thread wrote everything and ended.
    finished: Receiver<()>,
    /// Lines dropped since the last chunk that went through.
    dropped_lines: u64,
    /// Where a reader finds the dropped lines ("all are in .zap/logs").
    kept_elsewhere: Option<String>,
}

impl Outlet {
    /// Writes to `out` from a thread of its own. `kept_elsewhere` is said
    /// with any count of dropped lines.
    pub fn new(out: impl Write + Send + 'static, kept_elsewhere: Option<String>) -> Outlet {
        let (queue, chunks) = mpsc::sync_channel::<Vec<u8>>(QUEUE_CHUNKS);
        let (done, finished) = mpsc::channel();
        thread::Builder::new()
            .name("zap-stdout".into())
            .spawn(move || {
                let mut out = out;
                for chunk in chunks {
                    // A closed stdout (`zap run | head`) must not stop the
                    // run: the rest is read and thrown away.
                    let _ = out.write_all(&chunk).and_then(|()| out.flush());
                }
                let _ = done.send(());
            })
            .map_err(|error| eprintln!("zap: cannot start the output thread: {error}"))
            .ok();
        Outlet {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            queue: Some(queue),
            finished,
            dropped_lines: 0,
            kept_elsewhere,
        }
    }

    /// Stdout, with the output thread's own buffer.
    pub fn stdout(kept_elsewhere: Option<String>) -> Outlet {
        Outlet::new(io::BufWriter::new(io::stdout()), kept_elsewhere)
    }

    /// Lines dropped and not yet said.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    /// Hands what is buffered to the writer thread, never waiting for it.
    fn hand_over(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let Some(queue) = &self.queue else {
            self.buffer.clear();
            return;
        };
        let mut chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        let note = self.behind_note();
        let note_len = note.len();
        if !note.is_empty() {
            chunk.splice(0..0, note.into_bytes());
        }
        match queue.try_send(chunk) {
            Ok(()) => self.dropped_lines = 0,
            Err(TrySendError::Full(chunk)) => {
                self.dropped_lines += memchr::memchr_iter(b'\n', &chunk[note_len..]).count() as u64;
            }
            Err(TrySendError::Disconnected(_)) => self.queue = None,
        }
    }

    fn behind_note(&self) -> String {
        if self.dropped_lines == 0 {
            return String::new();
        }
        let plural = if self.dropped_lines == 1 { "" } else { "s" };
        let elsewhere = self
            .kept_elsewhere
            .as_deref()
            .map_or(String::new(), |place| format!(", {place}"));
        format!(
            "zap: headless output fell behind: {} line{plural} not printed{elsewhere}\n",
            thousands(self.dropped_lines)
        )
    }

    /// Hands over the rest (after the count of lines dropped, if any) and
    /// waits, at most `within` if given, for it all to be written. Returns
    /// whether it was; if not, the output thread is left waiting on its
    /// stdout.
    pub fn close(mut self, within: Option<Duration>) -> bool {
        let mut rest = self.behind_note().into_bytes();
        rest.append(&mut self.buffer);
        if let Some(queue) = self.queue.take() {
            // The queue may be full: a helper waits for room, so that this
            // wait stays bounded.
            let handed = thread::Builder::new()
                .name("zap-stdout-close".into())
                .spawn(move || {
                    if !rest.is_empty() {
                        let _ = queue.send(rest);
                    }
                });
            if handed.is_err() {
                return false;
            }
        }
        match within {
            Some(within) => self.finished.recv_timeout(within).is_ok(),
            None => self.finished.recv().is_ok(),
        }
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
        // Far more than the queue holds; every write returns at once.
        for _ in 0..200_000 {
            outlet.write_all(line.as_bytes()).expect("never fails");
        }
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
        assert!(text.ends_with(&note), "{}", &text[text.len() - 300..]);
        let printed = text.lines().filter(|l| l.starts_with('x')).count() as u64;
        assert_eq!(printed + dropped, 200_000, "every line printed or counted");
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
