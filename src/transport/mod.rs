//! Where a job's shell runs: this machine (`local`) or an SSH host. A transport
//! starts the wrapper script (see `script`) and forwards raw output chunks;
//! turning bytes into lines, steps and exit codes is `script`'s job, so local
//! and SSH jobs behave the same.

pub mod consumer;
pub mod decode;
pub mod escape;
pub mod host;
pub mod local;
pub mod pty;
pub mod script;
pub mod ssh;

use thiserror::Error;

use crate::model::ExitInfo;

/// Raw output of one running job shell, in the order the transport saw it.
/// `Exit` or `Lost` is always the last chunk sent for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The shell is gone and its output is fully read.
    Exit(ExitInfo),
    /// The connection to the host died: how the shell fares is unknown (it
    /// may still run there). Decoded like `Exit(ExitInfo::Unknown)`.
    Lost(String),
}

/// How many chunks may wait for the reader before a flooding job is slowed
/// down. Bounded so one noisy job cannot grow zap's memory.
pub const CHUNK_QUEUE: usize = 64;

/// Why a job could not be started or signalled. All of these make the job
/// `unreachable` (exit 3), except `Spawn` on the local host.
#[derive(Debug, Clone, Error)]
pub enum TransportError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("timed out connecting to {address} after {seconds}s")]
    ConnectTimeout { address: String, seconds: u64 },
    #[error("{0}")]
    HostKey(String),
    #[error("authentication failed for {user}@{address}: {reason}")]
    Auth {
        user: String,
        address: String,
        reason: String,
    },
    #[error("the connection to {address} was lost: {reason}")]
    Lost { address: String, reason: String },
    #[error("{address} refused to start the job's shell: {reason}")]
    Channel { address: String, reason: String },
    #[error("cannot start the job's shell: {0}")]
    Spawn(String),
    #[error("{0}")]
    Config(String),
}
