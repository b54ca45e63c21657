//! A host zap can run jobs on, whatever carries it: the one type the
//! supervisor talks to, so local and SSH jobs take the same path.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::consumer::{ChunkConsumer, ChunkSender, through_channel};
use super::local::LocalHost;
use super::script::LAUNCH_COMMAND;
use super::ssh::SshHostPool;
use super::{Chunk, TransportError};
use crate::config::{HostKind, Plan};
use crate::model::{ExitInfo, HostName, Signal};

/// What a host's carrier does, whatever it is (this machine, an SSH
/// connection, a scripted host in tests): the one seam the supervisor and
/// the stats pollers reach hosts through.
pub trait Link: Send + Sync + 'static {
    /// Starts `command` in a shell of the host, feeds it `stdin` then EOF,
    /// and hands its output to `out` as it is read, ending with exactly one
    /// [`Chunk::Exit`] or [`Chunk::Lost`]. In a pseudo-terminal when `pty`.
    fn launch(
        &self,
        command: String,
        stdin: Vec<u8>,
        pty: bool,
        out: Box<dyn ChunkConsumer>,
    ) -> BoxFuture<'_, Result<(), TransportError>>;

    /// As `launch`, no pseudo-terminal, with stdin kept open after `stdin`
    /// for whatever `feed` brings; EOF once all its senders are dropped.
    fn launch_fed(
        &self,
        command: String,
        stdin: Vec<u8>,
        feed: mpsc::Receiver<Vec<u8>>,
        tx: mpsc::Sender<Chunk>,
    ) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Sends `signal` to every process of the group `pgid` leads.
    fn signal_group(&self, pgid: u32, signal: Signal) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Runs a short command to completion: exit, stdout, stderr.
    fn run_capture(&self, command: String) -> BoxFuture<'_, Captured>;

    /// Connects and authenticates now, where there is anything to connect to.
    fn ensure_connected(&self) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Closes what it holds open; the next use opens it again.
    fn close(&self) -> BoxFuture<'_, ()>;

    /// It runs commands on the machine zap runs on.
    fn is_this_machine(&self) -> bool;
}

/// What [`Link::run_capture`] gives.
pub type Captured = Result<(ExitInfo, Vec<u8>, Vec<u8>), TransportError>;

/// A host zap can run jobs on: a cheap handle to its [`Link`].
#[derive(Clone)]
pub struct Transport(Arc<dyn Link>);

impl Transport {
    /// This machine.
    pub fn local() -> Transport {
        Transport(Arc::new(LocalHost))
    }

    /// A host carried by `link` (an SSH pool, or a test's own).
    pub fn new(link: Arc<dyn Link>) -> Transport {
        Transport(link)
    }

    /// Starts a job shell that reads `script` from its stdin, and forwards its
    /// output to `tx`, ending with exactly one [`Chunk::Exit`].
    pub async fn start(
        &self,
        script: String,
        tx: mpsc::Sender<Chunk>,
    ) -> Result<(), TransportError> {
        self.launch(LAUNCH_COMMAND, script, false, tx).await
    }

    /// [`Transport::start`] with another launch command (see
    /// `script::launch_command_with`), in a pseudo-terminal when `pty`.
    pub async fn launch(
        &self,
        command: &str,
        script: String,
        pty: bool,
        tx: mpsc::Sender<Chunk>,
    ) -> Result<(), TransportError> {
        self.launch_into(command, script, pty, ChunkSender::new(tx))
            .await
    }

    /// [`Transport::launch`] handing the output to `out` where it is read.
    pub async fn launch_into(
        &self,
        command: &str,
        script: String,
        pty: bool,
        out: Box<dyn ChunkConsumer>,
    ) -> Result<(), TransportError> {
        self.0
            .launch(command.to_string(), script.into_bytes(), pty, out)
            .await
    }

    /// Runs `command` (no pseudo-terminal) with `stdin` written first and
    /// then, while the process runs, whatever `feed` brings; EOF follows once
    /// all of `feed`'s senders are dropped. Output goes to `tx` as for
    /// [`Transport::start`]. For a long-lived helper that zap paces, such as
    /// the stats poller.
    pub async fn launch_fed(
        &self,
        command: &str,
        stdin: Vec<u8>,
        feed: mpsc::Receiver<Vec<u8>>,
        tx: mpsc::Sender<Chunk>,
    ) -> Result<(), TransportError> {
        self.0
            .launch_fed(command.to_string(), stdin, feed, tx)
            .await
    }

    /// Sends `signal` to every process of the job whose shell leads `pgid`.
    pub async fn signal_group(&self, pgid: u32, signal: Signal) -> Result<(), TransportError> {
        self.0.signal_group(pgid, signal).await
    }

    /// Runs a short command in the host's login shell to completion: for
    /// probes, stats and clean-ups. Output beyond a few MB is dropped.
    pub async fn run_capture(&self, command: &str) -> Captured {
        self.0.run_capture(command.to_string()).await
    }

