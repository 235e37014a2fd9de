//! Upstream Dubbo connections: one multiplexed connection per provider endpoint, shared by every
//! caller. Each forwarded request gets a fresh upstream id (header bytes rewritten, body
//! untouched); the connection keeps `upstream id → pending request` and puts the caller's id back
//! on the response.
//!
//! A mirrored copy ([`MirrorCopy`]) takes a place in the same map; its answer is read and
//! discarded, and it expires like a request.
//!
//! The connection also answers the provider's heartbeats, drains the endpoint on READONLY (and
//! undoes it on WRITEABLE), times out requests that get no answer, and, when it closes, answers
//! every request still in flight so no caller waits for nothing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_protocols::dubbo::{DubboCodec, EventKind, Frame, heartbeat_reply};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::reader::FrameReader;
use super::request::{Outcome, Pending};
use super::writer::{Receiver, write_loop};
use crate::fasthash::FastMap;
use crate::lb::EndpointState;
use crate::metrics::{Direction, Metrics, Protocol, ProtocolErrorKind, ResponseFlags};
use crate::resilience::breaker::{BreakerSlot, ClusterCounts};
use crate::resilience::mirror::MirrorSlot;
use crate::routing::Thresholds;

/// How often a connection looks for requests past their deadline.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// Room per read of a provider connection: every caller's responses from that provider arrive
/// on it, so bursts are large.
const UPSTREAM_READ_SIZE: usize = 64 * 1024;
/// Earlier read buffers a provider connection keeps for reuse (see `reader`): its frames are
/// queued to many callers' writers, so several buffers may still be in use at once.
const UPSTREAM_RETIRED_BUFFERS: usize = 8;
/// Frames queued for one upstream connection before senders wait.
const UPSTREAM_QUEUE: usize = 4096;

/// Why a request could not be handed to a provider; the request comes back for another try.
#[derive(Debug)]
pub enum SendError {
    /// The connection closed before the request was written.
    Closed(Box<(Frame, Option<Box<Pending>>)>),
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Connecting failed (refused, unreachable, timed out).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A new connection would exceed the cluster's `max_connections`.
    #[error("the cluster is at its connection limit")]
    Overflow,
}

/// The connection to one endpoint, if open; the async lock serialises connects.
type Slot = tokio::sync::Mutex<Option<Arc<UpstreamConn>>>;

/// All upstream connections, by endpoint address.
#[derive(Debug)]
pub struct UpstreamPool {
    slots: Mutex<FastMap<SocketAddr, Arc<Slot>>>,
    metrics: Arc<Metrics>,
    max_body_len: usize,
}

// === impl UpstreamPool ===

impl UpstreamPool {
    /// An empty pool.
    pub fn new(metrics: Arc<Metrics>, max_body_len: usize) -> Self {
        Self {
            slots: Mutex::default(),
            metrics,
            max_body_len,
        }
    }

    /// The open connection to `address` if there is one and nobody is connecting it right
    /// now: the common case, answered without waiting.
    pub fn existing(&self, address: SocketAddr) -> Option<Arc<UpstreamConn>> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&address)?
            .clone();
        let guard = slot.try_lock().ok()?;
        guard.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    /// The open connection to `address`, opening one if needed (within `connect_timeout`); a
    /// new connection counts against `cluster`'s `max_connections` (at the opening request's
    /// priority) until it closes.
    pub async fn connection(
        &self,
        address: SocketAddr,
        state: &Arc<EndpointState>,
        connect_timeout: Duration,
        cluster: (&Arc<ClusterCounts>, &Thresholds),
    ) -> Result<Arc<UpstreamConn>, ConnectError> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(address)
            .or_default()
            .clone();
        // One connect at a time per endpoint: concurrent requests wait for it and share it.
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        let (counts, thresholds) = cluster;
        let slot = counts
            .try_connection(thresholds)
            .ok_or(ConnectError::Overflow)?;
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        let _ = stream.set_nodelay(true);
        state.connected();
        let conn = UpstreamConn::start(
            stream,
            address,
            state.clone(),
            self.metrics.clone(),
            self.max_body_len,
            slot,
        );
        *guard = Some(conn.clone());
        Ok(conn)
    }
}

