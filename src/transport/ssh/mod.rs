//! SSH hosts over russh: one connection per host carries all its jobs, with
//! more connections only when the server's MaxSessions is reached.
//!
//! - `resolve`: address → host, port, user and keys through `~/.ssh/config`
//! - `connect`: dialling one connection (TCP or a jump tunnel) under the
//!   connect timeout, and counting its session channels
//! - `verify`: the russh handler; host keys against known_hosts
//! - `auth`: ssh-agent, then key files
//! - `channel`: a running job's channel → [`Chunk`]s

mod auth;
mod channel;
mod connect;
mod known_hosts;
mod resolve;
mod verify;

#[cfg(test)]
mod fleet_tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use russh::client::Msg;
use russh::{Channel, ChannelMsg, Disconnect};
use tokio::sync::{OnceCell, mpsc};

use self::channel::{Reading, pump};
use self::connect::{Connection, Lease, dial};
use self::resolve::{Target, resolve};
use super::consumer::{ChunkConsumer, ChunkSender};
use super::{CHUNK_QUEUE, Chunk, TransportError};
use crate::config::SshHost;
use crate::model::{ExitInfo, HostName};

/// How long a failed connect is answered from memory, so that jobs started
/// just after it do not each wait out the timeout again.
const FAILURE_MEMORY: Duration = Duration::from_secs(2);

/// Connections one host may get. Each carries MaxSessions (10 by default)
/// channels; this only stops a runaway.
const MAX_CONNECTIONS: usize = 32;

/// `run_capture` keeps this much of each stream and drops the rest: it
/// serves probes, kills and stats, not bulk output.
const CAPTURE_LIMIT: usize = 8 * 1024 * 1024;

/// How long `close` waits for the servers to see the disconnects.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// All connections to one host of `hosts.toml`. Cheap to share via `Arc`.
pub struct SshHostPool {
    name: HostName,
    spec: SshHost,
    jump: Option<Arc<SshHostPool>>,
    /// Resolved once, at the first connect (`ssh -G` is a process).
    target: OnceCell<Result<Target, TransportError>>,
    /// A std mutex: held only to pick or add a connection, never across an
    /// await, so it cannot stall the runtime or deadlock with `dialing`.
    state: Mutex<PoolState>,
    /// Held while one new connection is being set up, so bursts of jobs make
    /// one connection at a time (sshd's MaxStartups) and share its outcome.
    dialing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct PoolState {
    live: Vec<Arc<Connection>>,
    /// The server's MaxSessions as far as seen: channels one connection
    /// held when the server refused another (raised if more ever open).
    session_limit: Option<usize>,
    /// Connects attempted so far; waiters compare to tell that the attempt
    /// they waited for has ended.
    attempts: u64,
    failure: Option<Failure>,
    /// Connections made over the pool's life, for tests and diagnostics.
    dialled: usize,
}

struct Failure {
    attempt: u64,
    at: Instant,
    error: TransportError,
}

/// What a caller needs from the pool.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Any live connection (direct-tcpip channels do not count as sessions).
    Connection,
    /// A place for one more session channel.
    Session,
}

impl PoolState {
    fn prune(&mut self) {
        self.live.retain(|connection| !connection.is_closed());
    }

    fn with_room(&self, need: Need) -> Option<&Arc<Connection>> {
        match need {
            Need::Connection => self.live.first(),
            Need::Session => {
                let limit = self.session_limit.unwrap_or(usize::MAX);
                self.live
                    .iter()
                    .find(|connection| connection.held() < limit)
            }
        }
    }

    fn recent_failure(&self) -> Option<TransportError> {
        self.failure
            .as_ref()
            .filter(|failure| failure.at.elapsed() < FAILURE_MEMORY)
            .map(|failure| failure.error.clone())
    }
}