    /// Connects and authenticates now, where there is anything to connect to.
    pub async fn ensure_connected(&self) -> Result<(), TransportError> {
        self.0.ensure_connected().await
    }

    pub async fn close(&self) {
        self.0.close().await;
    }

    /// It runs commands on the machine zap runs on.
    pub fn is_this_machine(&self) -> bool {
        self.0.is_this_machine()
    }
}

impl Link for LocalHost {
    /// A local shell's pipes are read where they are decoded; a
    /// pseudo-terminal is read by a blocking thread, which hands its output
    /// on through a channel.
    fn launch(
        &self,
        command: String,
        stdin: Vec<u8>,
        pty: bool,
        out: Box<dyn ChunkConsumer>,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            if pty {
                let tx = through_channel(out);
                self.start_with(&command, stdin, true, tx).await
            } else {
                self.start_into(&command, stdin, None, out).await
            }
        })
    }

    fn launch_fed(
        &self,
        command: String,
        stdin: Vec<u8>,
        feed: mpsc::Receiver<Vec<u8>>,
        tx: mpsc::Sender<Chunk>,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move { self.start_fed(&command, stdin, feed, tx).await })
    }

    fn signal_group(&self, pgid: u32, signal: Signal) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(std::future::ready(LocalHost::signal_group(
            self, pgid, signal,
        )))
    }

    fn run_capture(&self, command: String) -> BoxFuture<'_, Captured> {
        Box::pin(async move { LocalHost::run_capture(self, &command).await })
    }

    fn ensure_connected(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn is_this_machine(&self) -> bool {
        true
    }
}

impl Link for SshHostPool {
    fn launch(
        &self,
        command: String,
        stdin: Vec<u8>,
        pty: bool,
        out: Box<dyn ChunkConsumer>,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move { self.start_into(&command, stdin, pty, out).await })
    }

    fn launch_fed(
        &self,
        command: String,
        stdin: Vec<u8>,
        feed: mpsc::Receiver<Vec<u8>>,
        tx: mpsc::Sender<Chunk>,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move { self.start_fed(&command, stdin, feed, tx).await })
    }

    /// A separate `kill` exec: sshd refuses channel signals for root
    /// logins, and closing a channel kills nothing.
    fn signal_group(&self, pgid: u32, signal: Signal) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            if pgid <= 1 {
                return Err(TransportError::Spawn(format!(
                    "refusing to signal group {pgid}"
                )));
            }
            let command = format!("kill -s {} -- -{pgid}", signal.name());
            SshHostPool::run_capture(self, &command).await.map(|_| ())
        })
    }

    fn run_capture(&self, command: String) -> BoxFuture<'_, Captured> {
        Box::pin(async move { SshHostPool::run_capture(self, &command).await })
    }

    fn ensure_connected(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(SshHostPool::ensure_connected(self))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(SshHostPool::close(self))
    }

    fn is_this_machine(&self) -> bool {
        false
    }
}

/// Makes a transport for each of `wanted` (and the jump hosts they go
/// through), sharing one pool per host so a jump host's connection is reused.
pub fn transports_for<'a>(
    plan: &Plan,
    wanted: impl IntoIterator<Item = &'a HostName>,
) -> Result<BTreeMap<HostName, Transport>, TransportError> {
    let mut made = BTreeMap::new();
    let mut pools = BTreeMap::new();
    for name in wanted {
        transport_for(plan, name, &mut made, &mut pools, 0)?;
    }
    Ok(made)
}

fn transport_for(
    plan: &Plan,
    name: &HostName,
    made: &mut BTreeMap<HostName, Transport>,
    pools: &mut BTreeMap<HostName, Arc<SshHostPool>>,
    depth: usize,
) -> Result<Transport, TransportError> {
    if let Some(existing) = made.get(name) {
        return Ok(existing.clone());
    }
    // The config layer rejects jump cycles; this guards the recursion anyway.
    if depth > plan.hosts.len() {
        return Err(TransportError::Config(format!(
            "jump chain through {name} loops"
        )));
    }
    let Some(host) = plan.hosts.get(name) else {
        return Err(TransportError::Config(format!("unknown host {name}")));
    };
    let transport = match &host.kind {
        HostKind::Local => Transport::local(),
        HostKind::Ssh(spec) => {
            let jump = match &spec.jump {
                Some(jump_name) => {
                    transport_for(plan, jump_name, made, pools, depth + 1)?;
                    pools.get(jump_name).cloned()
                }
                None => None,
            };
            let pool = Arc::new(SshHostPool::new(name.clone(), spec.clone(), jump));
            pools.insert(name.clone(), Arc::clone(&pool));
            Transport::new(pool)
        }
    };
    made.insert(name.clone(), transport.clone());
    Ok(transport)
}