/// Provider connections a caller connection has used, at most this many.
const MAX_KNOWN: usize = 16;

/// The provider connections one caller connection has used, so its requests find theirs
/// without the pool's locks (a map lock, the slot's lock, reference counts: a few percent of the
/// proxy's CPU at saturation); a closed one is looked up in the pool again.
#[derive(Debug, Default)]
pub struct KnownConnections(Vec<(SocketAddr, Arc<UpstreamConn>)>);

impl KnownConnections {
    /// The open connection to `address`: the one known, else the pool's (see
    /// [`UpstreamPool::existing`]).
    pub fn open(&mut self, pool: &UpstreamPool, address: SocketAddr) -> Option<&UpstreamConn> {
        // A handful of entries: a scan is cheaper than hashing.
        if let Some(at) = self.0.iter().position(|(known, _)| *known == address) {
            if !self.0[at].1.is_closed() {
                return self.0.get(at).map(|(_, conn)| &**conn);
            }
            self.0.swap_remove(at);
        }
        let conn = pool.existing(address)?;
        if self.0.len() >= MAX_KNOWN {
            self.0.remove(0);
        }
        self.0.push((address, conn));
        self.0.last().map(|(_, conn)| &**conn)
    }
}

/// A mirrored copy waiting for the answer nobody will read: holds its mirror slot until then.
#[derive(Debug)]
pub struct MirrorCopy {
    /// When to stop waiting.
    pub deadline: Instant,
    /// The copy's place under the mirror cluster's bound.
    pub slot: MirrorSlot,
}

/// Who an answer is for.
#[derive(Debug)]
enum Waiter {
    /// A caller's request, boxed: the pending map's entries stay small (a few hundred requests
    /// in flight fit in cache), and inserting or removing one moves a pointer, not the request.
    Caller(Box<Pending>),
    /// A mirrored copy: the answer is discarded.
    Mirror(MirrorCopy),
    /// A request answered with a timeout (and perhaps retried elsewhere) until this instant: an
    /// answer arriving late is discarded, not counted as a stray.
    Abandoned(Instant),
}

impl Waiter {
    fn deadline(&self) -> Instant {
        match self {
            Self::Caller(pending) => pending.deadline(),
            Self::Mirror(copy) => copy.deadline,
            Self::Abandoned(until) => *until,
        }
    }
}

/// How long a timed-out request's id is remembered, so its late answer is recognised.
const ABANDONED_GRACE: Duration = Duration::from_secs(10);

/// What the connection's tasks share behind one lock: the requests waiting for answers and the
/// frames waiting to be written, so a request takes one lock to be registered and queued (a
/// channel to the writer cost several atomic operations per frame on each side, and a lock of
/// its own on the writer's side).
#[derive(Debug, Default)]
struct PendingMap {
    /// The provider side closed: no answer will come any more.
    closed: bool,
    /// The writer stopped (the socket failed): nothing goes out any more.
    writer_gone: bool,
    /// The connection's handle is gone: the writer writes what is queued and shuts down.
    released: bool,
    requests: FastMap<i64, Waiter>,
    /// Frames to write, oldest first; taken by the writer all at once.
    outgoing: VecDeque<Bytes>,
}

