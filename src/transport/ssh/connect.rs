//! One SSH connection: dialling it (TCP or through a jump host's tunnel,
//! handshake, host key, login, all under the connect timeout) and counting
//! the session channels it carries against the server's MaxSessions.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use russh::client::{self, Handle};
use tokio::net::TcpStream;

use super::super::TransportError;
use super::SshHostPool;
use super::auth::authenticate;
use super::resolve::Target;
use super::verify::{LostReason, SessionError, Verifier, known_keys_in, preferred_key_algorithms};
use crate::config::SshHost;

/// russh's ciphers with AES-GCM first: with AES instructions it moves bulk
/// output for less CPU than ChaCha20-Poly1305 (russh's first choice), on
/// both ends. Hosts without AES-GCM still get ChaCha20 or AES-CTR.
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

/// A live, authenticated connection.
pub struct Connection {
    handle: Handle<Verifier>,
    lost: LostReason,
    /// Session channels reserved on it: being opened or open.
    held: AtomicUsize,
    /// Session channels the server confirmed and that are not yet closed.
    open: AtomicUsize,
}

impl Connection {
    pub fn handle(&self) -> &Handle<Verifier> {
        &self.handle
    }

    /// True once the connection is gone (the server hung up, keepalives went
    /// unanswered, or we disconnected).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Why the connection ended, as well as the handler learned it.
    pub fn lost_reason(&self) -> String {
        self.lost
            .lock()
            .ok()
            .and_then(|reason| reason.clone())
            .unwrap_or_else(|| "the connection closed".into())
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// A reserved session-channel place on a connection, given back on drop.
pub struct Lease {
    connection: Arc<Connection>,
    confirmed: bool,
}

impl Lease {
    /// Reserves a place. The pool calls this under its lock, after checking
    /// there is room.
    pub fn new(connection: Arc<Connection>) -> Self {
        connection.held.fetch_add(1, Ordering::SeqCst);
        Lease {
            connection,
            confirmed: false,
        }
    }

    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// The server opened the channel; returns how many are open now.
    pub fn confirm(&mut self) -> usize {
        self.confirmed = true;
        self.connection.open.fetch_add(1, Ordering::SeqCst) + 1
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.connection.held.fetch_sub(1, Ordering::SeqCst);
        if self.confirmed {
            self.connection.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// How error messages name the place being dialled.
pub fn dial_address(target: &Target, jump: Option<&SshHostPool>) -> String {
    match jump {
        Some(jump) => format!("{} via {}", target.address(), jump.name()),
        None => target.address(),
    }
}

/// Connects, checks the host key and logs in, all within
/// `spec.connect_timeout`: a host that accepts TCP but never speaks (a
/// paused container behind a port proxy) fails in time too.
pub async fn dial(
    target: &Target,
    spec: &SshHost,
    jump: Option<&SshHostPool>,
) -> Result<Connection, TransportError> {
    let address = dial_address(target, jump);
    match tokio::time::timeout(spec.connect_timeout, dial_now(target, spec, jump, &address)).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::ConnectTimeout {
            address,
            seconds: whole_seconds(spec.connect_timeout),
        }),
    }
}

async fn dial_now(
    target: &Target,
    spec: &SshHost,
    jump: Option<&SshHostPool>,
    address: &str,
) -> Result<Connection, TransportError> {
    let config = Arc::new(client_config(target, spec).await);
    let lost = LostReason::default();
    let verifier = Verifier::new(
        target,
        spec.known_hosts.clone(),
        spec.host_key_check,
        jump.map(|jump| jump.name().to_string()),
        lost.clone(),
    );
    let handshake = match jump {
        Some(jump) => {
            // Boxed: dialling a host may dial its jump host first.
            let tunnel = Box::pin(jump.open_direct_tcpip(&target.host, target.port))
                .await
                .map_err(|error| TransportError::Connect {
                    address: address.to_string(),
                    reason: format!("through {}: {error}", jump.name()),
                })?;
            client::connect_stream(config, tunnel.into_stream(), verifier).await
        }
        None => {
            let tcp = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|error| TransportError::Connect {
                    address: address.to_string(),
                    reason: error.to_string(),
                })?;
            // Job output is interactive; Nagle would delay small writes.
            let _ = tcp.set_nodelay(true);
            client::connect_stream(config, tcp, verifier).await
        }
    };
    let mut handle = handshake.map_err(|error| handshake_error(error, address))?;
    authenticate(&mut handle, target, address).await?;
    Ok(Connection {
        handle,
        lost,
        held: AtomicUsize::new(0),
        open: AtomicUsize::new(0),
    })
}

async fn client_config(target: &Target, spec: &SshHost) -> client::Config {
    let mut files = vec![spec.known_hosts.clone()];
    files.extend(target.global_known_hosts.iter().cloned());
    let (host, port) = (target.host.clone(), target.port);
    let known = tokio::task::spawn_blocking(move || known_keys_in(&host, port, &files))
        .await
        .unwrap_or_default();
    client::Config {
        // Keepalives find a dead host; `inactivity_timeout` would kill quiet
        // jobs, so it stays off.
        keepalive_interval: Some(spec.keepalive).filter(|every| !every.is_zero()),
        keepalive_max: 3,
        inactivity_timeout: None,
        nodelay: true,
        preferred: russh::Preferred {
            key: Cow::Owned(preferred_key_algorithms(&known)),
            cipher: Cow::Borrowed(CIPHERS),
            ..russh::Preferred::DEFAULT
        },
        ..Default::default()
    }
}

fn handshake_error(error: SessionError, address: &str) -> TransportError {
    match error {
        SessionError::HostKey(message) => TransportError::HostKey(message),
        SessionError::Ssh(russh::Error::Disconnect) => TransportError::Connect {
            address: address.to_string(),
            reason: "the server closed the connection during the SSH handshake".into(),
        },
        SessionError::Ssh(russh::Error::IO(error)) => TransportError::Connect {
            address: address.to_string(),
            reason: format!("SSH handshake failed: {error}"),
        },
        SessionError::Ssh(error) => TransportError::Connect {
            address: address.to_string(),
            reason: format!("SSH handshake failed: {error}"),
        },
    }
}

/// Seconds for messages, rounded up so "250ms" does not read "after 0s".
fn whole_seconds(duration: Duration) -> u64 {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        seconds + 1
    } else {
        seconds
    }
}
