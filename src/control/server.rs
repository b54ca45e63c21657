//! The server end of the control socket, for `zap up`: binds the socket so
//! only this user can reach it, refuses to start a second zap on the same
//! config, and turns each connection's one request into a [`Request`] for the
//! supervisor, whose replies it writes back.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::path::{self, POINTER_FILE};
use super::protocol::{Reply, encode};
use super::reply::{Received, ReplyTx, reply_channel};
use super::{ControlError, effective_uid};
use crate::action::Action;

/// How long a bind waits for an existing socket to answer before taking its
/// zap for alive but busy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connections may finish once the supervisor is gone.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// A failing `accept` (out of file descriptors) is retried after this pause
/// rather than in a busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// One client's request, for the supervisor. The supervisor answers with
/// `reply.send(..)` (which never waits) and drops `reply` when done: the
/// client then reads [`Reply::End`].
#[derive(Debug)]
pub struct Request {
    pub action: Action,
    pub reply: ReplyTx,
}

/// Bounds on what clients can make the server hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more are refused with an error line.
    pub max_connections: usize,
    /// Reply batches queued per connection before the client counts as too
    /// slow and is dropped.
    pub reply_buffer: usize,
    /// The longest request line.
    pub max_request_bytes: usize,
    /// How long a client may take to send its request, and the connection
    /// may wait for room in the supervisor's queue.
    pub request_timeout: Duration,
    /// How long one write to the client may take before it is dropped.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            reply_buffer: 1024,
            max_request_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// The bound control socket. Dropping it (or the [`Server::run`] future)
/// removes the socket, the pid file and `.zap/socket`, each only if it is
/// still this zap's.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file: a socket that a later zap put in
    /// its place is not ours to remove.
    identity: (u64, u64),
    /// Files to remove on drop, with the content that makes them ours.
    owned_files: Vec<(PathBuf, String)>,
    limits: Limits,
}

impl Server {
    /// Binds the socket for `config_dir` ([`path::socket_path`]) and, when
    /// that is outside `.zap/`, writes its path into `.zap/socket`.
    pub async fn bind_for(config_dir: &Path) -> Result<Server, ControlError> {
        let socket = path::socket_path(config_dir);
        // A zap started with another environment may listen elsewhere and
        // have said so in `.zap/socket`.
        for candidate in path::client_candidates(config_dir) {
            if candidate != socket
                && let Ok(Ok(_)) = timeout(PROBE_TIMEOUT, UnixStream::connect(&candidate)).await
            {
                return Err(ControlError::AlreadyRunning {
                    pid: read_pid(&pid_file(&candidate)),
                    socket: candidate,
                });
            }
        }
        let mut server = Server::bind(&socket).await?;
        let state_dir = path::state_dir(config_dir);
        let pointer = state_dir.join(POINTER_FILE);
        if socket.parent() == Some(state_dir.as_path()) {
            // Left by a zap that died while this folder had a longer path.
            let _ = fs::remove_file(&pointer);
        } else {
            let text = format!("{}\n", socket.display());
            fs::create_dir_all(&state_dir)
                .and_then(|()| fs::write(&pointer, &text))
                .map_err(|error| {
                    ControlError::io(format!("cannot write {}", pointer.display()), error)
                })?;
            server.owned_files.push((pointer, text));
        }
        Ok(server)
    }

    /// Binds `path` with the default [`Limits`].
    pub async fn bind(path: &Path) -> Result<Server, ControlError> {
        Server::bind_with(path, Limits::default()).await
    }

