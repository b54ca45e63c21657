//! The running instance's Unix control socket, and the commands that talk to it.
//!
//! - `protocol`: what travels on the socket: one [`Action`](crate::action::Action)
//!   per connection, answered by JSON lines of [`Reply`];
//! - `path`: where the socket lives (`.zap/zap.sock`, or a short fallback when
//!   that path is too long for a Unix socket);
//! - `server`: binds the socket for `zap up` and turns each connection into a
//!   [`Request`] for the supervisor;
//! - `reply`: the sending end the supervisor answers through, which never
//!   blocks on a slow client;
//! - `client` and `commands`: `zap status`, `restart`, `stop`, `start`, `logs`
//!   and `down`;
//! - `format`: the status table and prefixed log lines.

pub mod client;
pub mod commands;
pub mod format;
pub mod path;
pub mod protocol;
pub mod reply;
pub mod server;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use client::{ReplyStream, request, request_socket};
pub use commands::Console;
pub use path::socket_path;
pub use protocol::{InstanceStatus, LastExit, LogEntry, LogLineWire, Origin, Reply};
pub use reply::{ReplyRx, ReplyTx, reply_channel};
pub use server::{Limits, Request, Server};

/// What can go wrong binding or talking to the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another zap answers on this socket. `pid` comes from the pid file next
    /// to the socket and is `None` when that file is missing or unreadable.
    #[error("zap is already running here{}: use `zap status`, `zap down`", pid_note(.pid))]
    AlreadyRunning { pid: Option<u32>, socket: PathBuf },
    /// Nothing listens on the socket: it does not exist, or its zap is gone.
    /// The two are not told apart, as both mean the same to the user.
    #[error("no zap is running for {} (start one with `zap up`)", .dir.display())]
    NotRunning { dir: PathBuf },
    /// The socket's directory could be tampered with by someone else.
    #[error("refusing to put the control socket in {}: {why}", .dir.display())]
    UnsafeDir { dir: PathBuf, why: String },
    /// Binding, connecting, reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The other side sent something that is not a reply (or not JSON).
    #[error("the running zap sent an unreadable reply: {0}")]
    Protocol(String),
    /// The connection closed before `End`: the running zap stopped, or it
    /// dropped this client for not reading fast enough. Which one cannot be
    /// told from here.
    #[error("the running zap closed the connection before the end of its answer")]
    Closed,
    /// Nothing came back in time: the running zap is stuck or very busy.
    #[error(
        "the running zap did not answer within {}s: it may be stuck (--timeout waits longer)",
        .within.as_secs_f64()
    )]
    NoAnswer { within: std::time::Duration },
}

fn pid_note(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!(" (pid {pid})"),
        None => String::new(),
    }
}

impl ControlError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        ControlError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The effective user id: the owner of files zap creates, and the uid a
/// connecting peer must have.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
