//! One job's session channel after its exec was accepted: feeds it stdin,
//! and forwards its output as [`Chunk`]s, ending with exactly one exit.
//!
//! russh delivers every channel of a connection from one session task, which
//! waits whenever a channel's queue (100 messages) is full, and it widens the
//! SSH window as data arrives, not as it is consumed. So a reader that stops
//! reading stalls every channel of the connection, keepalives included.
//! The pump therefore keeps reading while the consumer is behind, merging
//! output into an outbox, and only stops reading once the outbox holds
//! [`OUTBOX_LIMIT`] bytes: a slow consumer costs that much memory per job
//! before it slows the connection down.

use std::collections::VecDeque;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::sync::mpsc;

use super::super::Chunk;
use super::super::consumer::ChunkConsumer;
use super::connect::Lease;
use crate::model::{ExitInfo, Stream};

/// Bytes a channel may hold for a slow consumer before it stops reading.
pub const OUTBOX_LIMIT: usize = 2 * 1024 * 1024;

/// The largest chunk made by merging small ones.
const MERGED_CHUNK: usize = 64 * 1024;

/// Output waiting for the consumer, in arrival order; small pieces of the
/// same stream merge.
#[derive(Debug, Default)]
pub struct Outbox {
    chunks: VecDeque<Chunk>,
    bytes: usize,
}

impl Outbox {
    pub fn push(&mut self, stream: Stream, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.bytes += data.len();
        if let Some(last) = self.chunks.back_mut() {
            let merged = match (last, stream) {
                (Chunk::Stdout(buffer), Stream::Stdout)
                | (Chunk::Stderr(buffer), Stream::Stderr)
                    if buffer.len() + data.len() <= MERGED_CHUNK =>
                {
                    buffer.extend_from_slice(data);
                    true
                }
                _ => false,
            };
            if merged {
                return;
            }
        }
        self.chunks.push_back(match stream {
            Stream::Stdout => Chunk::Stdout(data.to_vec()),
            Stream::Stderr => Chunk::Stderr(data.to_vec()),
        });
    }

    pub fn pop(&mut self) -> Option<Chunk> {
        let chunk = self.chunks.pop_front()?;
        if let Chunk::Stdout(data) | Chunk::Stderr(data) = &chunk {
            self.bytes -= data.len();
        }
        Some(chunk)
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.bytes >= OUTBOX_LIMIT
    }
}

/// What a channel said so far about how its process ended.
#[derive(Debug, Default)]
pub struct Reading {
    pub outbox: Outbox,
    exit: Option<ExitInfo>,
}

impl Reading {
    /// Takes in one channel message.
    pub fn take(&mut self, message: ChannelMsg) {
        match message {
            ChannelMsg::Data { data } => self.outbox.push(Stream::Stdout, &data),
            ChannelMsg::ExtendedData { data, ext: 1 } => self.outbox.push(Stream::Stderr, &data),
            ChannelMsg::ExitStatus { exit_status } => {
                self.exit = Some(ExitInfo::Code(
                    i32::try_from(exit_status).unwrap_or(i32::MAX),
                ));
            }
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.exit = Some(ExitInfo::Signal(signal_label(&signal_name)));
            }
            _ => {}
        }
    }

    /// How it ended: a channel that closed without saying is `Unknown`,
    /// never success (sshd's ChannelTimeout, a lost connection).
    pub fn exit(&mut self) -> ExitInfo {
        self.exit.take().unwrap_or(ExitInfo::Unknown)
    }
}

/// A signal's name without `SIG`, as `kill -l` prints it.
pub fn signal_label(signal: &Sig) -> String {
    let name = match signal {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => {
            let name = name.strip_prefix("SIG").unwrap_or(name);
            // OpenSSH sends e.g. `USR2@openssh.com` for signals RFC 4254 lacks.
            return name.split('@').next().unwrap_or(name).to_string();
        }
    };
    name.to_string()
}

