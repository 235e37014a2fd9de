//! A caller connection's answers on their way to its writer: a list behind a lock, filled by the
//! connection's own task (heartbeat replies, local errors) and by the provider connections
//! completing its requests, and taken whole by the writer.
//!
//! It replaces a channel, which cost several atomic operations per answer on each side; here an
//! answer costs one uncontended lock, and the writer is woken once per burst (when the list was
//! empty), not per answer. The writer stops once the sender (held by the connection's shared
//! `Caller`, so by every request in flight) is gone and the list is written.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;

use super::writer::Receiver;

#[derive(Debug, Default)]
struct Shared {
    frames: Mutex<Frames>,
    /// Wakes the writer: a frame arrived in an empty list, or the sender left.
    wake: Notify,
}

#[derive(Debug, Default)]
struct Frames {
    queued: VecDeque<Bytes>,
    /// The sender is gone: nothing more will be queued.
    sender_gone: bool,
    /// The writer stopped (the caller is gone): answers have nowhere to go.
    writer_gone: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Frames> {
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new outbox: its sending side and the writer's side.
pub(crate) fn outbox() -> (OutboxSender, OutboxReceiver) {
    let shared = Arc::new(Shared::default());
    (
        OutboxSender(shared.clone()),
        OutboxReceiver {
            shared,
            taken: VecDeque::new(),
        },
    )
}

/// Puts answers in a caller connection's outbox; one per connection, shared by its requests.
#[derive(Debug)]
pub struct OutboxSender(Arc<Shared>);

impl OutboxSender {
    /// Queues `bytes` for the caller; `false` when the caller's writer is gone.
    pub fn send(&self, bytes: Bytes) -> bool {
        let mut frames = self.0.lock();
        if frames.writer_gone {
            return false;
        }
        let wake = frames.queued.is_empty();
        frames.queued.push_back(bytes);
        drop(frames);
        if wake {
            self.0.wake.notify_one();
        }
        true
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.wake.notify_one();
    }
}

/// The writer's side: takes every queued answer at once and hands them out one by one.
#[derive(Debug)]
pub(crate) struct OutboxReceiver {
    shared: Arc<Shared>,
    taken: VecDeque<Bytes>,
}

impl Receiver for OutboxReceiver {
    async fn recv(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.taken.pop_front() {
                return Some(bytes);
            }
            {
                let mut frames = self.shared.lock();
                if !frames.queued.is_empty() {
                    std::mem::swap(&mut frames.queued, &mut self.taken);
                    continue;
                }
                // The sender queues before it leaves: an empty list without it is the end.
                if frames.sender_gone {
                    return None;
                }
            }
            // A frame queued or the sender gone since the look above left a wake-up behind.
            self.shared.wake.notified().await;
        }
    }

    fn try_recv(&mut self) -> Option<Bytes> {
        if self.taken.is_empty() {
            let mut frames = self.shared.lock();
            std::mem::swap(&mut frames.queued, &mut self.taken);
        }
        self.taken.pop_front()
    }
}

impl Drop for OutboxReceiver {
    /// The writer stopped: later answers are refused instead of piling up.
    fn drop(&mut self) {
        let mut frames = self.shared.lock();
        frames.writer_gone = true;
        frames.queued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_come_out_in_order_and_the_end_follows_the_last_holder() {
        let (tx, mut rx) = outbox();
        // Held the way requests hold it: shared.
        let tx = Arc::new(tx);
        let second = tx.clone();
        assert!(tx.send(Bytes::from_static(b"a")));
        assert!(second.send(Bytes::from_static(b"b")));
        drop(tx);
        assert_eq!(rx.recv().await.as_deref(), Some(&b"a"[..]));
        let waiting = tokio::spawn(async move {
            let mut rest = Vec::new();
            while let Some(bytes) = rx.recv().await {
                rest.push(bytes);
            }
            rest
        });
        tokio::task::yield_now().await;
        assert!(second.send(Bytes::from_static(b"c")));
        drop(second);
        let rest = waiting.await.unwrap();
        assert_eq!(rest, [Bytes::from_static(b"b"), Bytes::from_static(b"c")]);
    }

    #[tokio::test]
    async fn a_gone_writer_refuses_answers() {
        let (tx, rx) = outbox();
        assert!(tx.send(Bytes::from_static(b"a")));
        drop(rx);
        assert!(!tx.send(Bytes::from_static(b"b")));
    }

    #[tokio::test]
    async fn senders_on_other_threads_lose_nothing() {
        let (tx, mut rx) = outbox();
        let tx = Arc::new(tx);
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u16 {
                        let [hi, lo] = i.to_be_bytes();
                        assert!(tx.send(Bytes::from(vec![t, hi, lo])));
                    }
                })
            })
            .collect();
        drop(tx);
        let mut seen = [0u16; 4];
        while let Some(bytes) = rx.recv().await {
            let t = usize::from(bytes[0]);
            // Each sender's answers stay in its order.
            assert_eq!(u16::from_be_bytes([bytes[1], bytes[2]]), seen[t]);
            seen[t] += 1;
        }
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(seen, [1000; 4]);
    }
}
