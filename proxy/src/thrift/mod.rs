//! The Thrift data plane: a listener whose callers' calls are routed by host, multiplexed service
//! name, method and THeader headers, and forwarded byte for byte (only the seqid is rewritten) to
//! the chosen endpoint.
//!
//! - [`inbound`]: one task per caller connection: transport and protocol detection (framed,
//!   unframed, THeader; binary strict/non-strict, compact), routing, and a `TApplicationException`
//!   in the caller's transport and protocol for every failure.
//! - [`upstream`]: per-endpoint connection pools, one call in flight per connection (why:
//!   [`upstream`]'s module docs), seqid rewriting, timeouts.
//! - `mirror`: copies of calls to the route's mirror clusters, fire-and-forget.
//! - [`call`]: a call in flight and its single completion (answer, metrics, load).

pub mod call;
pub mod inbound;
mod mirror;
pub mod upstream;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::ThriftSettings;
use crate::lb::Balancer;
use crate::metrics::Metrics;
use crate::resilience::breaker::Breakers;
use crate::resilience::mirror::MirrorSlots;
use crate::state::SnapshotStore;
use upstream::UpstreamPool;

/// What every Thrift connection shares.
#[derive(Debug)]
pub struct ThriftContext {
    /// The routing snapshot in force.
    pub store: Arc<SnapshotStore>,
    /// Endpoint choice and endpoint load (shared with the other protocols: one endpoint, one
    /// load picture).
    pub balancer: Arc<Balancer>,
    /// Provider connections.
    pub upstreams: UpstreamPool,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Listener settings.
    pub settings: ThriftSettings,
    /// `source_workload`.
    pub workload: Arc<str>,
    /// Mirrored copies in flight per mirror cluster.
    pub mirror_slots: MirrorSlots,
    /// Circuit-breaker counts per cluster and routing priority.
    pub breakers: Breakers,
}

// === impl ThriftContext ===

impl ThriftContext {
    /// A context over shared state.
    pub fn new(
        store: Arc<SnapshotStore>,
        balancer: Arc<Balancer>,
        metrics: Arc<Metrics>,
        settings: ThriftSettings,
        workload: &str,
    ) -> Self {
        Self {
            store,
            balancer,
            upstreams: UpstreamPool::new(metrics.clone(), settings.max_frame_size),
            metrics,
            settings,
            workload: Arc::from(workload),
            mirror_slots: MirrorSlots::default(),
            breakers: Breakers::default(),
        }
    }
}

/// Accepts callers on `listener` until the task is dropped; one task per connection. `host`
/// binds the listener to one mesh host's route table.
pub async fn serve(listener: TcpListener, context: Arc<ThriftContext>, host: Option<Arc<str>>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(inbound::connection(
                    stream,
                    peer,
                    context.clone(),
                    host.clone(),
                ));
            }
            Err(error) => {
                // Out of file descriptors and the like: keep the listener alive and retry.
                tracing::warn!(%error, "thrift accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
