//! Job output: the in-memory ring of recent lines and the rotated files under `.zap/logs/`.
//!
//! - [`Ring`]: the last lines of one instance, numbered, for the screen and
//!   for followers;
//! - [`LogWriter`]: a handle to the one thread that appends every instance's
//!   lines to its file, so file I/O never runs on the async runtime;
//! - [`read_log`]: reads an instance's files back, oldest first, for
//!   `zap logs` when no zap is running;
//! - `record`: the line format of those files; `files`: their names and
//!   rotation; `time`: their timestamps.

mod files;
mod packed;
mod record;
mod ring;
mod time;
mod writer;

use std::time::SystemTime;

use crate::model::{StepIndex, Stream};
use crate::transport::decode::LineCut;

pub use files::{log_path, logs_dir, read_log};
pub use ring::{DEFAULT_RING_LINES, Lines, Ring};
pub use writer::{BATCH_LINES, LogError, LogHealth, LogWriter, Rotation};

/// Where a line came from: one of the job's streams, or zap itself (a
/// restart, a fixup, a stop), kept in the same place so the story reads in
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    Stdout,
    Stderr,
    Zap,
}

impl From<Stream> for Origin {
    fn from(stream: Stream) -> Origin {
        match stream {
            Stream::Stdout => Origin::Stdout,
            Stream::Stderr => Origin::Stderr,
        }
    }
}

/// One line of an instance's output, as kept in the [`Ring`] and on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The line's number in its instance's [`Ring`], from 0. Lines read back
    /// by [`read_log`] are numbered by their place in what it returns.
    pub seq: u64,
    /// When zap received it (on disk: to the millisecond).
    pub at: SystemTime,
    pub origin: Origin,
    /// The step that was running; `None` before the first step, and for
    /// zap's lines about the whole instance.
    pub step: Option<StepIndex>,
    /// The text, without its newline. It holds no `'\n'`: one written to a
    /// file anyway is shown there as `␤` (U+2424).
    pub text: String,
    /// A piece of a line too long to keep whole (see
    /// [`crate::transport::decode::MAX_LINE_BYTES`]): the next line of the
    /// same origin continues it.
    pub split: bool,
}

impl LogLine {
    /// A line of the job's output, received now.
    pub fn output(stream: Stream, step: Option<StepIndex>, text: String, cut: LineCut) -> LogLine {
        LogLine {
            seq: 0,
            at: SystemTime::now(),
            origin: stream.into(),
            step,
            text,
            split: cut == LineCut::Split,
        }
    }

    /// A line of zap's own, written now.
    pub fn zap(step: Option<StepIndex>, text: impl Into<String>) -> LogLine {
        LogLine {
            seq: 0,
            at: SystemTime::now(),
            origin: Origin::Zap,
            step,
            text: text.into(),
            split: false,
        }
    }
}