impl SshHostPool {
    pub fn new(name: HostName, spec: SshHost, jump: Option<Arc<SshHostPool>>) -> Self {
        SshHostPool {
            name,
            spec,
            jump,
            target: OnceCell::new(),
            state: Mutex::new(PoolState::default()),
            dialing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn name(&self) -> &HostName {
        &self.name
    }

    /// Open a session channel, exec `command`, write `stdin` then EOF, and
    /// spawn a task that forwards [`Chunk::Stdout`]/[`Chunk::Stderr`] to `tx`
    /// and finally exactly one [`Chunk::Exit`]. Returns once the exec was
    /// accepted (or the error).
    pub async fn start(
        &self,
        command: &str,
        stdin: Vec<u8>,
        tx: mpsc::Sender<Chunk>,
    ) -> Result<(), TransportError> {
        self.start_with(command, stdin, false, tx).await
    }

    /// [`SshHostPool::start`], in a pseudo-terminal when `pty` (see
    /// [`crate::transport::pty`] for its modes): stdout and stderr merge.
    pub async fn start_with(
        &self,
        command: &str,
        stdin: Vec<u8>,
        pty: bool,
        tx: mpsc::Sender<Chunk>,
    ) -> Result<(), TransportError> {
        self.launch(command, stdin, None, pty, ChunkSender::new(tx))
            .await
    }

    /// [`SshHostPool::start_with`] handing the output to `out` in the task
    /// that reads the channel.
    pub async fn start_into(
        &self,
        command: &str,
        stdin: Vec<u8>,
        pty: bool,
        out: Box<dyn ChunkConsumer>,
    ) -> Result<(), TransportError> {
        self.launch(command, stdin, None, pty, out).await
    }

    /// [`SshHostPool::start`] whose stdin stays open after `stdin`: what
    /// `feed` brings is written as it comes, and EOF follows once all its
    /// senders are dropped.
    pub async fn start_fed(
        &self,
        command: &str,
        stdin: Vec<u8>,
        feed: mpsc::Receiver<Vec<u8>>,
        tx: mpsc::Sender<Chunk>,
    ) -> Result<(), TransportError> {
        self.launch(command, stdin, Some(feed), false, ChunkSender::new(tx))
            .await
    }

    async fn launch(
        &self,
        command: &str,
        stdin: Vec<u8>,
        feed: Option<mpsc::Receiver<Vec<u8>>>,
        pty: bool,
        out: Box<dyn ChunkConsumer>,
    ) -> Result<(), TransportError> {
        let (channel, lease) = self.open_session().await?;
        let address = self.address();
        let (mut read, write) = channel.split();
        if pty {
            let (columns, rows) = crate::transport::pty::SIZE;
            write
                .request_pty(
                    false,
                    crate::transport::pty::TERM,
                    u32::from(columns),
                    u32::from(rows),
                    0,
                    0,
                    &crate::transport::pty::ssh_modes(),
                )
                .await
                .map_err(|error| self.lost_or_channel(&lease, error.to_string()))?;
        }
        write
            .exec(true, command)
            .await
            .map_err(|error| self.lost_or_channel(&lease, error.to_string()))?;
        // The reply to the exec comes before any output; keep what else
        // arrives meanwhile for the pump.
        let mut reading = Reading::default();
        loop {
            match read.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    // The session stays open on the server until closed, and
                    // keeps its MaxSessions place until the server agrees.
                    tokio::spawn(async move {
                        let _ = write.close().await;
                        while read.wait().await.is_some() {}
                        drop(lease);
                    });
                    return Err(TransportError::Channel {
                        address,
                        reason: "the server refused to run the command".into(),
                    });
                }
                Some(message) => reading.take(message),
                None => return Err(self.lost_or_channel(&lease, "the channel closed".into())),
            }
        }
        tokio::spawn(pump(read, write, stdin, feed, reading, out, lease));
        Ok(())
    }

    /// Run a short command to completion and capture it (used for
    /// `kill -s TERM -- -PGID`, probes, stats). Keeps at most
    /// [`CAPTURE_LIMIT`] bytes of each stream.
    pub async fn run_capture(
        &self,
        command: &str,
    ) -> Result<(ExitInfo, Vec<u8>, Vec<u8>), TransportError> {
        let (tx, mut rx) = mpsc::channel(CHUNK_QUEUE);
        self.start(command, Vec::new(), tx).await?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = rx.recv().await {
            let (buffer, data) = match chunk {
                Chunk::Stdout(data) => (&mut stdout, data),
                Chunk::Stderr(data) => (&mut stderr, data),
                Chunk::Exit(exit) => return Ok((exit, stdout, stderr)),
                Chunk::Lost(reason) => {
                    return Err(TransportError::Lost {
                        address: self.address(),
                        reason,
                    });
                }
            };
            let room = CAPTURE_LIMIT.saturating_sub(buffer.len());
            buffer.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        }
        // The pump always ends with an exit; this is only if it panicked.
        Ok((ExitInfo::Unknown, stdout, stderr))
    }

    /// Connect and authenticate now (for `zap check --connect`); later calls
    /// reuse the connection.
    pub async fn ensure_connected(&self) -> Result<(), TransportError> {
        self.connection(Need::Connection).await.map(|_| ())
    }

