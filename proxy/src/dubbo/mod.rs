//! The Dubbo data plane: a listener whose callers' requests are routed by interface, method and
//! attachments and forwarded over multiplexed provider connections.
//!
//! - [`inbound`]: one task per caller connection: framing, local heartbeats, routing, and a
//!   Dubbo error response for every failure.
//! - [`upstream`]: per-endpoint multiplexed connections with request-id rewriting, READONLY
//!   draining and timeouts.
//! - `mirror`: copies of requests to the route's mirror clusters, fire-and-forget.
//! - `retry`: what a request whose route retries sent requests keeps for another try, and when
//!   its outcome is retried instead of answered.
//! - [`request`]: a request in flight and its single completion (answer, metrics, load).
//! - `reader`: the reading half of every connection: frames a read at a time, read buffers
//!   reused once their frames are written.
//! - `outbox`: a caller connection's answers on their way to its writer.
//! - `labels`: a request's metric labels, shared per route and endpoint once it is at one.
//! - `writer`: the writing half of every connection: bursts in one `writev`, no copies.

pub mod inbound;
mod labels;
mod mirror;
mod outbox;
mod reader;
pub mod request;
mod retry;
pub mod upstream;
mod writer;

pub(crate) use writer::write_loop;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::DubboSettings;
use crate::lb::Balancer;
use crate::metrics::{Metrics, Protocol, Reporter, RequestLabels, ResponseFlags, status_label};
use crate::resilience::breaker::Breakers;
use crate::resilience::mirror::MirrorSlots;
use crate::state::SnapshotStore;
use upstream::UpstreamPool;

/// What every Dubbo connection shares.
#[derive(Debug)]
pub struct DubboContext {
    /// The routing snapshot in force.
    pub store: Arc<SnapshotStore>,
    /// Endpoint choice and endpoint load.
    pub balancer: Arc<Balancer>,
    /// Provider connections.
    pub upstreams: UpstreamPool,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Listener settings.
    pub settings: DubboSettings,
    /// `source_workload`.
    pub workload: Arc<str>,
    /// Circuit-breaker counts per cluster and routing priority.
    pub breakers: Breakers,
    /// Mirrored copies in flight per mirror cluster.
    pub mirror_slots: MirrorSlots,
    /// The labels of a request before its destination is known, made once.
    pub base_labels: RequestLabels,
}

// === impl DubboContext ===

impl DubboContext {
    /// A context over shared state.
    pub fn new(
        store: Arc<SnapshotStore>,
        balancer: Arc<Balancer>,
        metrics: Arc<Metrics>,
        settings: DubboSettings,
        workload: &str,
    ) -> Self {
        let unknown: Arc<str> = Arc::from("unknown");
        Self {
            store,
            balancer,
            upstreams: UpstreamPool::new(metrics.clone(), settings.max_body_len),
            metrics,
            settings,
            workload: Arc::from(workload),
            breakers: Breakers::default(),
            mirror_slots: MirrorSlots::default(),
            base_labels: RequestLabels {
                reporter: Reporter::Source,
                source_workload: Arc::from(workload),
                destination_service: unknown.clone(),
                destination_workload: unknown.clone(),
                destination_version: unknown.clone(),
                request_protocol: Protocol::Dubbo,
                // Most requests end OK; the others replace it when they do.
                response_code: status_label(causeway_protocols::dubbo::Status::OK.0),
                grpc_response_status: Arc::from(""),
                response_flags: ResponseFlags::None,
                request_method: Arc::from("other"),
                destination_interface: unknown,
            },
        }
    }
}

/// Accepts callers on `listener` until the task is dropped; one task per connection.
pub async fn serve(listener: TcpListener, context: Arc<DubboContext>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(inbound::connection(stream, peer, context.clone()));
            }
            Err(error) => {
                // Out of file descriptors and the like: keep the listener alive and retry.
                tracing::warn!(%error, "dubbo accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
