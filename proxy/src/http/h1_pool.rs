//! The HTTP/1.1 keep-alive connections of one endpoint: idle connections, the requests waiting
//! for one, and how many new connections may be opening at once.
//!
//! A burst of requests (a thousand callers whose timers fire together) used to open one
//! connection per request, each with hyper's buffers (~20 KiB), and close all but the idle limit
//! once the burst had passed — to a provider that answers each request in microseconds. Here a
//! request that finds no idle connection opens one only while fewer than the
//! [`connect_allowance`] are opening; otherwise it waits for whichever comes first: a connection
//! another request gives back (handed over directly), or its turn to open one. The allowance
//! grows with the connections already open, so a provider that holds requests long still gets
//! as many connections as requests, only ramped up (by a quarter per connect round trip)
//! rather than all at once. A connect that fails while no connection is open fails every waiting
//! request too, as their own connects would have (the endpoint is ejected and they try
//! another).
//!
//! While connections come back to waiting requests, though, the pool is not short of
//! connections: the busy ones turn over faster than a new one opens, and the queue drains
//! through them (a thousand-caller burst to a fast provider is paced by the proxy's and the
//! provider's CPU, not by the connection count). Ramping up there only opened connections that
//! were closed again after the burst: ~270 a burst in the benchmark's memory phase, ~20 KB each
//! while they lived. So when a connection was handed to a waiting request during the last
//! connect, connects go one at a time; a connect during which none came back (connections held
//! longer than a connect takes: a slow provider) restores the ramp. One connect always stays
//! under way while requests wait, so none depends on connections coming back alone.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hyper::client::conn::http1;
use tokio::sync::oneshot;

use super::body::RequestBody;

/// An HTTP/1.1 connection's request handle.
pub type Conn = http1::SendRequest<RequestBody>;

/// Idle connections kept; more are closed when their request ends.
pub const MAX_IDLE: usize = 64;

/// Connects that may always be in progress, however few connections are open.
pub const MIN_CONNECTING: usize = 8;

/// How many connects may be in progress with `open` connections open: at least
/// [`MIN_CONNECTING`], else a quarter of the open ones (the pool can grow by a quarter each
/// connect round trip while every connection is busy; half let a 1,000-caller burst to a
/// provider sharing its CPU open twice the connections for no throughput).
pub fn connect_allowance(open: usize) -> usize {
    (open / 4).max(MIN_CONNECTING)
}

/// What a request gets from [`Endpoint::acquire`].
#[derive(Debug)]
pub enum Acquired {
    /// A connection ready for one request.
    Ready(Conn),
    /// Permission to open a new connection.
    Connect(ConnectSlot),
}

/// What a waiting request is handed.
#[derive(Debug)]
enum Grant {
    Connection(Conn),
    Connect(ConnectSlot),
    Failed(io::ErrorKind, String),
}

/// What [`Endpoint::acquire`] does next.
enum Next {
    Idle(Conn),
    Connect(ConnectSlot),
    Wait(oneshot::Receiver<Grant>),
}

#[derive(Debug, Default)]
struct State {
    idle: Vec<Conn>,
    waiters: VecDeque<oneshot::Sender<Grant>>,
    connecting: usize,
    open: usize,
    /// Connections handed to waiting requests so far (wrapping; only differences count).
    handed_over: u64,
    /// A connection was handed to a waiting request during the last connect that ended.
    returning: bool,
}

impl State {
    /// How many connects may be in progress now (see the module docs).
    fn allowance(&self) -> usize {
        if self.returning {
            1
        } else {
            connect_allowance(self.open)
        }
    }

    /// A connect slot, counted, that knows how many connections had come back when it began.
    fn grant(&mut self, endpoint: &Arc<Endpoint>) -> ConnectSlot {
        self.connecting += 1;
        ConnectSlot {
            endpoint: endpoint.clone(),
            armed: true,
            handed_over_at: self.handed_over,
        }
    }
}

