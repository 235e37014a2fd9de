//! The gRPC and HTTP data plane (hyper's HTTP/1.1 server and every client; the proxy's own
//! HTTP/2 server for callers, [`h2`]): listeners whose requests are routed by authority, path
//! and headers (VirtualService semantics) to weighted clusters and forwarded to the nearest
//! healthy endpoint, bodies streaming both ways.
//!
//! - [`connection`]: a `grpc` listener speaks HTTP/2 (prior knowledge); an `http` listener
//!   speaks HTTP/1.1 and h2c prior knowledge on the same port (told apart by peeking at the
//!   connection preface); [`h1_head`]: an HTTP/1.1 request head in a buffer of its own.
//! - [`h2`]: the caller-side HTTP/2 server, small per connection.
//! - [`forward`]: one request from routing to the response head, and every failure answered in
//!   the caller's protocol: gRPC status trailers (Trailers-Only) or an HTTP status with a short
//!   text body, never a silent reset.
//! - [`body`]: the bodies streamed through, and the single completion of each request (metrics,
//!   endpoint load, connection reuse).
//! - [`upstream`]: per-endpoint connections, HTTP/2 multiplexed for gRPC, pooled HTTP/1.1
//!   keep-alive otherwise ([`h1_pool`]: handed from request to request, opened a few at a time).
//! - Resilience: [`retry`] (which failed attempts are sent again), [`tape`] (the bounded copy of
//!   a request body that retries and mirrors replay), [`mirror`] (fire-and-forget copies),
//!   [`admission`] (TrafficIsolation classes and the local rate limit, answered in the caller's
//!   protocol).

pub mod admission;
pub mod body;
pub mod connection;
pub mod forward;
pub mod h1_head;
pub mod h1_pool;
pub mod h2;
pub mod labels;
pub mod mirror;
pub mod retry;
pub mod tape;
pub mod upstream;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::lb::Balancer;
use crate::metrics::Metrics;
use crate::state::SnapshotStore;
use upstream::UpstreamPool;

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// HTTP/2 only; every request is a gRPC call.
    Grpc,
    /// HTTP/1.1 and h2c; requests with a gRPC content type are gRPC calls.
    Http,
}

/// What every gRPC and HTTP connection shares.
#[derive(Debug)]
pub struct HttpContext {
    /// The routing snapshot in force.
    pub store: Arc<SnapshotStore>,
    /// Endpoint choice and endpoint load.
    pub balancer: Arc<Balancer>,
    /// Provider connections.
    pub upstreams: Arc<UpstreamPool>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// `source_workload`.
    pub workload: Arc<str>,
    /// Circuit-breaker counts per cluster and routing priority.
    pub breakers: crate::resilience::breaker::Breakers,
    /// The bound on mirrored copies in flight.
    pub mirror_slots: mirror::MirrorSlots,
    /// Request label values made once.
    pub labels: labels::Labels,
}

// === impl HttpContext ===

impl HttpContext {
    /// A context over shared state.
    pub fn new(
        store: Arc<SnapshotStore>,
        balancer: Arc<Balancer>,
        metrics: Arc<Metrics>,
        workload: &str,
    ) -> Self {
        let workload: Arc<str> = Arc::from(workload);
        Self {
            store,
            balancer,
            upstreams: Arc::new(UpstreamPool::new(metrics.clone())),
            metrics,
            labels: labels::Labels::new(&workload),
            workload,
            breakers: crate::resilience::breaker::Breakers::default(),
            mirror_slots: mirror::MirrorSlots::default(),
        }
    }
}

/// Accepts callers on `listener` until the task is dropped; one task per connection.
pub async fn serve(listener: TcpListener, context: Arc<HttpContext>, kind: ListenerKind) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection::serve(stream, peer, context.clone(), kind));
            }
            Err(error) => {
                // Out of file descriptors and the like: keep the listener alive and retry.
                tracing::warn!(%error, "http accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
