//! The copy of a request body that retries and mirrors replay. The caller's body is never held
//! back: it streams to the first attempt as it arrives, and [`Tape`] records what passes, up to a
//! bound. Once the caller's body has ended within the bound, the recording can be sent again —
//! to another endpoint (a retry) or to a mirror. A body larger than the bound, or one the first
//! attempt stopped reading, is never replayed: that request is not retried or mirrored.
//!
//! Recording while streaming (rather than buffering first) is what keeps bidirectional gRPC
//! streams working: a client that waits for a reply before sending more would otherwise wait
//! for ever.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use tokio::sync::watch;

/// Request bodies up to this size are recorded for retries and mirrors.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// Where a recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapeEnd {
    /// The caller's body is still arriving.
    Recording,
    /// The whole body was recorded: it can be replayed.
    Complete,
    /// The body outgrew the limit: nothing is kept.
    Overflowed,
    /// The body was dropped before its end (the attempt failed or the caller left).
    Abandoned,
}

/// A complete recorded body, cheap to clone (the chunks are reference-counted).
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Data chunks in order.
    pub data: VecDeque<Bytes>,
    /// The request's trailers, if it had any.
    pub trailers: Option<HeaderMap>,
}

#[derive(Debug, Default)]
struct Recorded {
    data: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    size: usize,
}

/// One request body's recording, shared by the body that streams it and the attempts and
/// mirrors that may replay it.
#[derive(Debug)]
pub struct Tape {
    limit: usize,
    recorded: Mutex<Recorded>,
    end: watch::Sender<TapeEnd>,
}

// === impl Tape ===

impl Tape {
    /// An empty recording that keeps up to `limit` bytes; `ended` when the body is known to be
    /// empty already (hyper never polls a body that has ended).
    pub fn new(limit: usize, ended: bool) -> Self {
        let (end, _) = watch::channel(if ended {
            TapeEnd::Complete
        } else {
            TapeEnd::Recording
        });
        Self {
            limit,
            recorded: Mutex::default(),
            end,
        }
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // Plain data, consistent between statements: a poisoned lock is still good.
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the recording stands.
    pub fn end(&self) -> TapeEnd {
        *self.end.borrow()
    }

    /// Records a data chunk of the caller's body.
    pub fn data(&self, chunk: &Bytes) {
        if self.end() != TapeEnd::Recording {
            return;
        }
        let mut recorded = self.recorded();
        recorded.size += chunk.len();
        if recorded.size > self.limit {
            *recorded = Recorded::default();
            drop(recorded);
            self.settle(TapeEnd::Overflowed);
            return;
        }
        recorded.data.push_back(chunk.clone());
    }

    /// Records the caller's trailers.
    pub fn trailers(&self, trailers: &HeaderMap) {
        if self.end() == TapeEnd::Recording {
            self.recorded().trailers = Some(trailers.clone());
        }
    }

    /// The caller's body ended: the recording is complete (unless it already overflowed).
    pub fn complete(&self) {
        self.settle(TapeEnd::Complete);
    }

    /// The body was dropped before its end.
    pub fn abandon(&self) {
        self.settle(TapeEnd::Abandoned);
    }

    /// Moves from `Recording` to `end`; a settled recording stays as it is.
    fn settle(&self, end: TapeEnd) {
        self.end.send_if_modified(|current| {
            if *current != TapeEnd::Recording {
                return false;
            }
            *current = end;
            true
        });
    }

    /// The whole body, if it was recorded completely.
    pub fn replay(&self) -> Option<Recording> {
        if self.end() != TapeEnd::Complete {
            return None;
        }
        let recorded = self.recorded();
        Some(Recording {
            data: recorded.data.clone(),
            trailers: recorded.trailers.clone(),
        })
    }

    /// Waits up to `limit` for the recording to settle, then [`Self::replay`]s it.
    pub async fn settled(&self, limit: Duration) -> Option<Recording> {
        let mut end = self.end.subscribe();
        // `wait_for` answers with a read guard on the state: released here, before `replay`
        // reads the state again. Held, a write queued in between (the body dropped on another
        // thread: `abandon`) blocked both for ever.
        let settled = matches!(
            tokio::time::timeout(limit, end.wait_for(|state| *state != TapeEnd::Recording)).await,
            Ok(Ok(_))
        );
        if !settled {
            return None;
        }
        self.replay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settled_recording_replays_while_its_body_is_dropped_elsewhere() {
        // A mirror replays the recording (`settled`) while the primary's body is dropped on
        // another thread (`abandon`, a write that changes nothing): the replay must not wait
        // for the write while holding the read the write waits for.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            let tape = std::sync::Arc::new(Tape::new(16, false));
            tape.data(&Bytes::from_static(b"abc"));
            tape.complete();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let dropping = std::thread::spawn({
                let (tape, stop) = (tape.clone(), stop.clone());
                move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        tape.abandon();
                    }
                }
            });
            for _ in 0..200_000 {
                let replay = runtime.block_on(tape.settled(Duration::from_secs(1)));
                assert!(replay.is_some());
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            dropping.join().expect("dropping thread");
            let _ = done.send(());
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(60)).is_ok(),
            "settled and abandon deadlocked"
        );
    }

    #[test]
    fn a_body_within_the_limit_replays_in_order_with_its_trailers() {
        let tape = Tape::new(10, false);
        tape.data(&Bytes::from_static(b"abc"));
        tape.data(&Bytes::from_static(b"defg"));
        assert!(tape.replay().is_none(), "not complete yet");
        let mut trailers = HeaderMap::new();
        trailers.insert("x-end", http::HeaderValue::from_static("1"));
        tape.trailers(&trailers);
        tape.complete();
        let replay = tape.replay().unwrap();
        assert_eq!(replay.data, [&b"abc"[..], &b"defg"[..]]);
        assert_eq!(replay.trailers.unwrap()["x-end"], "1");
    }

    #[test]
    fn a_body_over_the_limit_is_never_replayed() {
        let tape = Tape::new(4, false);
        tape.data(&Bytes::from_static(b"abc"));
        tape.data(&Bytes::from_static(b"de"));
        tape.complete();
        assert_eq!(tape.end(), TapeEnd::Overflowed);
        assert!(tape.replay().is_none());
    }

    #[test]
    fn an_abandoned_body_is_never_replayed_and_an_empty_one_always_is() {
        let tape = Tape::new(4, false);
        tape.data(&Bytes::from_static(b"ab"));
        tape.abandon();
        tape.complete();
        assert_eq!(tape.end(), TapeEnd::Abandoned);
        assert!(tape.replay().is_none());
        let empty = Tape::new(4, true);
        assert!(empty.replay().unwrap().data.is_empty());
    }

    #[tokio::test]
    async fn waiting_ends_when_the_body_does() {
        let tape = std::sync::Arc::new(Tape::new(8, false));
        let writer = tape.clone();
        tokio::spawn(async move {
            writer.data(&Bytes::from_static(b"x"));
            writer.complete();
        });
        let replay = tape.settled(Duration::from_secs(5)).await.unwrap();
        assert_eq!(replay.data.len(), 1);
        let stuck = Tape::new(8, false);
        assert!(stuck.settled(Duration::from_millis(10)).await.is_none());
    }
}
