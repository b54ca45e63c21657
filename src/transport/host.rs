//! A host zap can run jobs on, whatever carries it: the one type the
//! supervisor talks to, so local and SSH jobs take the same path.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::local::LocalHost;
use super::script::LAUNCH_COMMAND;
use super::ssh::SshHostPool;
use super::{Chunk, TransportError};
use crate::config::{HostKind, Plan};
use crate::model::{ExitInfo, HostName, Signal};

#[derive(Clone)]
pub enum Transport {
    Local(LocalHost),
    Ssh(Arc<SshHostPool>),
}

impl Transport {
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
        match self {
            Transport::Local(local) => {
                local
                    .start_with(command, script.into_bytes(), pty, tx)
                    .await
            }
            Transport::Ssh(pool) => pool.start_with(command, script.into_bytes(), pty, tx).await,
        }
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
        match self {
            Transport::Local(local) => local.start_fed(command, stdin, feed, tx).await,
            Transport::Ssh(pool) => pool.start_fed(command, stdin, feed, tx).await,
        }
    }

    /// Sends `signal` to every process of the job whose shell leads `pgid`.
    /// Over SSH this is a separate `kill` exec: sshd refuses channel signals
    /// for root logins, and closing a channel kills nothing.
    pub async fn signal_group(&self, pgid: u32, signal: Signal) -> Result<(), TransportError> {
        match self {
            Transport::Local(local) => local.signal_group(pgid, signal),
            Transport::Ssh(pool) => {
                if pgid <= 1 {
                    return Err(TransportError::Spawn(format!(
                        "refusing to signal group {pgid}"
                    )));
                }
                let command = format!("kill -s {} -- -{pgid}", signal.name());
                pool.run_capture(&command).await.map(|_| ())
            }
        }
    }

    /// Runs a short command in the host's login shell to completion: for
    /// probes, stats and clean-ups. Output beyond a few MB is dropped.
    pub async fn run_capture(
        &self,
        command: &str,
    ) -> Result<(ExitInfo, Vec<u8>, Vec<u8>), TransportError> {
        match self {
            Transport::Local(local) => local.run_capture(command).await,
            Transport::Ssh(pool) => pool.run_capture(command).await,
        }
    }

    /// Connects and authenticates now, where there is anything to connect to.
    pub async fn ensure_connected(&self) -> Result<(), TransportError> {
        match self {
            Transport::Local(_) => Ok(()),
            Transport::Ssh(pool) => pool.ensure_connected().await,
        }
    }

    pub async fn close(&self) {
        if let Transport::Ssh(pool) = self {
            pool.close().await;
        }
    }
}

/// Makes a transport for each of `wanted` (and the jump hosts they go
/// through), sharing one pool per host so a jump host's connection is reused.
pub fn transports_for<'a>(
    plan: &Plan,
    wanted: impl IntoIterator<Item = &'a HostName>,
) -> Result<BTreeMap<HostName, Transport>, TransportError> {
    let mut made = BTreeMap::new();
    for name in wanted {
        transport_for(plan, name, &mut made, 0)?;
    }
    Ok(made)
}

fn transport_for(
    plan: &Plan,
    name: &HostName,
    made: &mut BTreeMap<HostName, Transport>,
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
        HostKind::Local => Transport::Local(LocalHost),
        HostKind::Ssh(spec) => {
            let jump = match &spec.jump {
                Some(jump_name) => match transport_for(plan, jump_name, made, depth + 1)? {
                    Transport::Ssh(pool) => Some(pool),
                    Transport::Local(_) => None,
                },
                None => None,
            };
            Transport::Ssh(Arc::new(SshHostPool::new(name.clone(), spec.clone(), jump)))
        }
    };
    made.insert(name.clone(), transport.clone());
    Ok(transport)
}