/// Writes `stdin`, then what `feed` brings until its senders are gone (none
/// when `None`), then EOF; and hands the channel's output to `out` until
/// the channel closes (output may follow the exit status), then the exit.
/// `lease` holds the channel's MaxSessions place until then.
pub async fn pump(
    mut read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    stdin: Vec<u8>,
    feed: Option<mpsc::Receiver<Vec<u8>>>,
    mut reading: Reading,
    mut out: Box<dyn ChunkConsumer>,
    lease: Lease,
) {
    let feed = async move {
        // A shell that exits before reading all of its stdin is reported
        // by its exit; the failed write says nothing more.
        let mut open = stdin.is_empty() || write.data(stdin.as_slice()).await.is_ok();
        if let Some(mut feed) = feed {
            while open && let Some(data) = feed.recv().await {
                open = write.data(data.as_slice()).await.is_ok();
            }
        }
        let _ = write.eof().await;
    };
    let drain = async {
        let mut open = true;
        let mut consumer = true;
        while open || (consumer && !reading.outbox.is_empty()) {
            tokio::select! {
                ready = out.ready(), if consumer && !reading.outbox.is_empty() => {
                    if ready {
                        if let Some(chunk) = reading.outbox.pop() {
                            out.take(chunk);
                        }
                    } else {
                        // Nobody listens any more: keep reading to the end,
                        // so the connection flows and the place is given
                        // back only when the server closed the channel.
                        consumer = false;
                    }
                },
                message = read.wait(), if open && (!consumer || !reading.outbox.is_full()) => {
                    match message {
                        Some(message) => {
                            reading.take(message);
                            if !consumer {
                                while reading.outbox.pop().is_some() {}
                            }
                        }
                        None => open = false,
                    }
                }
            }
        }
        if consumer {
            let exit = reading.exit();
            // No exit status and a dead connection: the host went away under
            // the job, which may still be running there.
            let last = if exit == ExitInfo::Unknown && lease.connection().is_closed() {
                Chunk::Lost(lease.connection().lost_reason())
            } else {
                Chunk::Exit(exit)
            };
            if out.ready().await {
                out.take(last);
            }
        }
        out.finish().await;
    };
    tokio::join!(feed, drain);
    drop(lease);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_pieces_of_one_stream_merge_and_streams_keep_their_order() {
        let mut outbox = Outbox::default();
        outbox.push(Stream::Stdout, b"a");
        outbox.push(Stream::Stdout, b"b");
        outbox.push(Stream::Stderr, b"E");
        outbox.push(Stream::Stdout, b"c");
        outbox.push(Stream::Stdout, b"");
        assert_eq!(outbox.pop(), Some(Chunk::Stdout(b"ab".to_vec())));
        assert_eq!(outbox.pop(), Some(Chunk::Stderr(b"E".to_vec())));
        assert_eq!(outbox.pop(), Some(Chunk::Stdout(b"c".to_vec())));
        assert_eq!(outbox.pop(), None);
        assert!(outbox.is_empty());
    }

    #[test]
    fn merged_chunks_stay_bounded_and_the_outbox_fills() {
        let mut outbox = Outbox::default();
        let piece = vec![b'x'; 40 * 1024];
        for _ in 0..(OUTBOX_LIMIT / piece.len() + 1) {
            outbox.push(Stream::Stdout, &piece);
        }
        assert!(outbox.is_full());
        while let Some(chunk) = outbox.pop() {
            let Chunk::Stdout(data) = chunk else {
                panic!("only stdout was pushed");
            };
            assert!(data.len() <= MERGED_CHUNK);
        }
        assert!(!outbox.is_full());
    }

    #[test]
    fn exits_are_read_from_status_or_signal_and_never_guessed() {
        let mut reading = Reading::default();
        assert_eq!(reading.exit(), ExitInfo::Unknown);
        reading.take(ChannelMsg::ExitStatus { exit_status: 3 });
        reading.take(ChannelMsg::Data {
            data: b"late".to_vec().into(),
        });
        assert_eq!(reading.exit(), ExitInfo::Code(3));
        assert_eq!(reading.outbox.pop(), Some(Chunk::Stdout(b"late".to_vec())));
        reading.take(ChannelMsg::ExitSignal {
            signal_name: Sig::KILL,
            core_dumped: false,
            error_message: String::new(),
            lang_tag: String::new(),
        });
        assert_eq!(reading.exit(), ExitInfo::Signal("KILL".into()));
        reading.take(ChannelMsg::ExtendedData {
            data: b"err".to_vec().into(),
            ext: 1,
        });
        assert_eq!(reading.outbox.pop(), Some(Chunk::Stderr(b"err".to_vec())));
    }

    #[test]
    fn signal_names_lose_their_sig_prefix() {
        assert_eq!(signal_label(&Sig::TERM), "TERM");
        assert_eq!(signal_label(&Sig::Custom("SIGUSR2".into())), "USR2");
        assert_eq!(
            signal_label(&Sig::Custom("WINCH@openssh.com".into())),
            "WINCH"
        );
    }
}
