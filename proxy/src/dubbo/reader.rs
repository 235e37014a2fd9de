//! The reading half of every Dubbo connection (caller and provider side alike): bytes in, frames
//! out, one read at a time, so the caller handles a whole read's frames with one clock reading.
//!
//! Frames are split off the read buffer without a copy and live on while they are queued to be
//! written elsewhere, so a buffer cannot simply be reused once read: a new one is taken when the
//! spare room runs low. Allocating a fresh one every time was a malloc and a free per read, and
//! for the large provider-side buffers the allocator kept giving the freed memory back to the
//! kernel and faulting it in again (a few percent of the proxy's CPU at saturation). Instead, the
//! last few buffers are kept and taken again once the frames that shared them are gone.

use std::collections::VecDeque;

use bytes::BytesMut;
use causeway_protocols::dubbo::{DubboCodec, Frame, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Frames from one connection.
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    io: R,
    codec: DubboCodec,
    buffer: BytesMut,
    /// The room each read gets: a new buffer is taken when less than half of it is left.
    read_size: usize,
    /// Earlier buffers (empty handles on their allocations), reused once no frame shares them.
    retired: VecDeque<BytesMut>,
    max_retired: usize,
    /// Buffers allocated so far.
    #[cfg(test)]
    allocations: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of `io` whose reads get at least half of `read_size` bytes of room, keeping up
    /// to `max_retired` earlier buffers for reuse.
    pub(crate) fn new(io: R, codec: DubboCodec, read_size: usize, max_retired: usize) -> Self {
        Self {
            io,
            codec,
            buffer: BytesMut::with_capacity(read_size),
            read_size,
            retired: VecDeque::with_capacity(max_retired),
            max_retired,
            #[cfg(test)]
            allocations: 0,
        }
    }

    /// Reads what the peer sent: `Ok(false)` once it has closed its side. Cancel-safe: a read
    /// that is dropped before it completes has read nothing.
    pub(crate) async fn read(&mut self) -> std::io::Result<bool> {
        // Room for a whole frame whose header is in, and for a good share of a burst.
        let wanted = self
            .codec
            .missing(&self.buffer)
            .max(self.read_size / 2)
            .max(1);
        if self.buffer.capacity() - self.buffer.len() < wanted {
            self.make_room(wanted.max(self.read_size));
        }
        Ok(self.io.read_buf(&mut self.buffer).await? > 0)
    }

    /// The next whole frame read so far, or `None` until more is read.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        self.codec.split_frame(&mut self.buffer)
    }

    /// Bytes read but not yet part of a whole frame.
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn make_room(&mut self, room: usize) {
        // Nothing else shares the buffer: the incomplete frame moves to its front.
        if self.buffer.try_reclaim(room) {
            return;
        }
        let incomplete = self.buffer.split();
        let needed = incomplete.len() + room;
        let mut next = self.reusable(needed);
        next.extend_from_slice(&incomplete);
        drop(incomplete);
        let previous = std::mem::replace(&mut self.buffer, next);
        if self.max_retired > 0 {
            if self.retired.len() == self.max_retired {
                self.retired.pop_front();
            }
            self.retired.push_back(previous);
        }
    }

    /// A retired buffer nothing shares any more with room for `needed` bytes, else a new one.
    fn reusable(&mut self, needed: usize) -> BytesMut {
        for _ in 0..self.retired.len() {
            let Some(mut candidate) = self.retired.pop_front() else {
                break;
            };
            candidate.clear();
            if candidate.try_reclaim(needed) {
                return candidate;
            }
            self.retired.push_back(candidate);
        }
        #[cfg(test)]
        {
            self.allocations += 1;
        }
        BytesMut::with_capacity(needed)
    }
}

#[cfg(test)]
mod tests {
    use causeway_protocols::dubbo::{Header, Serialization};
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    fn frame(id: i64, body_len: usize) -> Vec<u8> {
        let mut header = Header::request(id, Serialization::HESSIAN2, true);
        header.body_len = u32::try_from(body_len).unwrap();
        let mut bytes = header.encode().to_vec();
        bytes.resize(bytes.len() + body_len, b'x');
        bytes
    }

    #[tokio::test]
    async fn frames_split_across_reads_come_out_whole_and_in_order() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut reader = FrameReader::new(server, DubboCodec::new(), 256, 2);
        let frames: Vec<Vec<u8>> = (1..=40).map(|id| frame(id, 100 + id as usize)).collect();
        let all: Vec<u8> = frames.concat();
        let writer = tokio::spawn(async move {
            // Odd-sized pieces, so frames straddle reads and buffers.
            for piece in all.chunks(77) {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut seen = Vec::new();
        let mut kept = Vec::new();
        while seen.len() < frames.len() {
            assert!(reader.read().await.unwrap(), "closed early");
            while let Some(frame) = reader.next_frame().unwrap() {
                seen.push(frame.header().request_id);
                assert_eq!(frame.as_bytes(), &frames[seen.len() - 1][..]);
                // Some frames live on, as queued ones do, so buffers are shared when replaced.
                if seen.len() % 3 == 0 {
                    kept.push(frame);
                }
            }
        }
        assert_eq!(seen, (1..=40).collect::<Vec<i64>>());
        for (frame, id) in kept.iter().zip((3..=40).step_by(3)) {
            assert_eq!(
                frame.as_bytes(),
                &frames[id as usize - 1][..],
                "a kept frame changed"
            );
        }
        assert_eq!(reader.buffered(), 0);
        writer.await.unwrap();
        assert!(!reader.read().await.unwrap(), "the writer is gone");
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_read_size_is_read_whole() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(server, DubboCodec::new(), 128, 1);
        let big = frame(7, 10_000);
        let expected = big.clone();
        tokio::spawn(async move { client.write_all(&big).await.unwrap() });
        let frame = loop {
            assert!(reader.read().await.unwrap());
            if let Some(frame) = reader.next_frame().unwrap() {
                break frame;
            }
        };
        assert_eq!(frame.as_bytes(), &expected[..]);
    }

    #[tokio::test]
    async fn buffers_are_reused_once_their_frames_are_gone() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut reader = FrameReader::new(server, DubboCodec::new(), 1024, 2);
        let one = frame(1, 700);
        let mut queued = None;
        for _ in 0..20 {
            client.write_all(&one).await.unwrap();
            assert!(reader.read().await.unwrap());
            let frame = reader.next_frame().unwrap().expect("a whole frame");
            // Each frame is still queued when the next read needs room, and written after it,
            // as in the proxy: its buffer cannot be reclaimed in place.
            queued = Some(frame);
        }
        drop(queued);
        assert!(
            reader.allocations <= 3,
            "{} buffers allocated for 20 reads: freed buffers are not reused",
            reader.allocations
        );
    }

    #[tokio::test]
    async fn bad_input_is_an_error_not_a_frame() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(server, DubboCodec::new(), 1024, 1);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(reader.read().await.unwrap());
        assert!(matches!(
            reader.next_frame(),
            Err(FrameError::BadMagic { .. })
        ));
    }
}
