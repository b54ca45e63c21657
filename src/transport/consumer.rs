//! Where a shell's raw output goes as it is read: a [`ChunkConsumer`]. The
//! task that reads a job's channel hands each chunk straight to it, so a
//! job's output is decoded where it is read, with no task and no queue in
//! between; helpers whose output a task of their own reads (the stats
//! poller, `run_capture`) use a channel of chunks, [`ChunkSender`].

use futures::future::BoxFuture;
use tokio::sync::mpsc::{self, OwnedPermit};

use super::Chunk;

/// Takes a shell's output in the order it was read, ending with exactly one
/// [`Chunk::Exit`] or [`Chunk::Lost`].
pub trait ChunkConsumer: Send + 'static {
    /// Waits until another chunk can be taken: the reader stops reading
    /// (up to its own buffer) meanwhile. `false` when nobody listens any
    /// more.
    fn ready(&mut self) -> BoxFuture<'_, bool>;

    /// Takes `chunk`; called only after `ready` said `true`.
    fn take(&mut self, chunk: Chunk);

    /// The output ended: hand on whatever is still held.
    fn finish(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Chunks to a channel, for a consumer task of their own.
pub struct ChunkSender {
    tx: mpsc::Sender<Chunk>,
    permit: Option<OwnedPermit<Chunk>>,
}

impl ChunkSender {
    pub fn new(tx: mpsc::Sender<Chunk>) -> Box<ChunkSender> {
        Box::new(ChunkSender { tx, permit: None })
    }
}

impl ChunkConsumer for ChunkSender {
    fn ready(&mut self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            if self.permit.is_none() {
                self.permit = self.tx.clone().reserve_owned().await.ok();
            }
            self.permit.is_some()
        })
    }

    fn take(&mut self, chunk: Chunk) {
        if let Some(permit) = self.permit.take() {
            permit.send(chunk);
        }
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// A channel whose chunks a task hands to `consumer`: for transports whose
/// readers are several tasks (a local shell's two pipes).
pub fn through_channel(mut consumer: Box<dyn ChunkConsumer>) -> mpsc::Sender<Chunk> {
    let (tx, mut rx) = mpsc::channel(super::CHUNK_QUEUE);
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if !consumer.ready().await {
                break;
            }
            consumer.take(chunk);
        }
        consumer.finish().await;
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ExitInfo;

    #[tokio::test]
    async fn a_sender_passes_chunks_in_order_and_says_when_nobody_listens() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut sender = ChunkSender::new(tx);
        assert!(sender.ready().await);
        sender.take(Chunk::Stdout(b"a".to_vec()));
        assert_eq!(rx.recv().await, Some(Chunk::Stdout(b"a".to_vec())));
        assert!(sender.ready().await);
        sender.take(Chunk::Exit(ExitInfo::Code(0)));
        assert_eq!(rx.recv().await, Some(Chunk::Exit(ExitInfo::Code(0))));
        drop(rx);
        assert!(!sender.ready().await);
    }
}
