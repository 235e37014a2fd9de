//! Upstream Thrift connections: a pool per (endpoint, transport, protocol), one call in flight per
//! connection.
//!
//! Why a pool and not one pipelined connection per endpoint (as for Dubbo): Apache Thrift's
//! servers handle one call per connection at a time. Python's `TSimpleServer`,
//! `TThreadedServer`, `TThreadPoolServer` and `TForkingServer` loop `read call → process →
//! write reply` per connection, Java's `TSimpleServer`/`TThreadPoolServer` do the same, and the
//! non-blocking servers (`TNonblockingServer`, `THsHaServer`, `TThreadedSelectorServer`, Python's
//! `TNonblockingServer`) stop reading a connection until its current call is answered. Calls
//! pipelined on one connection would therefore queue behind each other — one slow call would
//! stall every call behind it — and buy nothing. Concurrency comes from more connections; idle
//! ones are kept for reuse.
//!
//! A connection carries the caller's transport and protocol unchanged (the bytes are forwarded),
//! so it only serves callers that speak the same pair: servers are configured with one transport
//! and protocol and often detect nothing. Each call still gets a fresh per-connection seqid (the
//! caller's is put back on the reply) so a reply that does not belong to the call is caught.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use causeway_protocols::thrift::{
    MessageType, Protocol, ThriftCodec, ThriftError, ThriftMessage, Transport,
};
use futures::{FutureExt as _, StreamExt as _};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Framed;

use crate::lb::EndpointState;
use crate::metrics::{ConnectionGuard, Direction, Metrics, Protocol as MetricProtocol};
use crate::resilience::breaker::{BreakerSlot, ClusterCounts};
use crate::routing::Thresholds;

/// Idle connections kept per (endpoint, transport, protocol); more are closed when returned.
const MAX_IDLE: usize = 64;

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Connecting failed (refused, unreachable, timed out).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A new connection would exceed the cluster's `max_connections`.
    #[error("the cluster is at its connection limit")]
    Overflow,
}

/// Which connections can carry a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The endpoint.
    pub address: SocketAddr,
    /// The caller's transport.
    pub transport: Transport,
    /// The caller's protocol.
    pub protocol: Protocol,
}

/// All idle upstream connections.
#[derive(Debug)]
pub struct UpstreamPool {
    idle: Mutex<HashMap<PoolKey, Vec<UpstreamConn>>>,
    metrics: Arc<Metrics>,
    max_frame_size: usize,
}

// === impl UpstreamPool ===

impl UpstreamPool {
    /// An empty pool.
    pub fn new(metrics: Arc<Metrics>, max_frame_size: usize) -> Self {
        Self {
            idle: Mutex::default(),
            metrics,
            max_frame_size,
        }
    }

    /// An idle connection for `key` that is still open, or a new one (within `connect_timeout`)
    /// that counts against `cluster`'s `max_connections` (at the opening call's priority) until
    /// it closes (idle in the pool included).
    pub async fn checkout(
        &self,
        key: PoolKey,
        state: &EndpointState,
        connect_timeout: Duration,
        cluster: (&Arc<ClusterCounts>, &Thresholds),
    ) -> Result<UpstreamConn, CheckoutError> {
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(&key)
                .and_then(Vec::pop);
            let Some(mut conn) = idle else { break };
            if conn.is_open() {
                return Ok(conn);
            }
        }
        let (counts, thresholds) = cluster;
        let slot = counts
            .try_connection(thresholds)
            .ok_or(CheckoutError::Overflow)?;
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(key.address))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        let _ = stream.set_nodelay(true);
        state.connected();
        let codec = ThriftCodec::with_transport(key.transport).max_frame_size(self.max_frame_size);
        Ok(UpstreamConn {
            key,
            framed: Framed::new(stream, codec),
            next_seqid: 0,
            _guard: self
                .metrics
                .connection(MetricProtocol::Thrift, Direction::Upstream),
            _slot: slot,
        })
    }

    /// Returns a connection whose last call completed cleanly.
    pub fn checkin(&self, conn: UpstreamConn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(conn.key).or_default();
        if list.len() < MAX_IDLE {
            list.push(conn);
        }
    }
}

/// What became of a call on a connection.
#[derive(Debug)]
pub enum Exchange {
    /// The server's reply, seqid restored to the caller's.
    Reply(ThriftMessage),
    /// A one-way call was written.
    Sent,
    /// The call could not be written: it can go to another endpoint.
    NotSent(ThriftMessage),
    /// The connection closed (or failed) after the call was written.
    Closed,
    /// No reply by the deadline.
    TimedOut,
    /// The server sent something that is not the reply to this call.
    BadReply(String),
}

/// One upstream connection, carrying one call at a time.
#[derive(Debug)]
pub struct UpstreamConn {
    key: PoolKey,
    framed: Framed<TcpStream, ThriftCodec>,
    next_seqid: i32,
    _guard: ConnectionGuard,
    /// Counted against the cluster that opened it until closed.
    _slot: BreakerSlot,
}

// === impl UpstreamConn ===

impl UpstreamConn {
    /// Whether the server has not closed the connection while it was idle (an idle connection
    /// has nothing to read; EOF or stray bytes make it useless).
    fn is_open(&mut self) -> bool {
        self.framed.next().now_or_never().is_none()
    }

    /// Sends `message` with this connection's next seqid and, unless `oneway`, waits until
    /// `deadline` for the reply, giving it back `caller_seqid`.
    pub async fn call(
        &mut self,
        mut message: ThriftMessage,
        caller_seqid: i32,
        oneway: bool,
        deadline: Instant,
    ) -> Exchange {
        self.next_seqid = self.next_seqid.wrapping_add(1);
        let seqid = self.next_seqid;
        if let Err(error) = message.set_seqid(seqid) {
            // The message was parsed on the way in, so this cannot happen; never forward it
            // with a seqid the reply would not be matched by.
            return Exchange::BadReply(format!("cannot rewrite the seqid: {error}"));
        }
        // Written directly (not through the codec's buffer) so a failed write keeps the bytes
        // for another endpoint.
        if self
            .framed
            .get_mut()
            .write_all(message.frame.as_ref())
            .await
            .is_err()
        {
            return Exchange::NotSent(message);
        }
        drop(message);
        if oneway {
            return Exchange::Sent;
        }
        let next = match tokio::time::timeout_at(deadline, self.framed.next()).await {
            Err(_) => return Exchange::TimedOut,
            Ok(next) => next,
        };
        let mut reply = match next {
            Some(Ok(reply)) => reply,
            Some(Err(ThriftError::Io(_))) | None => return Exchange::Closed,
            Some(Err(error)) => return Exchange::BadReply(error.to_string()),
        };
        if !matches!(
            reply.header.message_type,
            MessageType::Reply | MessageType::Exception
        ) {
            return Exchange::BadReply(format!(
                "a {:?} message instead of a reply",
                reply.header.message_type
            ));
        }
        if reply.header.seqid != seqid {
            return Exchange::BadReply(format!(
                "reply seqid {} for call seqid {seqid}",
                reply.header.seqid
            ));
        }
        match reply.set_seqid(caller_seqid) {
            Ok(_) => Exchange::Reply(reply),
            Err(error) => Exchange::BadReply(format!("cannot restore the seqid: {error}")),
        }
    }
}