    /// Binds `path`: refuses if a zap answers there, replaces a stale socket
    /// file, and creates the socket with mode 0600 (see `bind_privately`).
    pub async fn bind_with(path: &Path, limits: Limits) -> Result<Server, ControlError> {
        if !path::fits(path) {
            return Err(ControlError::io(
                format!("cannot listen on {}", path.display()),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a Unix socket path has at most {} bytes",
                        path::MAX_SOCKET_PATH
                    ),
                ),
            ));
        }
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        prepare_dir(parent)?;
        let pid_file = pid_file(path);
        let mut attempts = 0;
        let listener = loop {
            probe(path, &pid_file).await?;
            match bind_privately(path, parent) {
                Ok(listener) => break listener,
                // Another zap linked its socket in since the probe: ask again.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempts < 3 => {
                    attempts += 1;
                }
                Err(error) => {
                    return Err(ControlError::io(
                        format!("cannot listen on {}", path.display()),
                        error,
                    ));
                }
            }
        };
        let identity = match fs::metadata(path) {
            Ok(meta) => (meta.dev(), meta.ino()),
            Err(error) => {
                let _ = fs::remove_file(path);
                return Err(ControlError::io(
                    format!("cannot see {}", path.display()),
                    error,
                ));
            }
        };
        let mut server = Server {
            listener,
            path: path.to_path_buf(),
            identity,
            owned_files: Vec::new(),
            limits,
        };
        let pid = format!("{}\n", std::process::id());
        fs::write(&pid_file, &pid).map_err(|error| {
            ControlError::io(format!("cannot write {}", pid_file.display()), error)
        })?;
        server.owned_files.push((pid_file, pid));
        Ok(server)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until the supervisor drops its receiver, then
    /// gives open connections a second to finish. Each connection is served
    /// in its own task, at most [`Limits::max_connections`] at once; they end
    /// with this future. Dropping the future removes the socket.
    pub async fn run(self, requests: mpsc::Sender<Request>) {
        let uid = effective_uid();
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = requests.closed() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            };
            // The socket's mode already keeps others out; this also holds if
            // someone loosens it, or the directory is shared.
            if !stream.peer_cred().is_ok_and(|peer| peer.uid() == uid) {
                refuse(stream, "this zap belongs to another user");
                continue;
            }
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                refuse(stream, "too many connections to this zap: try again");
                continue;
            };
            let requests = requests.clone();
            let limits = self.limits.clone();
            connections.spawn(async move {
                serve(stream, requests, &limits).await;
                drop(slot);
            });
        }
        // Let answers already given reach their clients: the answer to
        // `down`, typically, given just before the supervisor ended.
        let _ = timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let still_ours =
            fs::metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity);
        if still_ours {
            let _ = fs::remove_file(&self.path);
        }
        for (file, content) in &self.owned_files {
            if fs::read_to_string(file).is_ok_and(|now| &now == content) {
                let _ = fs::remove_file(file);
            }
        }
    }
}

/// The pid file next to a socket: `.zap/zap.sock` → `.zap/zap.pid`.
fn pid_file(socket: &Path) -> PathBuf {
    socket.with_extension("pid")
}