    /// Disconnect all connections politely. Running channels end with
    /// `Exit(Unknown)`; a later call connects again.
    pub async fn close(&self) {
        let closing: Vec<Arc<Connection>> = std::mem::take(&mut self.lock().live);
        let polite = async {
            for connection in &closing {
                let _ = connection
                    .handle()
                    .disconnect(Disconnect::ByApplication, "zap is done", "en")
                    .await;
            }
            while closing.iter().any(|connection| !connection.is_closed()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        // A connection stalled by a channel whose reader stopped cannot take
        // the disconnect in time; it ends when its last channel does.
        let _ = tokio::time::timeout(CLOSE_GRACE, polite).await;
    }

    /// Opens a direct-tcpip channel from this host to `host:port`: the
    /// tunnel a host behind this one (`jump = "…"`) is reached through.
    pub async fn open_direct_tcpip(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Channel<Msg>, TransportError> {
        let connection = Arc::clone(self.connection(Need::Connection).await?.connection());
        connection
            .handle()
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
            .await
            .map_err(|error| {
                if connection.is_closed() {
                    TransportError::Lost {
                        address: self.address(),
                        reason: connection.lost_reason(),
                    }
                } else {
                    TransportError::Channel {
                        address: self.address(),
                        reason: format!("cannot open a tunnel to {host}:{port}: {error}"),
                    }
                }
            })
    }

    /// Live connections to this host now.
    pub fn connection_count(&self) -> usize {
        let mut state = self.lock();
        state.prune();
        state.live.len()
    }

    /// Connections made to this host since the pool was created.
    pub fn connections_made(&self) -> usize {
        self.lock().dialled
    }

    /// Reserves a place on a connection and opens a session channel there,
    /// moving to another connection when the server says MaxSessions.
    async fn open_session(&self) -> Result<(Channel<Msg>, Lease), TransportError> {
        // Each refusal teaches the pool the limit, so the next try lands on
        // a connection with room or a new one; this bounds a server that
        // refuses every session.
        let mut refusals = 0;
        loop {
            let mut lease = self.connection(Need::Session).await?;
            let connection = Arc::clone(lease.connection());
            match connection.handle().channel_open_session().await {
                Ok(channel) => {
                    let open = lease.confirm();
                    let mut state = self.lock();
                    if let Some(limit) = state.session_limit.as_mut() {
                        *limit = (*limit).max(open);
                    }
                    return Ok((channel, lease));
                }
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    let open = connection.open();
                    let alone = open == 0 && connection.held() == 1;
                    drop(lease);
                    refusals += 1;
                    if alone || refusals > MAX_CONNECTIONS {
                        return Err(TransportError::Channel {
                            address: self.address(),
                            reason: format!("the server refused a session channel ({reason:?})"),
                        });
                    }
                    let mut state = self.lock();
                    let limit = state.session_limit.get_or_insert(open.max(1));
                    *limit = (*limit).min(open.max(1));
                }
                Err(error) if connection.is_closed() => {
                    drop(lease);
                    refusals += 1;
                    if refusals > MAX_CONNECTIONS {
                        return Err(TransportError::Lost {
                            address: self.address(),
                            reason: format!("{} ({error})", connection.lost_reason()),
                        });
                    }
                    // The next round drops the dead connection and dials.
                }
                Err(error) => {
                    return Err(TransportError::Channel {
                        address: self.address(),
                        reason: error.to_string(),
                    });
                }
            }
        }
    }

    /// A connection with what `need` asks for: a live one with room, else a
    /// new one. Only one caller dials at a time; those who waited for it
    /// share its outcome.
    async fn connection(&self, need: Need) -> Result<Lease, TransportError> {
        loop {
            let seen = {
                let mut state = self.lock();
                state.prune();
                if let Some(connection) = state.with_room(need) {
                    return Ok(Lease::new(Arc::clone(connection)));
                }
                if let Some(error) = state.recent_failure() {
                    return Err(error);
                }
                state.attempts
            };
            let _dialing = self.dialing.lock().await;
            let attempt = {
                let mut state = self.lock();
                state.prune();
                if let Some(connection) = state.with_room(need) {
                    return Ok(Lease::new(Arc::clone(connection)));
                }
                if state.attempts != seen {
                    // An attempt ended while we waited: share its failure,
                    // or look again if it succeeded but is full already.
                    match &state.failure {
                        Some(failure) if failure.attempt == state.attempts => {
                            return Err(failure.error.clone());
                        }
                        _ => continue,
                    }
                }
                if state.live.len() >= MAX_CONNECTIONS {
                    return Err(TransportError::Channel {
                        address: self.address(),
                        reason: format!(
                            "all {MAX_CONNECTIONS} connections are at the server's MaxSessions"
                        ),
                    });
                }
                state.attempts += 1;
                state.attempts
            };
            let result = self.dial().await;
            let mut state = self.lock();
            return match result {
                Ok(connection) => {
                    let connection = Arc::new(connection);
                    state.failure = None;
                    state.dialled += 1;
                    state.live.push(Arc::clone(&connection));
                    Ok(Lease::new(connection))
                }
                Err(error) => {
                    state.failure = Some(Failure {
                        attempt,
                        at: Instant::now(),
                        error: error.clone(),
                    });
                    Err(error)
                }
            };
        }
    }

    async fn dial(&self) -> Result<Connection, TransportError> {
        let target = self
            .target
            .get_or_init(|| resolve(&self.spec, self.jump.is_some()))
            .await
            .clone()?;
        dial(&target, &self.spec, self.jump.as_deref()).await
    }

    /// The pool's state. A poisoned lock only means a panic elsewhere while
    /// it was held; the state itself stays consistent, so it is used anyway.
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How errors name this host: the resolved address once known.
    fn address(&self) -> String {
        match self.target.get() {
            Some(Ok(target)) => connect::dial_address(target, self.jump.as_deref()),
            _ => self.spec.address.clone(),
        }
    }

    fn lost_or_channel(&self, lease: &Lease, reason: String) -> TransportError {
        if lease.connection().is_closed() {
            TransportError::Lost {
                address: self.address(),
                reason: lease.connection().lost_reason(),
            }
        } else {
            TransportError::Channel {
                address: self.address(),
                reason,
            }
        }
    }
}
