//! The one thread that appends every instance's lines to its log file, and
//! the [`LogWriter`] handle through which the async side hands it lines.
//!
//! File I/O blocks, so it never runs on the runtime: `append` only puts the
//! line in a bounded queue. The thread writes through a buffer per file and
//! flushes once no line has come for [`IDLE`], and at least every
//! [`FLUSH_EVERY`] while lines keep coming, so a burst costs few system
//! calls and a quiet job's last line is on disk at once.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{LogLine, files, record};
use crate::model::InstanceId;

/// How many batches of lines (see [`LogWriter::append_all`]) may wait for
/// the writer, some 64k lines; past that, lines are counted as missed
/// instead of making the supervisor wait for the disk.
const QUEUE_BATCHES: usize = 256;

/// The most lines [`LogWriter::append_all`] puts in one batch, which bounds
/// the lines waiting at `QUEUE_BATCHES × BATCH_LINES`.
pub const BATCH_LINES: usize = 256;

/// The longest a written line waits in a buffer while lines keep coming.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// A pause this long in the lines means a quiet moment: time to flush.
const IDLE: Duration = Duration::from_millis(10);

/// How long a file that failed is left alone before it is tried again (a
/// full disk may get space back). Lines for it meanwhile are counted, and
/// the count written once it works again.
const RETRY_AFTER: Duration = if cfg!(test) {
    Duration::from_millis(50)
} else {
    Duration::from_secs(5)
};