#[derive(Debug, Default)]
struct Shared {
    map: Mutex<PendingMap>,
    /// `closed || writer_gone`, readable without the lock (set under it).
    unusable: AtomicBool,
    /// Wakes the writer: frames arrived in an empty queue, or the handle is gone.
    queued: Notify,
    /// Wakes senders waiting for room in a full queue.
    room: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingMap> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A frame the connection did not take, given back with its waiter.
struct Refused {
    frame: Frame,
    waiter: Option<Waiter>,
    /// The queue was full (else the connection is closed).
    full: bool,
}

impl Refused {
    fn into_send_error(self) -> SendError {
        let pending = match self.waiter {
            Some(Waiter::Caller(pending)) => Some(pending),
            _ => None,
        };
        SendError::Closed(Box::new((self.frame, pending)))
    }
}

/// One multiplexed connection to a provider.
#[derive(Debug)]
pub struct UpstreamConn {
    address: SocketAddr,
    shared: Arc<Shared>,
    next_id: AtomicI64,
}

// === impl UpstreamConn ===

impl UpstreamConn {
    fn start(
        stream: TcpStream,
        address: SocketAddr,
        state: Arc<EndpointState>,
        metrics: Arc<Metrics>,
        max_body_len: usize,
        slot: BreakerSlot,
    ) -> Arc<Self> {
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared::default());
        let conn = Arc::new(Self {
            address,
            shared: shared.clone(),
            next_id: AtomicI64::new(1),
        });
        tokio::spawn(write_loop(
            write,
            Outgoing {
                shared,
                taken: VecDeque::new(),
            },
        ));
        let reader = conn.clone();
        tokio::spawn(async move {
            let _guard = metrics.connection(Protocol::Dubbo, Direction::Upstream);
            // Counted against the cluster that opened it until the connection closes.
            let _slot = slot;
            reader.read_loop(read, &state, &metrics, max_body_len).await;
        });
        conn
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingMap> {
        self.shared.lock()
    }

    /// Whether the connection has closed (a new one is needed).
    pub fn is_closed(&self) -> bool {
        self.shared.unusable.load(Ordering::Acquire)
    }

    /// Forwards a request, waiting for room in the queue; `pending` is `None` for one-way
    /// calls (no answer will come).
    pub async fn send(&self, frame: Frame, pending: Option<Box<Pending>>) -> Result<(), SendError> {
        self.enqueue_waiting(frame, pending.map(Waiter::Caller), true)
            .await
            .map_err(Refused::into_send_error)
    }

    /// [`Self::send`] without waiting: a full queue (the provider is not reading) also gives
    /// the request back, for a caller that can wait elsewhere.
    pub fn try_send(&self, frame: Frame, pending: Option<Box<Pending>>) -> Result<(), SendError> {
        self.enqueue(frame, pending.map(Waiter::Caller), true)
            .map_err(Refused::into_send_error)
    }

    /// Forwards a mirrored copy without waiting (`copy` is `None` for a one-way request); a
    /// closed connection or a full queue drops it, as a copy must never hold anything up.
    pub fn try_send_mirror(&self, frame: Frame, copy: Option<MirrorCopy>) -> bool {
        self.enqueue(frame, copy.map(Waiter::Mirror), true).is_ok()
    }

    /// [`Self::enqueue`], waiting while the queue is full.
    async fn enqueue_waiting(
        &self,
        mut frame: Frame,
        mut waiter: Option<Waiter>,
        fresh_id: bool,
    ) -> Result<(), Refused> {
        loop {
            // Registered before looking, so room made in between is not missed.
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.enqueue(frame, waiter, fresh_id) {
                Err(refused) if refused.full => {
                    (frame, waiter) = (refused.frame, refused.waiter);
                    room.await;
                }
                done => return done,
            }
        }
    }

    /// Queues a frame for the writer: with `fresh_id`, under a new upstream id (the received
    /// bytes themselves go out, only the id rewritten in place) and, if an answer will come,
    /// with a place in the pending map. A closed connection or a full queue gives it back.
    fn enqueue(
        &self,
        mut frame: Frame,
        waiter: Option<Waiter>,
        fresh_id: bool,
    ) -> Result<(), Refused> {
        let mut map = self.lock();
        let refused = |frame, waiter, full| {
            Err(Refused {
                frame,
                waiter,
                full,
            })
        };
        if map.closed || map.writer_gone {
            return refused(frame, waiter, false);
        }
        if map.outgoing.len() >= UPSTREAM_QUEUE {
            return refused(frame, waiter, true);
        }
        if fresh_id {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            frame.set_request_id(id);
            if let Some(waiter) = waiter {
                map.requests.insert(id, waiter);
            }
        }
        let wake = map.outgoing.is_empty();
        map.outgoing.push_back(frame.into_bytes());
        drop(map);
        // One wake-up per batch: the writer takes everything queued when it runs.
        if wake {
            self.shared.queued.notify_one();
        }
        Ok(())
    }