/// The HTTP/1.1 connections of one endpoint.
#[derive(Debug, Default)]
pub struct Endpoint {
    state: Mutex<State>,
}

// === impl Endpoint ===

impl Endpoint {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, else permission to open one, else the first of the two to come free.
    /// An error is a connect to this endpoint that failed while the request waited.
    pub async fn acquire(self: &Arc<Self>) -> io::Result<Acquired> {
        loop {
            // Decided under the lock, acted on after it (a guard may not live across an await).
            let next = {
                let mut state = self.lock();
                if let Some(conn) = state.idle.pop() {
                    Next::Idle(conn)
                } else if state.connecting < state.allowance() {
                    Next::Connect(state.grant(self))
                } else {
                    let (sender, receiver) = oneshot::channel();
                    state.waiters.push_back(sender);
                    Next::Wait(receiver)
                }
            };
            let waiting = match next {
                Next::Idle(conn) => {
                    if let Some(conn) = usable(conn).await {
                        return Ok(Acquired::Ready(conn));
                    }
                    continue;
                }
                Next::Connect(slot) => return Ok(Acquired::Connect(slot)),
                Next::Wait(receiver) => receiver,
            };
            match waiting.await {
                Ok(Grant::Connection(conn)) => {
                    if let Some(conn) = usable(conn).await {
                        return Ok(Acquired::Ready(conn));
                    }
                }
                Ok(Grant::Connect(slot)) => return Ok(Acquired::Connect(slot)),
                Ok(Grant::Failed(kind, message)) => return Err(io::Error::new(kind, message)),
                // Dropped unanswered: only when the pool itself goes away; look again.
                Err(_) => {}
            }
        }
    }

    /// An idle connection that can take a request now, if there is one (connections found
    /// closed are dropped; one not ready yet is left for [`Self::acquire`]).
    pub fn ready_now(&self) -> Option<Conn> {
        let mut state = self.lock();
        while let Some(conn) = state.idle.pop() {
            if conn.is_ready() {
                return Some(conn);
            }
            if !conn.is_closed() {
                state.idle.push(conn);
                return None;
            }
        }
        None
    }

    /// Gives a connection whose exchange is complete to the first waiting request, else to the
    /// idle list (closed when that is full).
    pub fn release(&self, conn: Conn) {
        if conn.is_closed() {
            return;
        }
        let mut conn = conn;
        let mut state = self.lock();
        while let Some(waiter) = state.waiters.pop_front() {
            match waiter.send(Grant::Connection(conn)) {
                Ok(()) => {
                    state.handed_over = state.handed_over.wrapping_add(1);
                    return;
                }
                // That request gave up (its deadline passed): the next one.
                Err(Grant::Connection(back)) => conn = back,
                Err(_) => return,
            }
        }
        if state.idle.len() < MAX_IDLE {
            state.idle.push(conn);
        }
    }

    /// A connect that began when `handed_over_at` connections had been handed over ended: its
    /// slot goes to the first waiting request still there, unless connections came back
    /// meanwhile and other connects are still under way (see the module docs).
    fn pass_slot(self: &Arc<Self>, handed_over_at: u64) {
        let mut state = self.lock();
        state.connecting = state.connecting.saturating_sub(1);
        state.returning = state.handed_over != handed_over_at;
        if state.connecting >= state.allowance() {
            return;
        }
        while let Some(waiter) = state.waiters.pop_front() {
            if waiter.is_closed() {
                continue;
            }
            let slot = state.grant(self);
            match waiter.send(Grant::Connect(slot)) {
                Ok(()) => return,
                Err(grant) => {
                    state.connecting -= 1;
                    // Not passed on again from inside the lock.
                    if let Grant::Connect(mut slot) = grant {
                        slot.armed = false;
                    }
                }
            }
        }
    }

    #[cfg(test)]
    fn returning(&self) -> bool {
        self.lock().returning
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize, usize, usize) {
        let state = self.lock();
        (
            state.idle.len(),
            state.waiters.len(),
            state.connecting,
            state.open,
        )
    }
}