/// When a log file is rotated, and how many files an instance keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated before the line that would take it past this size
    /// (a single longer line still gets a file of its own).
    pub max_bytes: u64,
    /// How many files an instance keeps, the current one included: its
    /// output on disk is at most about `keep × max_bytes`. At least 1.
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Rotation {
        Rotation {
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// A log file that could not be written. Reported once per file; its lines
/// are lost until writing works again (then the file says how many).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the log {}: {source}", path.display())]
pub struct LogError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// How writing the logs goes, told as it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogHealth {
    /// A file failed (the first while all others were fine): its lines
    /// are lost until writing works again. The error, in words.
    Failing(String),
    /// Every file that failed is written again.
    Writing,
}

/// A handle to the log writer thread; clones share the thread.
///
/// Lines of one instance must be appended through one handle (one task) to
/// stay in order, as they are then.
#[derive(Debug, Clone)]
pub struct LogWriter {
    queue: SyncSender<Msg>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    /// Taken by whichever clone stops the writer. A std mutex: it is only
    /// locked in `flush_and_stop`, which blocks anyway.
    thread: Mutex<Option<JoinHandle<Vec<LogError>>>>,
    /// Lines that found the queue full, per instance, not yet said in its
    /// file. A std mutex, locked only when `pending` says there are some.
    missed: Mutex<HashMap<InstanceId, u64>>,
    /// The sum of `missed`, so the common case needs no lock.
    pending: AtomicU64,
    /// Every line missed so far.
    missed_ever: AtomicU64,
}

enum Msg {
    /// Lines of one instance, after `missed` lines of it that found the
    /// queue full.
    Lines {
        id: InstanceId,
        lines: Vec<LogLine>,
        missed: u64,
    },
    Stop,
    /// Keeps the thread busy, as a slow disk would.
    #[cfg(test)]
    Stall(Duration),
}

impl LogWriter {
    /// Starts the writer for the log directory `root` (see
    /// [`logs_dir`](super::logs_dir)), with the default rotation. Errors are
    /// returned by [`LogWriter::flush_and_stop`].
    pub fn start(root: PathBuf) -> io::Result<LogWriter> {
        LogWriter::start_with(root, Rotation::default(), |_| {})
    }

    /// Starts the writer; `on_health` hears as soon as writing starts to
    /// fail and when it works again (on the writer thread: it should only
    /// pass the news on). The directory is created when the first line
    /// comes.
    pub fn start_with(
        root: PathBuf,
        rotation: Rotation,
        on_health: impl FnMut(LogHealth) + Send + 'static,
    ) -> io::Result<LogWriter> {
        let (queue, lines) = sync_channel(QUEUE_BATCHES);
        let worker = Worker {
            root: root.clone(),
            rotation,
            on_health: Box::new(on_health),
            broken: 0,
            told_failing: false,
            revived_at: Instant::now(),
            index: HashMap::new(),
            sinks: Vec::new(),
            dirty: Vec::new(),
            dirty_since: Instant::now(),
            errors: Vec::new(),
            record: String::new(),
        };
        let thread = thread::Builder::new()
            .name("zap-logs".to_owned())
            .spawn(move || worker.run(lines))?;
        Ok(LogWriter {
            queue,
            shared: Arc::new(Shared {
                root,
                thread: Mutex::new(Some(thread)),
                missed: Mutex::new(HashMap::new()),
                pending: AtomicU64::new(0),
                missed_ever: AtomicU64::new(0),
            }),
        })
    }

    /// Hands `line` of `id` to the writer, as [`LogWriter::append_all`].
    pub fn append(&self, id: &InstanceId, line: LogLine) {
        self.append_all(id, vec![line]);
    }

    /// Hands `lines` of `id`, in order, to the writer as batches of at most
    /// [`BATCH_LINES`]: a fast job's output costs the writer thread one
    /// wake-up per batch, not per line. Never waits: when the disk is so
    /// slow that the queue is full, the lines are counted as missed, and the
    /// count is written in their file when the queue has room again.
    /// Lines appended after [`LogWriter::flush_and_stop`] are not written.
    pub fn append_all(&self, id: &InstanceId, mut lines: Vec<LogLine>) {
        while !lines.is_empty() {
            let rest = if lines.len() > BATCH_LINES {
                lines.split_off(BATCH_LINES)
            } else {
                Vec::new()
            };
            let missed = self.take_missed(id);
            let batch = Msg::Lines {
                id: id.clone(),
                lines,
                missed,
            };
            if let Err(TrySendError::Full(Msg::Lines { lines, missed, .. })) =
                self.queue.try_send(batch)
            {
                self.add_missed(id, missed, lines.len() as u64);
            }
            lines = rest;
        }
    }

    /// Lines missed so far, over the whole run.
    pub fn missed_ever(&self) -> u64 {
        self.shared.missed_ever.load(Ordering::Relaxed)
    }

    fn take_missed(&self, id: &InstanceId) -> u64 {
        if self.shared.pending.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let mut missed = self
            .shared
            .missed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let taken = missed.remove(id).unwrap_or(0);
        self.shared.pending.fetch_sub(taken, Ordering::Relaxed);
        taken
    }

    /// `before` lines missed earlier come back, and `now` more join them.
    fn add_missed(&self, id: &InstanceId, before: u64, now: u64) {
        let mut missed = self
            .shared
            .missed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *missed.entry(id.clone()).or_insert(0) += before + now;
        self.shared
            .pending
            .fetch_add(before + now, Ordering::Relaxed);
        self.shared.missed_ever.fetch_add(now, Ordering::Relaxed);
    }

    /// Writes every line appended before, closes the files and ends the
    /// thread; blocks until then. Returns the error of each file that
    /// failed during the whole run (also given to `on_error`).
    pub fn flush_and_stop(self) -> Vec<LogError> {
        // What was missed and not said yet is said now; stopping may wait.
        let missed: Vec<(InstanceId, u64)> = self
            .shared
            .missed
            .lock()
            .map(|mut missed| missed.drain().collect())
            .unwrap_or_default();
        for (id, missed) in missed {
            let lines = Vec::new();
            let _ = self.queue.send(Msg::Lines { id, lines, missed });
        }
        // Fails only if the thread is gone already; joining tells.
        let _ = self.queue.send(Msg::Stop);
        let thread = match self.shared.thread.lock() {
            Ok(mut thread) => thread.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        match thread.map(JoinHandle::join) {
            None => Vec::new(),
            Some(Ok(errors)) => errors,
            Some(Err(_)) => vec![LogError {
                path: self.shared.root.clone(),
                source: io::Error::other("the log writer thread panicked"),
            }],
        }
    }

    #[cfg(test)]
    fn stall(&self, time: Duration) {
        let _ = self.queue.send(Msg::Stall(time));
    }
}

/// The writer thread's state.
struct Worker {
    root: PathBuf,
    rotation: Rotation,
    on_health: Box<dyn FnMut(LogHealth) + Send>,
    /// Sinks broken now.
    broken: usize,
    /// `on_health` was told of a failure, and not yet that all is well.
    told_failing: bool,
    /// When broken files were last looked over for a retry.
    revived_at: Instant,
    /// Where each instance's file is in `sinks`.
    index: HashMap<InstanceId, usize>,
    sinks: Vec<Sink>,
    /// The sinks written to since the last flush.
    dirty: Vec<usize>,
    /// When the first of them was.
    dirty_since: Instant,
    errors: Vec<LogError>,
    /// The record being written, reused so a line costs no allocation here.
    record: String,
}

impl Worker {
    fn run(mut self, lines: Receiver<Msg>) -> Vec<LogError> {
        loop {
            let msg = if self.dirty.is_empty() && self.broken > 0 {
                // A broken file is tried again even if no line comes for
                // it, so that "written again" is said when space returns.
                match lines.recv_timeout(RETRY_AFTER) {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => {
                        self.revive_broken();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else if self.dirty.is_empty() {
                match lines.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                }
            } else {
                match lines.recv_timeout(IDLE) {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => {
                        self.flush_all();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            match msg {
                Msg::Lines { id, lines, missed } => {
                    let at = self.sink(&id);
                    if missed > 0 {
                        let note = format!(
                            "{missed} lines of output are missing here: the disk did not keep up"
                        );
                        self.write(at, &LogLine::zap(None, note));
                    }
                    for line in &lines {
                        self.write(at, line);
                    }
                }
                Msg::Stop => break,
                #[cfg(test)]
                Msg::Stall(time) => thread::sleep(time),
            }
            if !self.dirty.is_empty() && self.dirty_since.elapsed() >= FLUSH_EVERY {
                self.flush_all();
            }
            // Not after every batch: only once a retry can be due.
            if self.broken > 0 && self.revived_at.elapsed() >= RETRY_AFTER {
                self.revive_broken();
            }
        }
        self.flush_all();
        self.errors
    }

    /// Where `id`'s file is in `sinks`, added on its first line.
    fn sink(&mut self, id: &InstanceId) -> usize {
        match self.index.get(id) {
            Some(&at) => at,
            None => {
                let at = self.sinks.len();
                self.sinks.push(Sink::new(files::log_path(&self.root, id)));
                self.index.insert(id.clone(), at);
                at
            }
        }
    }

    fn write(&mut self, at: usize, line: &LogLine) {
        self.record.clear();
        record::encode(line, &mut self.record);
        let sink = &mut self.sinks[at];
        let was_broken = matches!(sink.state, State::Broken { .. });
        let written = sink.write(&self.root, self.record.as_bytes(), self.rotation);
        self.attempted(at, was_broken, written, 1);
    }

    /// Tries again every broken file whose time has come.
    fn revive_broken(&mut self) {
        self.revived_at = Instant::now();
        for at in 0..self.sinks.len() {
            let sink = &mut self.sinks[at];
            let due = matches!(&sink.state, State::Broken { since, .. } if since.elapsed() >= RETRY_AFTER);
            if due {
                let revived = sink.revive(&self.root, self.rotation);
                self.attempted(at, true, revived, 0);
            }
        }
    }

    /// Books what an attempt to write to sink `at` did: a broken file that
    /// works again, one that fails (losing `in_hand` lines), one to flush.
    fn attempted(&mut self, at: usize, was_broken: bool, written: io::Result<()>, in_hand: u64) {
        let sink = &mut self.sinks[at];
        if was_broken && !matches!(sink.state, State::Broken { .. }) {
            self.broken -= 1;
            if self.broken == 0 && written.is_ok() && self.told_failing {
                self.told_failing = false;
                (self.on_health)(LogHealth::Writing);
            }
        }
        let sink = &mut self.sinks[at];
        match written {
            Ok(()) if !sink.dirty => {
                sink.dirty = true;
                if self.dirty.is_empty() {
                    self.dirty_since = Instant::now();
                }
                self.dirty.push(at);
            }
            Ok(()) => {}
            Err(error) => self.fail(at, error, in_hand),
        }
    }

    fn flush_all(&mut self) {
        while let Some(at) = self.dirty.pop() {
            let sink = &mut self.sinks[at];
            sink.dirty = false;
            if let State::Open(file) = &mut sink.state {
                match file.out.flush() {
                    Ok(()) => file.unflushed = 0,
                    Err(error) => self.fail(at, error, 0),
                }
            }
        }
    }

    /// Marks the sink broken, counting the lines lost with it: `in_hand`
    /// and those still in its buffer. Keeps the first error of each file;
    /// tells the first failure while all were fine.
    fn fail(&mut self, at: usize, source: io::Error, in_hand: u64) {
        let sink = &mut self.sinks[at];
        let newly = !matches!(sink.state, State::Broken { .. });
        let lost = in_hand
            + match std::mem::replace(&mut sink.state, State::Closed) {
                State::Open(file) => {
                    // Not flushed again on drop: the buffer is what failed.
                    let _ = file.out.into_parts();
                    file.unflushed
                }
                State::Broken { lost, .. } => lost,
                State::Closed => 0,
            };
        sink.state = State::Broken {
            since: Instant::now(),
            lost,
            why: source.to_string(),
        };
        let error = LogError {
            path: sink.path.clone(),
            source,
        };
        if newly {
            self.broken += 1;
        }
        if !self.told_failing {
            self.told_failing = true;
            (self.on_health)(LogHealth::Failing(error.to_string()));
        }
        if !sink.reported {
            sink.reported = true;
            self.errors.push(error);
        }
    }
}

/// One instance's log file.
struct Sink {
    path: PathBuf,
    state: State,
    /// In the worker's `dirty` list.
    dirty: bool,
    /// Its first error was reported; later ones are not.
    reported: bool,
}

enum State {
    /// Not opened yet, or closed for a rotation.
    Closed,
    Open(OpenFile),
    /// Failed; tried again after [`RETRY_AFTER`].
    Broken {
        since: Instant,
        /// Lines not written since it broke (some of those in the buffer
        /// then may have been).
        lost: u64,
        why: String,
    },
}

struct OpenFile {
    out: BufWriter<File>,
    /// The file's size, including what is in the buffer.
    len: u64,
    /// Lines in the buffer.
    unflushed: u64,
}

impl Sink {
    fn new(path: PathBuf) -> Sink {
        Sink {
            path,
            state: State::Closed,
            dirty: false,
            reported: false,
        }
    }

    /// Writes one record, opening or rotating the file as needed. A broken
    /// file counts the line as lost until it is time to try again.
    fn write(&mut self, root: &Path, record: &[u8], rotation: Rotation) -> io::Result<()> {
        if let State::Broken { since, lost, .. } = &mut self.state
            && since.elapsed() < RETRY_AFTER
        {
            *lost += 1;
            return Ok(());
        }
        self.revive(root, rotation)?;
        self.put(root, record, rotation)
    }

    /// Opens the file if it is not open; a broken one first says how many
    /// lines are missing from it.
    fn revive(&mut self, root: &Path, rotation: Rotation) -> io::Result<()> {
        let note = match &self.state {
            State::Broken { lost, why, .. } => Some(LogLine::zap(
                None,
                format!("up to {lost} lines of output are missing here: {why}"),
            )),
            _ => None,
        };
        if !matches!(self.state, State::Open(_)) {
            self.state = State::Open(OpenFile::open(root, &self.path)?);
        }
        if let Some(note) = note {
            let mut text = String::new();
            record::encode(&note, &mut text);
            self.put(root, text.as_bytes(), rotation)?;
        }
        Ok(())
    }

    fn put(&mut self, root: &Path, record: &[u8], rotation: Rotation) -> io::Result<()> {
        let size = record.len() as u64;
        if let State::Open(file) = &mut self.state
            && file.len > 0
            && file.len + size > rotation.max_bytes
        {
            file.out.flush()?;
            // Closed before it is renamed.
            self.state = State::Closed;
            files::rotate(&self.path, rotation.keep)?;
            self.state = State::Open(OpenFile::open(root, &self.path)?);
        }
        let State::Open(file) = &mut self.state else {
            return Err(io::Error::other("log file not open"));
        };
        file.out.write_all(record)?;
        file.len += size;
        file.unflushed += 1;
        Ok(())
    }
}

impl OpenFile {
    /// Opens `path` to append to it, creating it and `root` if needed. If a
    /// zap died in the middle of a record, that record is ended first, so
    /// the next one starts on a line of its own.
    fn open(root: &Path, path: &Path) -> io::Result<OpenFile> {
        fs::create_dir_all(root)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let mut len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last != *b"\n" {
                file.write_all(b"\n")?;
                len += 1;
            }
        }
        Ok(OpenFile {
            out: BufWriter::new(file),
            len,
            unflushed: 0,
        })
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
