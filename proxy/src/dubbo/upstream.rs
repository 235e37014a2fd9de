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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use causeway_protocols::dubbo::{DubboCodec, EventKind, Frame, heartbeat_reply};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::reader::FrameReader;
use super::request::{Outcome, Pending};
use super::writer::write_loop;
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

#[derive(Debug, Default)]
struct PendingMap {
    closed: bool,
    requests: FastMap<i64, Waiter>,
}

/// One multiplexed connection to a provider.
#[derive(Debug)]
pub struct UpstreamConn {
    address: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    pending: Mutex<PendingMap>,
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
        let (tx, rx) = mpsc::channel(UPSTREAM_QUEUE);
        let conn = Arc::new(Self {
            address,
            tx,
            pending: Mutex::default(),
            next_id: AtomicI64::new(1),
        });
        tokio::spawn(write_loop(write, rx));
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
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the connection has closed (a new one is needed).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The provider's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Forwards a request; `pending` is `None` for one-way calls (no answer will come).
    pub async fn send(&self, frame: Frame, pending: Option<Box<Pending>>) -> Result<(), SendError> {
        let (id, bytes) = self.register(frame, pending.map(Waiter::Caller))?;
        // The received bytes themselves go out (only the id was rewritten in place).
        match self.tx.send(bytes).await {
            Ok(()) => Ok(()),
            Err(unsent) => self.unsent(id, &unsent.0),
        }
    }

    /// [`Self::send`] without waiting: a full queue (the provider is not reading) also gives
    /// the request back, for a caller that can wait elsewhere.
    pub fn try_send(&self, frame: Frame, pending: Option<Box<Pending>>) -> Result<(), SendError> {
        let (id, bytes) = self.register(frame, pending.map(Waiter::Caller))?;
        match self.tx.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(
                mpsc::error::TrySendError::Full(unsent) | mpsc::error::TrySendError::Closed(unsent),
            ) => self.unsent(id, &unsent),
        }
    }

    /// Forwards a mirrored copy without waiting (`copy` is `None` for a one-way request); a
    /// closed connection or a full queue drops it, as a copy must never hold anything up.
    pub fn try_send_mirror(&self, frame: Frame, copy: Option<MirrorCopy>) -> bool {
        let Ok((id, bytes)) = self.register(frame, copy.map(Waiter::Mirror)) else {
            return false;
        };
        if self.tx.try_send(bytes).is_ok() {
            return true;
        }
        self.lock().requests.remove(&id);
        false
    }

    /// Gives the request an upstream id and, if an answer will come, a place in the pending map.
    fn register(
        &self,
        mut frame: Frame,
        waiter: Option<Waiter>,
    ) -> Result<(i64, Bytes), SendError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        frame.set_request_id(id);
        let mut map = self.lock();
        if map.closed {
            let pending = match waiter {
                Some(Waiter::Caller(pending)) => Some(pending),
                _ => None,
            };
            return Err(SendError::Closed(Box::new((frame, pending))));
        }
        if let Some(waiter) = waiter {
            map.requests.insert(id, waiter);
        }
        Ok((id, frame.into_bytes()))
    }

    /// Takes back a registered request that could not be queued.
    fn unsent(&self, id: i64, unsent: &Bytes) -> Result<(), SendError> {
        let pending = match self.lock().requests.remove(&id) {
            Some(Waiter::Caller(pending)) => Some(pending),
            _ => None,
        };
        // Rare (the writer died or is backed up): rebuild the frame so the caller can try again.
        match Frame::from_bytes(BytesMut::from(&unsent[..])) {
            Ok(frame) => Err(SendError::Closed(Box::new((frame, pending)))),
            Err(_) => {
                if let Some(pending) = pending {
                    pending.complete(Outcome::Local {
                        status: causeway_protocols::dubbo::Status::SERVICE_ERROR,
                        flags: ResponseFlags::UpstreamConnectionTermination,
                        message: "causeway-proxy: the provider connection closed".to_owned(),
                    });
                }
                Ok(())
            }
        }
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
                        let _ = self.tx.send(reply.into_bytes()).await;
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