/// A connection found idle or handed over, if it can still take a request.
async fn usable(mut conn: Conn) -> Option<Conn> {
    // A connection the provider closed while idle fails `ready` and is dropped.
    (!conn.is_closed() && conn.ready().await.is_ok()).then_some(conn)
}

/// The right to open one connection to the endpoint; passed to a waiting request when dropped.
#[derive(Debug)]
pub struct ConnectSlot {
    endpoint: Arc<Endpoint>,
    armed: bool,
    /// The endpoint's `handed_over` count when the connect began.
    handed_over_at: u64,
}

impl ConnectSlot {
    /// The connection is open: it counts as open until the returned guard is dropped (with the
    /// connection's task), and the slot passes on.
    pub fn opened(self) -> OpenConnection {
        self.endpoint.lock().open += 1;
        OpenConnection {
            endpoint: self.endpoint.clone(),
        }
    }

    /// The connect failed. With no connection open the endpoint looks down: every waiting
    /// request fails with the same error (at once, rather than after connecting in turn). With
    /// connections open it is more likely busy (a full accept queue): the slot passes on and the
    /// waiting requests keep their chance of a connection given back.
    pub fn failed(mut self, error: &io::Error) {
        let mut state = self.endpoint.lock();
        if state.open > 0 {
            // Unlocked before `self` drops and passes the slot on.
            drop(state);
            return;
        }
        self.armed = false;
        state.connecting = state.connecting.saturating_sub(1);
        let message = error.to_string();
        for waiter in state.waiters.drain(..) {
            let _ = waiter.send(Grant::Failed(error.kind(), message.clone()));
        }
    }
}

impl Drop for ConnectSlot {
    fn drop(&mut self) {
        if self.armed {
            self.endpoint.pass_slot(self.handed_over_at);
        }
    }
}

/// Counts a connection as open while it lives.
#[derive(Debug)]
pub struct OpenConnection {
    endpoint: Arc<Endpoint>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let mut state = self.endpoint.lock();
        state.open = state.open.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connect slot a fresh endpoint grants at once.
    async fn all_connect_slots(endpoint: &Arc<Endpoint>) -> Vec<ConnectSlot> {
        let mut slots = Vec::new();
        for _ in 0..MIN_CONNECTING {
            match endpoint.acquire().await {
                Ok(Acquired::Connect(slot)) => slots.push(slot),
                other => panic!("expected a connect slot, got {other:?}"),
            }
        }
        slots
    }

    /// An HTTP/1.1 connection over an in-memory pipe whose other end stays open.
    async fn connection() -> (Conn, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let (conn, task) = http1::handshake(hyper_util::rt::TokioIo::new(ours))
            .await
            .expect("handshake");
        tokio::spawn(task);
        (conn, theirs)
    }

    /// A request waiting in `acquire`, and what it got once it is done.
    fn waiting(endpoint: &Arc<Endpoint>) -> tokio::task::JoinHandle<io::Result<Acquired>> {
        let endpoint = endpoint.clone();
        tokio::spawn(async move { endpoint.acquire().await })
    }