    async fn read_loop(
        &self,
        read: tokio::net::tcp::OwnedReadHalf,
        state: &Arc<EndpointState>,
        metrics: &Metrics,
        max_body_len: usize,
    ) {
        // Every caller's responses arrive on this one connection: read them in large bites.
        let mut frames = FrameReader::new(
            read,
            DubboCodec::with_max_body_len(max_body_len),
            UPSTREAM_READ_SIZE,
            UPSTREAM_RETIRED_BUFFERS,
        );
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'connection: loop {
            tokio::select! {
                read = frames.read() => match read {
                    Ok(true) => {
                        // One clock reading for every answer of the read.
                        let now = Instant::now();
                        loop {
                            match frames.next_frame() {
                                Ok(Some(frame)) => self.on_frame(frame, state, metrics, now).await,
                                Ok(None) => break,
                                Err(error) => {
                                    tracing::debug!(address = %self.address, %error, "upstream connection failed");
                                    metrics.protocol_error(Protocol::Dubbo, Direction::Upstream, ProtocolErrorKind::BadFrame);
                                    break 'connection;
                                }
                            }
                        }
                    }
                    Ok(false) => break,
                    Err(error) => {
                        tracing::debug!(address = %self.address, %error, "upstream connection failed");
                        break;
                    }
                },
                _ = sweep.tick() => self.expire(Instant::now()),
            }
        }
        // Closed: nothing more will be answered here. Answer what is in flight, and let a
        // restarted provider at the same address be tried again.
        let orphans: Vec<Box<Pending>> = {
            let mut map = self.lock();
            map.closed = true;
            self.shared.unusable.store(true, Ordering::Release);
            // Mirrored copies just end (their slots are freed); callers get an answer.
            map.requests
                .drain()
                .filter_map(|(_, waiter)| match waiter {
                    Waiter::Caller(pending) => Some(pending),
                    Waiter::Mirror(_) | Waiter::Abandoned(_) => None,
                })
                .collect()
        };
        state.set_draining(false);
        for pending in orphans {
            pending.complete(Outcome::Local {
                status: causeway_protocols::dubbo::Status::SERVICE_ERROR,
                flags: ResponseFlags::UpstreamConnectionTermination,
                message: format!(
                    "causeway-proxy: the provider connection closed before the response ({})",
                    self.address
                ),
            });
        }
    }

    async fn on_frame(&self, frame: Frame, state: &EndpointState, metrics: &Metrics, now: Instant) {
        let header = *frame.header();
        if header.is_event() {
            match frame.event_kind() {
                Some(EventKind::Heartbeat) if header.is_two_way() => {
                    if let Ok(reply) = heartbeat_reply(&header) {
                        // The provider's own id stays on the reply.
                        let _ = self.enqueue_waiting(reply, None, false).await;
                    }
                }
                Some(EventKind::ReadOnly) => {
                    tracing::info!(address = %self.address, "provider sent READONLY; draining it");
                    metrics.readonly_event();
                    state.set_draining(true);
                }
                Some(EventKind::Writeable) => state.set_draining(false),
                _ => {}
            }
            return;
        }
        if header.is_request() {
            // Providers do not call consumers over the dubbo protocol.
            metrics.protocol_error(
                Protocol::Dubbo,
                Direction::Upstream,
                ProtocolErrorKind::UnknownResponse,
            );
            return;
        }
        let waiter = self.lock().requests.remove(&header.request_id);
        match waiter {
            Some(Waiter::Caller(pending)) => pending.complete_at(Outcome::Response(frame), now),
            // A mirrored copy's answer, or a late one to a request already answered with a
            // timeout: read, and discarded (a copy's slot is freed here).
            Some(Waiter::Mirror(_) | Waiter::Abandoned(_)) => {}
            None => metrics.protocol_error(
                Protocol::Dubbo,
                Direction::Upstream,
                ProtocolErrorKind::UnknownResponse,
            ),
        }
    }

