//! The client end of the control socket: connect, send one action, read the
//! replies.

use std::io;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::ControlError;
use super::path;
use super::protocol::Reply;
use crate::action::Action;

/// The longest reply line read: a status of thousands of instances fits.
const MAX_REPLY_BYTES: u64 = 16 * 1024 * 1024;

/// The replies to one request, read line by line.
#[derive(Debug)]
pub struct ReplyStream {
    reader: BufReader<OwnedReadHalf>,
    /// Kept open: the server takes a closed write half for a client gone.
    _writer: OwnedWriteHalf,
    ended: bool,
}

/// Sends `action` to the zap running for `config_dir` (trying the socket
/// `.zap/socket` names, then [`path::socket_path`]).
pub async fn request(config_dir: &Path, action: &Action) -> Result<ReplyStream, ControlError> {
    let stream = connect_dir(config_dir).await?;
    send(stream, action).await
}

/// Sends `action` to the zap listening on `socket`.
pub async fn request_socket(socket: &Path, action: &Action) -> Result<ReplyStream, ControlError> {
    let stream = match UnixStream::connect(socket).await {
        Ok(stream) => stream,
        Err(error) => return Err(connect_error(socket, socket, error)),
    };
    send(stream, action).await
}

/// Whether a zap answers for `config_dir`.
pub async fn is_running(config_dir: &Path) -> bool {
    connect_dir(config_dir).await.is_ok()
}

async fn connect_dir(config_dir: &Path) -> Result<UnixStream, ControlError> {
    let mut last = None;
    for socket in path::client_candidates(config_dir) {
        match UnixStream::connect(&socket).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(connect_error(&path::canonical(config_dir), &socket, error)),
        }
    }
    Err(last.unwrap_or_else(|| ControlError::NotRunning {
        dir: path::canonical(config_dir),
    }))
}

/// No socket and a socket nobody listens on both mean "not running".
fn connect_error(dir: &Path, socket: &Path, error: io::Error) -> ControlError {
    match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ControlError::NotRunning {
            dir: dir.to_path_buf(),
        },
        _ => ControlError::io(format!("cannot connect to {}", socket.display()), error),
    }
}

async fn send(stream: UnixStream, action: &Action) -> Result<ReplyStream, ControlError> {
    let (reader, mut writer) = stream.into_split();
    let mut line = serde_json::to_vec(action)
        .map_err(|error| ControlError::Protocol(format!("cannot encode the request: {error}")))?;
    line.push(b'\n');
    match writer.write_all(&line).await {
        Ok(()) => {}
        // A zap refusing the connection may have closed it already, after
        // saying why: read that rather than report a broken pipe.
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        Err(error) => return Err(ControlError::io("cannot send the request", error)),
    }
    Ok(ReplyStream {
        reader: BufReader::new(reader),
        _writer: writer,
        ended: false,
    })
}

impl ReplyStream {
    /// The next reply; `None` after [`Reply::End`] (which is not returned).
    pub async fn next(&mut self) -> Result<Option<Reply>, ControlError> {
        if self.ended {
            return Ok(None);
        }
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_REPLY_BYTES + 1)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|error| ControlError::io("cannot read the reply", error))?;
        if read == 0 || line.last() != Some(&b'\n') {
            if line.len() as u64 > MAX_REPLY_BYTES {
                return Err(ControlError::Protocol(format!(
                    "a reply line is longer than {MAX_REPLY_BYTES} bytes"
                )));
            }
            return Err(ControlError::Closed);
        }
        match serde_json::from_slice(line.trim_ascii()) {
            Ok(Reply::End) => {
                self.ended = true;
                Ok(None)
            }
            Ok(reply) => Ok(Some(reply)),
            Err(error) => Err(ControlError::Protocol(error.to_string())),
        }
    }

    /// Every reply up to [`Reply::End`].
    pub async fn collect(mut self) -> Result<Vec<Reply>, ControlError> {
        let mut replies = Vec::new();
        while let Some(reply) = self.next().await? {
            replies.push(reply);
        }
        Ok(replies)
    }
}