fn read_pid(pid_file: &Path) -> Option<u32> {
    fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

/// A socket in a `.zap/` folder lives in the user's project, whose folders
/// are theirs to set up. Anywhere else (`/tmp/zap-<uid>`) the directory must
/// be ours alone: whoever can write to it could swap the socket for theirs.
fn prepare_dir(dir: &Path) -> Result<(), ControlError> {
    let cannot = |error| ControlError::io(format!("cannot create {}", dir.display()), error);
    if dir.file_name() == Some(OsStr::new(".zap")) {
        return fs::create_dir_all(dir).map_err(cannot);
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(cannot)?;
    let unsafe_dir = |why: String| ControlError::UnsafeDir {
        dir: dir.to_path_buf(),
        why,
    };
    let meta = fs::symlink_metadata(dir).map_err(cannot)?;
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir("it is not a plain directory".into()));
    }
    if meta.uid() != effective_uid() {
        return Err(unsafe_dir(format!(
            "it belongs to uid {}, not to you",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(cannot)?;
    }
    Ok(())
}

/// Fails with [`ControlError::AlreadyRunning`] if something answers on
/// `path`; removes the file if nothing does (a zap that died).
async fn probe(path: &Path, pid_file: &Path) -> Result<(), ControlError> {
    let alive = || ControlError::AlreadyRunning {
        pid: read_pid(pid_file),
        socket: path.to_path_buf(),
    };
    match timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
        // Connected, or no answer in time (a full backlog): a live zap.
        Ok(Ok(_)) | Err(_) => Err(alive()),
        Ok(Err(error)) => match error.kind() {
            io::ErrorKind::NotFound => Ok(()),
            io::ErrorKind::WouldBlock => Err(alive()),
            io::ErrorKind::ConnectionRefused => match fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(ControlError::io(
                    format!("cannot remove the stale socket {}", path.display()),
                    error,
                )),
            },
            _ => Err(ControlError::io(
                format!("cannot check for a running zap at {}", path.display()),
                error,
            )),
        },
    }
}

/// Binds the socket where nobody else can reach it before its mode is 0600:
/// in a fresh 0700 directory next to `path`, then chmod 0600, then a hard
/// link to `path` (which, unlike rename, fails if a racing zap got there
/// first), then the staging name is removed. The listener keeps the inode,
/// so it answers on `path`. Setting the umask around `bind` would do too, but
/// the umask is process-wide: files other threads create meanwhile would get
/// it as well.
fn bind_privately(path: &Path, parent: &Path) -> io::Result<UnixListener> {
    let staging = parent.join(format!(".b{}", std::process::id()));
    // Left by an earlier zap that had our pid and died mid-bind.
    let _ = fs::remove_dir_all(&staging);
    DirBuilder::new().mode(0o700).create(&staging)?;
    let staged = staging.join("s");
    let bound = (|| {
        // A umask that left the directory unusable must not stop the bind;
        // this never widens it beyond 0700.
        fs::set_permissions(&staging, Permissions::from_mode(0o700))?;
        let listener = UnixListener::bind(&staged)?;
        fs::set_permissions(&staged, Permissions::from_mode(0o600))?;
        match fs::hard_link(&staged, path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Err(error),
            // A filesystem without hard links: the probe just ran, rename.
            Err(_) => fs::rename(&staged, path)?,
        }
        Ok(listener)
    })();
    let _ = fs::remove_file(&staged);
    let _ = fs::remove_dir(&staging);
    bound
}

/// Tells a refused client why, if its socket has room; never waits. The
/// write goes through the std stream: tokio's `try_write` would refuse until
/// the reactor has seen the new socket writable.
fn refuse(stream: UnixStream, message: &str) {
    let mut bytes = Vec::new();
    encode(
        &Reply::Error {
            message: message.into(),
        },
        &mut bytes,
    );
    encode(&Reply::End, &mut bytes);
    if let Ok(stream) = stream.into_std() {
        // Non-blocking, as tokio left it.
        let _ = (&stream).write(&bytes);
    }
}

/// One connection: read its request, hand it to the supervisor, write the
/// replies until the supervisor is done, the client leaves (EOF on its side:
/// a client keeps its write half open while it wants replies) or falls behind.
async fn serve(stream: UnixStream, requests: mpsc::Sender<Request>, limits: &Limits) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let action = match read_request(&mut reader, limits).await {
        Ok(Some(action)) => action,
        // Connected and left: another zap checking whether we are alive.
        Ok(None) => return,
        Err(message) => return answer_error(&mut write, message, limits).await,
    };
    let (reply, mut replies) = reply_channel(limits.reply_buffer);
    match timeout(
        limits.request_timeout,
        requests.send(Request { action, reply }),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            let message = "this zap is shutting down".to_string();
            return answer_error(&mut write, message, limits).await;
        }
        Err(_) => {
            let message = "this zap is too busy to take the request: try again".to_string();
            return answer_error(&mut write, message, limits).await;
        }
    }
    let mut scratch = [0u8; 512];
    loop {
        tokio::select! {
            next = replies.next() => match next {
                Received::Batch(batch) => {
                    if write_replies(&mut write, &batch, limits).await.is_err() {
                        return;
                    }
                }
                Received::Finished => {
                    let _ = write_replies(&mut write, &[Reply::End], limits).await;
                    return;
                }
                Received::Overflowed => {
                    // Write what was queued before the loss, then say so.
                    let mut left = replies.close();
                    left.push(Reply::Error {
                        message: "this client fell too far behind: the rest of the output \
                                  was dropped and the connection is closed"
                            .into(),
                    });
                    left.push(Reply::End);
                    let _ = write_replies(&mut write, &left, limits).await;
                    return;
                }
            },
            read = reader.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return,
                // One request per connection: anything more is ignored.
                Ok(_) => {}
            },
        }
    }
}

/// The request line: `Ok(None)` when the client left without a word.
async fn read_request(
    reader: &mut BufReader<OwnedReadHalf>,
    limits: &Limits,
) -> Result<Option<Action>, String> {
    let mut line = Vec::new();
    let most = u64::try_from(limits.max_request_bytes).unwrap_or(u64::MAX);
    let mut limited = reader.take(most.saturating_add(1));
    let read = timeout(limits.request_timeout, limited.read_until(b'\n', &mut line)).await;
    match read {
        Err(_) => Err(format!(
            "no request came within {}s",
            limits.request_timeout.as_secs()
        )),
        Ok(Err(error)) => Err(format!("cannot read the request: {error}")),
        Ok(Ok(0)) => Ok(None),
        Ok(Ok(_)) if line.len() > limits.max_request_bytes => Err(format!(
            "the request is longer than {} bytes",
            limits.max_request_bytes
        )),
        Ok(Ok(_)) => serde_json::from_slice(line.trim_ascii())
            .map(Some)
            .map_err(|error| format!("not a request zap understands: {error}")),
    }
}

async fn answer_error(write: &mut OwnedWriteHalf, message: String, limits: &Limits) {
    let _ = write_replies(write, &[Reply::Error { message }, Reply::End], limits).await;
}

/// Writes `replies` as JSON lines, giving up after [`Limits::write_timeout`]
/// (the client is not reading).
async fn write_replies(
    write: &mut OwnedWriteHalf,
    replies: &[Reply],
    limits: &Limits,
) -> io::Result<()> {
    let mut bytes = Vec::new();
    for reply in replies {
        encode(reply, &mut bytes);
    }
    match timeout(limits.write_timeout, write.write_all(&bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client does not read",
        )),
    }
}
