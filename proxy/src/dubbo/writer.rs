//! The writing half of every Dubbo connection (caller and provider side alike): frames queued
//! by any task go out in bursts, as few `writev` calls as possible, without being copied.
//!
//! Two things keep the system calls per frame low, which is what the proxy's CPU goes to under
//! load (every loopback send also runs the receiver's network stack and wakes it):
//! - after the first frame of a wake-up the writer yields once, so the tasks still queued from
//!   the same read (the other requests of a caller's burst, the other responses of a provider
//!   read) add their frames before anything is written;
//! - the frames are handed to the socket as a list of buffers ([`FrameQueue`] is a [`Buf`]
//!   whose `chunks_vectored` lists them), so the bytes received are the bytes sent: no copy
//!   into a write buffer, and no write buffer per connection.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt as _;

/// Queued bytes beyond which the writer stops collecting and writes, so one slow socket does
/// not hold an unbounded batch.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Writes queued frames to a connection until every sender is gone or the peer stops reading.
pub(crate) async fn write_loop<W, R>(mut write: W, mut rx: R)
where
    W: tokio::io::AsyncWrite + Unpin,
    R: Receiver,
{
    let mut queue = FrameQueue::default();
    while let Some(bytes) = rx.recv().await {
        queue.push(bytes);
        tokio::task::yield_now().await;
        while let Some(more) = rx.try_recv() {
            queue.push(more);
            if queue.remaining() >= MAX_BATCH_BYTES
                && write.write_all_buf(&mut queue).await.is_err()
            {
                return;
            }
        }
        if write.write_all_buf(&mut queue).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// Where a writer's frames come from: a Dubbo provider connection's queue, a Dubbo caller's
/// outbox, a Thrift caller's channel.
pub(crate) trait Receiver {
    /// The next frame, waiting.
    fn recv(&mut self) -> impl std::future::Future<Output = Option<Bytes>> + Send;
    /// The next frame if one is queued.
    fn try_recv(&mut self) -> Option<Bytes>;
}

impl Receiver for tokio::sync::mpsc::UnboundedReceiver<Bytes> {
    fn recv(&mut self) -> impl std::future::Future<Output = Option<Bytes>> + Send {
        tokio::sync::mpsc::UnboundedReceiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<Bytes> {
        tokio::sync::mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

/// Frames waiting to be written, read as one buffer.
#[derive(Debug, Default)]
pub(crate) struct FrameQueue {
    frames: VecDeque<Bytes>,
    remaining: usize,
}

// === impl FrameQueue ===

impl FrameQueue {
    /// Appends a frame.
    pub(crate) fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.remaining += bytes.len();
            self.frames.push_back(bytes);
        }
    }
}

impl Buf for FrameQueue {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.frames.front().map_or(&[], |f| f.as_ref())
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, frame) in dst.iter_mut().zip(&self.frames) {
            *slot = IoSlice::new(frame);
            filled += 1;
        }
        filled
    }

    fn advance(&mut self, mut count: usize) {
        self.remaining = self.remaining.saturating_sub(count);
        while count > 0 {
            let Some(front) = self.frames.front_mut() else {
                return;
            };
            if count < front.len() {
                front.advance(count);
                return;
            }
            count -= front.len();
            self.frames.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_one_buffer_and_advances_across_frames() {
        let mut queue = FrameQueue::default();
        queue.push(Bytes::from_static(b"abc"));
        queue.push(Bytes::new());
        queue.push(Bytes::from_static(b"defg"));
        assert_eq!(queue.remaining(), 7);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(queue.chunks_vectored(&mut slices), 2);
        assert_eq!(&*slices[1], b"defg");
        queue.advance(4);
        assert_eq!((queue.remaining(), queue.chunk()), (3, &b"efg"[..]));
        let mut rest = Vec::new();
        while queue.has_remaining() {
            let chunk = queue.chunk().to_vec();
            queue.advance(chunk.len());
            rest.extend(chunk);
        }
        assert_eq!(rest, b"efg");
        assert_eq!(queue.chunk(), b"");
    }

    #[tokio::test]
    async fn writes_every_frame_in_order_then_closes() {
        let (client, mut server) = tokio::io::duplex(64);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(client, rx));
        let mut expected: Vec<u8> = Vec::new();
        for i in 0..200u8 {
            let frame = vec![i; usize::from(i % 7) + 1];
            expected.extend(&frame);
            tx.send(Bytes::from(frame)).unwrap();
        }
        drop(tx);
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received)
            .await
            .unwrap();
        writer.await.unwrap();
        assert_eq!(received, expected);
    }
}
