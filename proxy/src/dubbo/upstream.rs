//! Upstream Dubbo connections: one multiplexed connection per provider endpoint, shared by every
//! caller. Each forwarded request gets a fresh upstream id (header bytes rewritten, body
//! untouched); the connection keeps `upstream id → pending request` and puts the caller's id back
//! on the response.
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
use futures::StreamExt as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use super::request::{Outcome, Pending};
use super::writer::write_loop;
use crate::fasthash::FastMap;
use crate::lb::EndpointState;
use crate::metrics::{Direction, Metrics, Protocol, ProtocolErrorKind, ResponseFlags};

/// How often a connection looks for requests past their deadline.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// Read buffer per provider connection: every caller's responses from that provider arrive on
/// it, so bursts are large.
const UPSTREAM_READ_BUFFER: usize = 64 * 1024;
/// Frames queued for one upstream connection before senders wait.
const UPSTREAM_QUEUE: usize = 4096;

/// Why a request could not be handed to a provider; the request comes back for another try.
#[derive(Debug)]
pub enum SendError {
    /// The connection closed before the request was written.
    Closed(Box<(Frame, Option<Pending>)>),
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

    /// The open connection to `address`, opening one if needed (within `connect_timeout`).
    pub async fn connection(
        &self,
        address: SocketAddr,
        state: &Arc<EndpointState>,
        connect_timeout: Duration,
    ) -> Result<Arc<UpstreamConn>, std::io::Error> {
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
        );
        *guard = Some(conn.clone());
        Ok(conn)
    }
}

#[derive(Debug, Default)]
struct PendingMap {
    closed: bool,
    requests: FastMap<i64, Pending>,
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
    pub async fn send(&self, frame: Frame, pending: Option<Pending>) -> Result<(), SendError> {
        let (id, bytes) = self.register(frame, pending)?;
        // The received bytes themselves go out (only the id was rewritten in place).
        match self.tx.send(bytes).await {
            Ok(()) => Ok(()),
            Err(unsent) => self.unsent(id, &unsent.0),
        }
    }

    /// [`Self::send`] without waiting: a full queue (the provider is not reading) also gives
    /// the request back, for a caller that can wait elsewhere.
    pub fn try_send(&self, frame: Frame, pending: Option<Pending>) -> Result<(), SendError> {
        let (id, bytes) = self.register(frame, pending)?;
        match self.tx.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(
                mpsc::error::TrySendError::Full(unsent) | mpsc::error::TrySendError::Closed(unsent),
            ) => self.unsent(id, &unsent),
        }
    }

    /// Gives the request an upstream id and, if an answer will come, a place in the pending map.
    fn register(
        &self,
        mut frame: Frame,
        pending: Option<Pending>,
    ) -> Result<(i64, Bytes), SendError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        frame.set_request_id(id);
        let mut map = self.lock();
        if map.closed {
            return Err(SendError::Closed(Box::new((frame, pending))));
        }
        if let Some(pending) = pending {
            map.requests.insert(id, pending);
        }
        Ok((id, frame.into_bytes()))
    }

    /// Takes back a registered request that could not be queued.
    fn unsent(&self, id: i64, unsent: &Bytes) -> Result<(), SendError> {
        let pending = self.lock().requests.remove(&id);
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
        let mut frames = FramedRead::with_capacity(
            read,
            DubboCodec::with_max_body_len(max_body_len),
            UPSTREAM_READ_BUFFER,
        );
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = frames.next() => match next {
                    Some(Ok(frame)) => self.on_frame(frame, state, metrics).await,
                    Some(Err(error)) => {
                        tracing::debug!(address = %self.address, %error, "upstream connection failed");
                        if !matches!(error, causeway_protocols::dubbo::FrameError::Io(_)) {
                            metrics.protocol_error(Protocol::Dubbo, Direction::Upstream, ProtocolErrorKind::BadFrame);
                        }
                        break;
                    }
                    None => break,
                },
                _ = sweep.tick() => self.expire(Instant::now()),
            }
        }
        // Closed: nothing more will be answered here. Answer what is in flight, and let a
        // restarted provider at the same address be tried again.
        let orphans: Vec<Pending> = {
            let mut map = self.lock();
            map.closed = true;
            map.requests.drain().map(|(_, p)| p).collect()
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

    async fn on_frame(&self, frame: Frame, state: &EndpointState, metrics: &Metrics) {
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
        let pending = self.lock().requests.remove(&header.request_id);
        match pending {
            Some(pending) => pending.complete(Outcome::Response(frame)),
            None => metrics.protocol_error(
                Protocol::Dubbo,
                Direction::Upstream,
                ProtocolErrorKind::UnknownResponse,
            ),
        }
    }

    fn expire(&self, now: Instant) {
        let expired: Vec<Pending> = {
            let mut map = self.lock();
            let ids: Vec<i64> = map
                .requests
                .iter()
                .filter(|(_, p)| p.deadline() <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| map.requests.remove(id))
                .collect()
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