    fn expire(&self, now: Instant) {
        let expired: Vec<Box<Pending>> = {
            let mut map = self.lock();
            let ids: Vec<i64> = map
                .requests
                .iter()
                .filter(|(_, p)| p.deadline() <= now)
                .map(|(id, _)| *id)
                .collect();
            let mut expired = Vec::new();
            for id in ids {
                // An expired copy or abandoned id ends silently; a caller's request is answered
                // and its id remembered for a while.
                if let Some(Waiter::Caller(pending)) = map.requests.remove(&id) {
                    map.requests
                        .insert(id, Waiter::Abandoned(now + ABANDONED_GRACE));
                    expired.push(pending);
                }
            }
            expired
        };
        for pending in expired {
            pending.complete(Outcome::Local {
                status: causeway_protocols::dubbo::Status::SERVER_TIMEOUT,
                flags: ResponseFlags::UpstreamTimeout,
                message: format!(
                    "causeway-proxy: no response from the provider ({}) in time",
                    self.address
                ),
            });
        }
    }
}

impl Drop for UpstreamConn {
    /// The last handle is gone: the writer finishes what is queued and closes its side.
    fn drop(&mut self) {
        self.lock().released = true;
        self.shared.queued.notify_one();
    }
}

/// The writer's side of the queue: takes every queued frame at once and hands them out one by
/// one, so a burst costs the lock once.
#[derive(Debug)]
struct Outgoing {
    shared: Arc<Shared>,
    taken: VecDeque<Bytes>,
}

impl Receiver for Outgoing {
    async fn recv(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.try_recv() {
                return Some(bytes);
            }
            if self.shared.lock().released {
                return None;
            }
            // A frame queued since the look above left a wake-up behind, so none is missed.
            self.shared.queued.notified().await;
        }
    }

    fn try_recv(&mut self) -> Option<Bytes> {
        if let Some(bytes) = self.taken.pop_front() {
            return Some(bytes);
        }
        let mut map = self.shared.lock();
        if map.outgoing.is_empty() {
            return None;
        }
        std::mem::swap(&mut map.outgoing, &mut self.taken);
        drop(map);
        // Senders wait only on a full queue, and it is empty now.
        if self.taken.len() >= UPSTREAM_QUEUE {
            self.shared.room.notify_waiters();
        }
        self.taken.pop_front()
    }
}