    #[tokio::test]
    async fn connects_go_one_at_a_time_while_connections_come_back_to_waiting_requests() {
        let endpoint = Arc::new(Endpoint::default());
        let mut slots = all_connect_slots(&endpoint).await;
        let (first, second, third) = (waiting(&endpoint), waiting(&endpoint), waiting(&endpoint));
        tokio::task::yield_now().await;
        assert_eq!(endpoint.counts(), (0, 3, MIN_CONNECTING, 0));
        // A connect ends with nothing handed back meanwhile: its slot passes on, as before.
        let (conn, _pipe) = connection().await;
        let _open = slots.pop().map(ConnectSlot::opened);
        let first = first.await.expect("first waiter");
        assert!(matches!(first, Ok(Acquired::Connect(_))));
        assert!(!endpoint.returning());
        // A connection comes back to a waiting request while the other connects are under way…
        endpoint.release(conn);
        let second = second.await.expect("second waiter");
        assert!(matches!(second, Ok(Acquired::Ready(_))));
        // …so the next connect to end keeps its slot: the third request waits for a connection
        // given back or the last connect under way, and new requests queue behind it.
        drop(slots.pop());
        let fourth = waiting(&endpoint);
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        assert_eq!(endpoint.counts(), (0, 2, MIN_CONNECTING - 1, 1));
        assert!(endpoint.returning());
        // The last connect under way passes its slot on: no request depends on connections
        // coming back alone.
        drop(slots);
        drop(first);
        let third = third.await.expect("third waiter");
        let Ok(Acquired::Connect(slot)) = third else {
            panic!("expected a connect slot, got {third:?}");
        };
        assert_eq!(endpoint.counts(), (0, 1, 1, 1));
        // A connect during which nothing came back restores the ramp-up allowance.
        drop(slot.opened());
        assert!(!endpoint.returning());
        let fourth = fourth.await.expect("fourth waiter");
        assert!(matches!(fourth, Ok(Acquired::Connect(_))));
        drop(fourth);
        assert_eq!(all_connect_slots(&endpoint).await.len(), MIN_CONNECTING);
    }

    #[test]
    fn the_allowance_starts_at_the_minimum_and_grows_with_open_connections() {
        assert_eq!(connect_allowance(0), MIN_CONNECTING);
        assert_eq!(connect_allowance(MIN_CONNECTING * 4), MIN_CONNECTING);
        assert_eq!(connect_allowance(100), 25);
    }

    #[tokio::test]
    async fn requests_past_the_allowance_wait_and_get_the_slots_in_turn() {
        let endpoint = Arc::new(Endpoint::default());
        let mut slots = all_connect_slots(&endpoint).await;
        let waiter = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.acquire().await }
        });
        tokio::task::yield_now().await;
        assert_eq!(endpoint.counts(), (0, 1, MIN_CONNECTING, 0));
        // A connect that ends hands its slot to the waiting request.
        let opened = slots.pop().map(ConnectSlot::opened);
        let got = waiter.await.expect("waiter");
        assert!(matches!(got, Ok(Acquired::Connect(_))));
        assert_eq!(endpoint.counts(), (0, 0, MIN_CONNECTING, 1));
        drop(got);
        drop(opened);
        assert_eq!(endpoint.counts(), (0, 0, MIN_CONNECTING - 1, 0));
    }

    #[tokio::test]
    async fn a_failed_connect_fails_the_waiting_requests_and_gone_waiters_are_skipped() {
        let endpoint = Arc::new(Endpoint::default());
        let mut slots = all_connect_slots(&endpoint).await;
        // One waiter gives up (its deadline), the next one stays.
        let gone = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.acquire().await }
        });
        let waiting = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.acquire().await }
        });
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        let error = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        if let Some(slot) = slots.pop() {
            slot.failed(&error);
        }
        let got = waiting.await.expect("waiter");
        assert!(got.is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused));
        drop(slots);
        assert_eq!(endpoint.counts(), (0, 0, 0, 0));
    }

    #[tokio::test]
    async fn a_failed_connect_beside_open_connections_passes_its_slot_on() {
        let endpoint = Arc::new(Endpoint::default());
        let mut slots = all_connect_slots(&endpoint).await;
        let open = slots.pop().map(ConnectSlot::opened);
        if let Ok(Acquired::Connect(slot)) = endpoint.acquire().await {
            slots.push(slot);
        }
        let waiting = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.acquire().await }
        });
        tokio::task::yield_now().await;
        let error = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        if let Some(slot) = slots.pop() {
            slot.failed(&error);
        }
        let got = waiting.await.expect("waiter");
        assert!(matches!(got, Ok(Acquired::Connect(_))));
        drop((got, slots, open));
        assert_eq!(endpoint.counts(), (0, 0, 0, 0));
    }
}
