//! A caller's request body: the DATA (and trailers) of one stream, handed from the connection
//! task to whoever forwards the request, with the flow-control credit the consumer frees.
//!
//! The connection pushes what arrives into a small shared queue; the body pops it. Bytes the
//! consumer has taken (or that a dropped body will never take) are counted as released, and the
//! connection turns them into WINDOW_UPDATEs — so a caller can only have as much in the queue as
//! its stream window allows, however slow the provider.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::frame::Reason;

/// How many consumed bytes wake the connection to send a WINDOW_UPDATE; smaller releases wait
/// until the stream ends (a unary call never needs one).
const RELEASE_WAKE: u32 = 64 * 1024;

/// What the connection and the body share.
#[derive(Debug, Default)]
pub struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    data: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    /// END_STREAM arrived.
    ended: bool,
    /// The stream was reset or the connection lost.
    reset: Option<Reason>,
    /// Bytes taken or thrown away, not yet credited back to the caller.
    released: u32,
    /// The body was dropped: whatever arrives later is released at once.
    dropped: bool,
    /// The task reading the body.
    body_waker: Option<Waker>,
    /// The connection task, woken when enough was released.
    conn_waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; use it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues data from the caller (the connection task calls this).
    pub fn push_data(&self, data: Bytes, conn: &Waker) {
        let mut state = self.lock();
        if state.dropped {
            state.released = state
                .released
                .saturating_add(u32::try_from(data.len()).unwrap_or(u32::MAX));
            return;
        }
        state.data.push_back(data);
        if !state
            .conn_waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(conn))
        {
            state.conn_waker = Some(conn.clone());
        }
        if let Some(waker) = state.body_waker.take() {
            waker.wake();
        }
    }

    /// The caller's last frame: END_STREAM, with trailers when it sent them.
    pub fn end(&self, trailers: Option<HeaderMap>) {
        let mut state = self.lock();
        state.ended = true;
        state.trailers = trailers;
        if let Some(waker) = state.body_waker.take() {
            waker.wake();
        }
    }

    /// The stream ended abnormally: the body reports an error.
    pub fn reset(&self, reason: Reason) {
        let mut state = self.lock();
        if !state.ended {
            state.reset = Some(reason);
        }
        if let Some(waker) = state.body_waker.take() {
            waker.wake();
        }
    }

    /// Takes the bytes released since the last call.
    pub fn take_released(&self) -> u32 {
        std::mem::take(&mut self.lock().released)
    }
}

/// The body of a request that came in over HTTP/2.
#[derive(Debug)]
pub struct RecvBody {
    /// `None` when the HEADERS ended the stream.
    shared: Option<Arc<Shared>>,
}

impl RecvBody {
    /// A body with nothing in it.
    pub fn empty() -> Self {
        Self { shared: None }
    }

    /// A body fed through `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared: Some(shared),
        }
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = super::StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Some(shared) = &self.shared else {
            return Poll::Ready(None);
        };
        let mut state = shared.lock();
        if let Some(data) = state.data.pop_front() {
            let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
            state.released = state.released.saturating_add(len);
            if state.released >= RELEASE_WAKE
                && let Some(waker) = &state.conn_waker
            {
                waker.wake_by_ref();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = state.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if let Some(reason) = state.reset {
            return Poll::Ready(Some(Err(super::StreamError(reason))));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        if !state
            .body_waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            state.body_waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.shared.as_ref().is_none_or(|shared| {
            let state = shared.lock();
            state.ended && state.data.is_empty() && state.trailers.is_none()
        })
    }

    fn size_hint(&self) -> SizeHint {
        if self.shared.is_none() {
            return SizeHint::with_exact(0);
        }
        SizeHint::default()
    }
}

impl Drop for RecvBody {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            let mut state = shared.lock();
            state.dropped = true;
            let queued: usize = state.data.drain(..).map(|data| data.len()).sum();
            state.released = state
                .released
                .saturating_add(u32::try_from(queued).unwrap_or(u32::MAX));
            if queued > 0
                && let Some(waker) = &state.conn_waker
            {
                waker.wake_by_ref();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn data_then_trailers_then_the_end() {
        let shared = Arc::new(Shared::default());
        let mut body = RecvBody::new(shared.clone());
        let waker = futures::task::noop_waker();
        shared.push_data(Bytes::from_static(b"abc"), &waker);
        shared.push_data(Bytes::from_static(b"de"), &waker);
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", "1".parse().unwrap());
        shared.end(Some(trailers));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        assert_eq!(shared.take_released(), 3);
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-t"], "1");
        assert_eq!(collected.to_bytes(), "de");
        assert_eq!(shared.take_released(), 2);
    }

    #[tokio::test]
    async fn a_reset_is_an_error_and_a_dropped_body_releases_everything() {
        let shared = Arc::new(Shared::default());
        let mut body = RecvBody::new(shared.clone());
        let waker = futures::task::noop_waker();
        shared.reset(Reason::CANCEL);
        assert_eq!(
            body.frame().await.unwrap().unwrap_err(),
            crate::http::h2::StreamError(Reason::CANCEL)
        );
        let shared = Arc::new(Shared::default());
        let body = RecvBody::new(shared.clone());
        shared.push_data(Bytes::from_static(b"0123456789"), &waker);
        drop(body);
        shared.push_data(Bytes::from_static(b"after"), &waker);
        assert_eq!(shared.take_released(), 15);
    }

    #[test]
    fn an_empty_body_has_ended() {
        let body = RecvBody::empty();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
