//! The sending end the supervisor answers a request through. It never waits:
//! a client that does not read fast enough is dropped, never the other way
//! round, so `zap logs -f | less` left paused cannot stall every job.

use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};

use super::protocol::Reply;

/// The supervisor's end of one client's connection. Cloning it is fine; the
/// client sees [`Reply::End`] once every clone is dropped.
#[derive(Debug, Clone)]
pub struct ReplyTx {
    tx: mpsc::Sender<Vec<Reply>>,
    overflow: Arc<Notify>,
}

/// The connection's end: batches of replies, and a signal that the supervisor
/// found the buffer full.
#[derive(Debug)]
pub struct ReplyRx {
    rx: mpsc::Receiver<Vec<Reply>>,
    overflow: Arc<Notify>,
}

/// A reply channel holding at most `capacity` batches. The server makes one
/// per connection; supervisor tests can make their own.
pub fn reply_channel(capacity: usize) -> (ReplyTx, ReplyRx) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflow = Arc::new(Notify::new());
    (
        ReplyTx {
            tx,
            overflow: Arc::clone(&overflow),
        },
        ReplyRx { rx, overflow },
    )
}

/// What [`ReplyRx::next`] found.
#[derive(Debug, PartialEq)]
pub enum Received {
    Batch(Vec<Reply>),
    /// A sender found the buffer full: the client is not keeping up.
    Overflowed,
    /// Every sender is dropped: the answer is complete.
    Finished,
}

impl ReplyTx {
    /// Queues one reply without waiting. `false` means the client is gone or
    /// too slow (its connection is being closed): stop sending to it and drop
    /// this sender.
    pub fn send(&self, reply: Reply) -> bool {
        self.send_all(vec![reply])
    }

    /// Queues several replies as one batch, which takes one slot of the
    /// buffer however long it is: send a backlog (the lines kept in memory)
    /// this way, then each new line with [`ReplyTx::send`].
    pub fn send_all(&self, replies: Vec<Reply>) -> bool {
        match self.tx.try_send(replies) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                // `notify_one` keeps a permit if the connection is busy
                // writing, so it sees this once it looks again.
                self.overflow.notify_one();
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Whether the client is gone (disconnected, dropped for being slow).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves once the client is gone: a follower with no new lines can
    /// wait on this to be forgotten.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

impl ReplyRx {
    /// What the supervisor did next. An overflow is reported as soon as it
    /// happens, before batches still queued (get those with [`ReplyRx::close`]).
    pub async fn next(&mut self) -> Received {
        tokio::select! {
            biased;
            () = self.overflow.notified() => Received::Overflowed,
            batch = self.rx.recv() => match batch {
                Some(batch) => Received::Batch(batch),
                None => Received::Finished,
            },
        }
    }

    /// Refuses further replies and returns those already queued.
    pub fn close(&mut self) -> Vec<Reply> {
        self.rx.close();
        let mut left = Vec::new();
        while let Ok(batch) = self.rx.try_recv() {
            left.extend(batch);
        }
        left
    }

    /// Every reply queued so far, without waiting (for tests).
    pub fn drain(&mut self) -> Vec<Reply> {
        let mut replies = Vec::new();
        while let Ok(batch) = self.rx.try_recv() {
            replies.extend(batch);
        }
        replies
    }
}

/// `zap logs -f`: the log book hands each client its lines through its
/// reply channel, never waiting for it.
impl crate::logbook::LineFollower for ReplyTx {
    fn take(&self, lines: Vec<(crate::model::InstanceId, crate::logs::LogLine)>) -> bool {
        let replies = lines
            .iter()
            .map(|(id, line)| Reply::Line(super::protocol::LogEntry::new(id, line)))
            .collect();
        self.send_all(replies)
    }

    fn is_gone(&self) -> bool {
        self.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(message: &str) -> Reply {
        Reply::Done {
            message: message.into(),
        }
    }

    #[tokio::test]
    async fn a_full_buffer_refuses_at_once_and_tells_the_connection() {
        let (tx, mut rx) = reply_channel(2);
        assert!(tx.send(done("a")));
        assert!(tx.send_all(vec![done("b"), done("c")]));
        assert!(!tx.send(done("d")), "the third batch does not fit");
        assert_eq!(rx.next().await, Received::Overflowed);
        assert_eq!(rx.close(), vec![done("a"), done("b"), done("c")]);
        assert!(tx.is_closed());
        assert!(!tx.send(done("e")));
    }

    #[tokio::test]
    async fn dropping_every_sender_ends_the_answer() {
        let (tx, mut rx) = reply_channel(4);
        let clone = tx.clone();
        assert!(clone.send(done("a")));
        drop(tx);
        drop(clone);
        assert_eq!(rx.next().await, Received::Batch(vec![done("a")]));
        assert_eq!(rx.next().await, Received::Finished);
    }

    #[tokio::test]
    async fn closed_resolves_when_the_client_goes() {
        let (tx, rx) = reply_channel(4);
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(1), tx.closed())
            .await
            .expect("closed");
        assert!(!tx.send(done("late")));
    }
}
