//! Upstream HTTP connections, per endpoint: one multiplexed HTTP/2 connection (gRPC, and any
//! request that asks for HTTP/2) shared by every caller, and a pool of HTTP/1.1 keep-alive
//! connections, each carrying one request at a time ([`super::h1_pool`]: idle connections
//! handed from request to request, new ones opened a few at a time).
//!
//! The pool is the proxy's own rather than a generic client's because the proxy must know when
//! a connection could not be opened (the endpoint is ejected and the request, not sent yet, tries
//! another endpoint) and must keep the caller's authority while connecting to an address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::body::RequestBody;
use super::h1_pool;
use crate::metrics::{Direction, Metrics, Protocol};
use crate::resilience::breaker::ClusterCounts;
use crate::routing::Thresholds;

/// Whose connection count a new connection is charged to: the cluster and routing priority of
/// the request that opens it (an endpoint's HTTP/2 connection is shared by every cluster and
/// priority that uses it afterwards), as Envoy charges connections.
pub type ChargedTo<'a> = (&'a Arc<ClusterCounts>, &'a Thresholds);

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Opening the connection failed (refused, timed out, handshake error).
    #[error("{0}")]
    Connect(#[from] std::io::Error),
    /// A new connection was needed and the cluster is at its `max_connections`.
    #[error("the cluster is at its connection limit")]
    ConnectionLimit,
}

/// A connection able to take one request now.
#[derive(Debug)]
pub enum Sender {
    /// An HTTP/1.1 connection, taken out of the pool for the request.
    Http1(http1::SendRequest<RequestBody>),
    /// A handle on the endpoint's shared HTTP/2 connection.
    Http2(http2::SendRequest<RequestBody>),
}

/// The HTTP/2 connection to one endpoint, if open; the async lock serialises connects.
type H2Slot = tokio::sync::Mutex<Option<http2::SendRequest<RequestBody>>>;

/// Every upstream HTTP connection, by endpoint address.
#[derive(Debug)]
pub struct UpstreamPool {
    h2: Mutex<HashMap<SocketAddr, Arc<H2Slot>>>,
    h1: Mutex<HashMap<SocketAddr, Arc<h1_pool::Endpoint>>>,
    metrics: Arc<Metrics>,
}

// === impl UpstreamPool ===

impl UpstreamPool {
    /// An empty pool.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            h2: Mutex::default(),
            h1: Mutex::default(),
            metrics,
        }
    }

    /// A connection to `address` ready for one request: HTTP/2 when `h2`, else HTTP/1.1. An
    /// error means the connection could not be opened (within `connect_timeout`).
    pub async fn sender(
        &self,
        address: SocketAddr,
        h2: bool,
        connect_timeout: Duration,
        protocol: Protocol,
        charged_to: ChargedTo<'_>,
    ) -> Result<Sender, UpstreamError> {
        // Almost every request finds a connection ready without waiting. Connecting (TCP,
        // handshake, the pool's queue) is a large state machine: boxed, it is allocated only
        // when needed instead of inflating every request's future, of which a burst of callers
        // holds a thousand at once.
        if h2 {
            if let Some(sender) = self.h2_ready(address) {
                return Ok(Sender::Http2(sender));
            }
            Box::pin(self.h2_sender(address, connect_timeout, protocol, charged_to))
                .await
                .map(Sender::Http2)
        } else {
            if let Some(sender) = self.h1_endpoint(address).ready_now() {
                return Ok(Sender::Http1(sender));
            }
            Box::pin(self.h1_sender(address, connect_timeout, protocol, charged_to))
                .await
                .map(Sender::Http1)
        }
    }

    /// The endpoint's HTTP/2 connection if it is open and nobody is connecting.
    fn h2_ready(&self, address: SocketAddr) -> Option<http2::SendRequest<RequestBody>> {
        let slot = self.h2_slot(address);
        let guard = slot.try_lock().ok()?;
        guard.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    /// Forgets a broken HTTP/2 connection so the next request opens a new one.
    pub async fn discard_h2(&self, address: SocketAddr) {
        let slot = self.h2_slot(address);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(http2::SendRequest::is_closed) {
            *guard = None;
        }
    }

    /// Gives an HTTP/1.1 connection whose exchange is complete back for reuse.
    pub fn release(&self, address: SocketAddr, sender: http1::SendRequest<RequestBody>) {
        self.h1_endpoint(address).release(sender);
    }

    fn h1_endpoint(&self, address: SocketAddr) -> Arc<h1_pool::Endpoint> {
        self.h1
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(address)
            .or_default()
            .clone()
    }

    fn h2_slot(&self, address: SocketAddr) -> Arc<H2Slot> {
        self.h2
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(address)
            .or_default()
            .clone()
    }

    async fn h2_sender(
        &self,
        address: SocketAddr,
        connect_timeout: Duration,
        protocol: Protocol,
        (counts, thresholds): ChargedTo<'_>,
    ) -> Result<http2::SendRequest<RequestBody>, UpstreamError> {
        let slot = self.h2_slot(address);
        // One connect at a time per endpoint: concurrent requests wait for it and share it.
        let mut guard = slot.lock().await;
        if let Some(sender) = guard.as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let slot = counts
            .try_connection(thresholds)
            .ok_or(UpstreamError::ConnectionLimit)?;
        let stream = connect(address, connect_timeout).await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let guard_metrics = self.metrics.clone();
        tokio::spawn(async move {
            // Counted against the breaker as long as the connection lives.
            let _slot = slot;
            let _active = guard_metrics.connection(protocol, Direction::Upstream);
            if let Err(error) = connection.await {
                tracing::debug!(%address, %error, "upstream HTTP/2 connection ended");
            }
        });
        *guard = Some(sender.clone());
        Ok(sender)
    }

    async fn h1_sender(
        &self,
        address: SocketAddr,
        connect_timeout: Duration,
        protocol: Protocol,
        (counts, thresholds): ChargedTo<'_>,
    ) -> Result<http1::SendRequest<RequestBody>, UpstreamError> {
        let opening = match self.h1_endpoint(address).acquire().await? {
            h1_pool::Acquired::Ready(sender) => return Ok(sender),
            h1_pool::Acquired::Connect(opening) => opening,
        };
        let slot = counts
            .try_connection(thresholds)
            .ok_or(UpstreamError::ConnectionLimit)?;
        let handshake = async {
            let stream = connect(address, connect_timeout).await?;
            http1::Builder::new()
                .handshake(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)
        };
        let (sender, connection) = match handshake.await {
            Ok(opened) => opened,
            Err(error) => {
                opening.failed(&error);
                return Err(error.into());
            }
        };
        let open = opening.opened();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            // Counted against the breaker and the endpoint's open connections as long as the
            // connection lives.
            let _slot = slot;
            let _open = open;
            let _active = metrics.connection(protocol, Direction::Upstream);
            if let Err(error) = connection.await {
                tracing::debug!(%address, %error, "upstream HTTP/1.1 connection ended");
            }
        });
        Ok(sender)
    }
}

async fn connect(address: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