impl Drop for Outgoing {
    /// The writer stopped: nothing queued from now on would be written.
    fn drop(&mut self) {
        self.shared.lock().writer_gone = true;
        self.shared.unusable.store(true, Ordering::Release);
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use causeway_protocols::dubbo::{Header, Serialization, heartbeat_request};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// A pool connected to a listener the test plays the provider on.
    async fn connected() -> (Arc<UpstreamConn>, TcpStream) {
        let (_, _, conn, provider) = pool_connected().await;
        (conn, provider)
    }

    async fn pool_connected() -> (UpstreamPool, TcpListener, Arc<UpstreamConn>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = UpstreamPool::new(Arc::new(Metrics::new()), 1 << 20);
        let (conn, provider) = connect(&pool, &listener).await;
        (pool, listener, conn, provider)
    }

    async fn connect(
        pool: &UpstreamPool,
        listener: &TcpListener,
    ) -> (Arc<UpstreamConn>, TcpStream) {
        let address = listener.local_addr().unwrap();
        let counts = Arc::new(ClusterCounts::default());
        let state = Arc::new(EndpointState::default());
        let thresholds = Thresholds::default();
        let (conn, provider) = tokio::join!(
            pool.connection(
                address,
                &state,
                Duration::from_secs(5),
                (&counts, &thresholds)
            ),
            listener.accept()
        );
        (conn.unwrap(), provider.unwrap().0)
    }

    async fn until_closed(conn: &UpstreamConn) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !conn.is_closed() {
            assert!(Instant::now() < deadline, "the close was not noticed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_known_connection_is_used_until_it_closes_then_the_pools_new_one() {
        let (pool, listener, first, provider) = pool_connected().await;
        let address = listener.local_addr().unwrap();
        let mut known = KnownConnections::default();
        let found = known.open(&pool, address).unwrap();
        assert!(std::ptr::eq(found, &*first));
        drop(provider);
        until_closed(&first).await;
        assert!(
            known.open(&pool, address).is_none(),
            "a closed one is not used"
        );
        let (second, _provider) = connect(&pool, &listener).await;
        let found = known.open(&pool, address).unwrap();
        assert!(std::ptr::eq(found, &*second));
        assert!(!found.is_closed());
        let elsewhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(known.open(&pool, elsewhere).is_none());
    }

    async fn read_frame(provider: &mut TcpStream) -> (Header, Vec<u8>) {
        let mut head = [0u8; 16];
        provider.read_exact(&mut head).await.unwrap();
        let header = Header::decode(&head).unwrap();
        let mut body = vec![0; header.body_len as usize];
        provider.read_exact(&mut body).await.unwrap();
        (header, body)
    }

    fn one_way(id: i64, body: &[u8]) -> Frame {
        let header = Header::request(id, Serialization::HESSIAN2, false);
        Frame::from_parts(header, body).unwrap()
    }

    #[tokio::test]
    async fn frames_go_out_in_order_under_fresh_ids() {
        let (conn, mut provider) = connected().await;
        for n in 0..100u8 {
            // The caller's ids collide on purpose: the provider sees the connection's own.
            conn.try_send(one_way(7, &[n; 40]), None).unwrap();
        }
        for n in 0..100u8 {
            let (header, body) = read_frame(&mut provider).await;
            assert_eq!(header.request_id, i64::from(n) + 1);
            assert_eq!(body, [n; 40]);
        }
    }

    #[tokio::test]
    async fn a_provider_heartbeat_is_answered_under_its_own_id() {
        let (_conn, mut provider) = connected().await;
        let ping = heartbeat_request(4242, Serialization::HESSIAN2).unwrap();
        provider.write_all(ping.as_bytes()).await.unwrap();
        let (header, _) = read_frame(&mut provider).await;
        assert_eq!(header.request_id, 4242);
        assert!(header.is_response() && header.is_event());
    }

    #[tokio::test]
    async fn a_closed_connection_gives_requests_back() {
        let (conn, provider) = connected().await;
        drop(provider);
        until_closed(&conn).await;
        let Err(SendError::Closed(back)) = conn.try_send(one_way(9, b"x"), None) else {
            panic!("a closed connection took a request");
        };
        assert_eq!(
            back.0.as_bytes(),
            one_way(9, b"x").as_bytes(),
            "given back untouched"
        );
        assert!(conn.send(one_way(9, b"x"), None).await.is_err());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_without_waiting_and_makes_room_once_written() {
        let (conn, mut provider) = connected().await;
        // The provider does not read: the socket buffers fill, then the queue.
        let body = vec![1u8; 64 * 1024];
        let mut queued = 0usize;
        let deadline = Instant::now() + Duration::from_secs(20);
        while conn.try_send(one_way(1, &body), None).is_ok() {
            queued += 1;
            assert!(Instant::now() < deadline, "the queue never filled");
            if queued.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        }
        assert!(
            queued >= UPSTREAM_QUEUE,
            "refused after only {queued} frames"
        );
        // A waiting send completes once the provider reads and the writer takes the queue.
        let waiting = tokio::spawn({
            let conn = conn.clone();
            async move { conn.send(one_way(2, b"last"), None).await.is_ok() }
        });
        let reader = tokio::spawn(async move {
            let mut seen = 0usize;
            loop {
                let (_, body) = read_frame(&mut provider).await;
                seen += 1;
                if body == b"last" {
                    return seen;
                }
            }
        });
        assert!(waiting.await.unwrap());
        assert_eq!(reader.await.unwrap(), queued + 1);
    }
}
