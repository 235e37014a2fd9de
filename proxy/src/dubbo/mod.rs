//! The Dubbo data plane: a listener whose callers' requests are routed by interface, method and
//! attachments and forwarded over multiplexed provider connections.
//!
//! - [`inbound`]: one task per caller connection: framing, local heartbeats, routing, and a
//!   Dubbo error response for every failure.
//! - [`upstream`]: per-endpoint multiplexed connections with request-id rewriting, READONLY
//!   draining and timeouts.
//! - [`request`]: a request in flight and its single completion (answer, metrics, load).

pub mod inbound;
pub mod request;
pub mod upstream;

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

use crate::config::DubboSettings;
use crate::fasthash::FastMap;
use crate::lb::Balancer;
use crate::metrics::{Metrics, Protocol, Reporter, RequestLabels, ResponseFlags, status_label};
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
    /// Requests in flight per cluster, for the circuit breaker.
    cluster_load: Mutex<FastMap<Arc<str>, Arc<AtomicU32>>>,
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
            cluster_load: Mutex::default(),
            base_labels: RequestLabels {
                reporter: Reporter::Source,
                source_workload: Arc::from(workload),
                destination_service: unknown.clone(),
                destination_workload: unknown.clone(),
                destination_version: unknown.clone(),
                request_protocol: Protocol::Dubbo,
                response_code: status_label(0),
                grpc_response_status: Arc::from(""),
                response_flags: ResponseFlags::None,
                request_method: Arc::from("other"),
                destination_interface: unknown,
            },
        }
    }

    /// The in-flight counter of a cluster.
    pub fn cluster_load(&self, cluster: &Arc<str>) -> Arc<AtomicU32> {
        self.cluster_load
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(cluster.clone())
            .or_default()
            .clone()
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

/// Writes queued frames to a connection through a `capacity`-byte buffer, flushing when the
/// queue runs dry so bursts go out in few system calls. Ends when every sender is gone or the peer stops reading.
pub(crate) async fn write_loop<W, R>(write: W, mut rx: R, capacity: usize)
where
    W: tokio::io::AsyncWrite + Unpin,
    R: Receiver,
{
    let mut out = tokio::io::BufWriter::with_capacity(capacity, write);
    while let Some(bytes) = rx.recv().await {
        if out.write_all(&bytes).await.is_err() {
            return;
        }
        // The first frame woke this task while the tasks that produce the rest of a burst (the
        // other requests of one caller read, the other responses of one provider read) are
        // still queued. Yielding once lets them run first, so one write carries the whole
        // burst instead of one system call (and one loopback wake-up of the peer) per frame.
        tokio::task::yield_now().await;
        while let Some(more) = rx.try_recv() {
            if out.write_all(&more).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.shutdown().await;
}

/// The two channel kinds the writers read from.
pub(crate) trait Receiver {
    /// The next frame, waiting.
    fn recv(&mut self) -> impl std::future::Future<Output = Option<Bytes>> + Send;
    /// The next frame if one is queued.
    fn try_recv(&mut self) -> Option<Bytes>;
}

impl Receiver for tokio::sync::mpsc::Receiver<Bytes> {
    fn recv(&mut self) -> impl std::future::Future<Output = Option<Bytes>> + Send {
        tokio::sync::mpsc::Receiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<Bytes> {
        tokio::sync::mpsc::Receiver::try_recv(self).ok()
    }
}

impl Receiver for tokio::sync::mpsc::UnboundedReceiver<Bytes> {
    fn recv(&mut self) -> impl std::future::Future<Output = Option<Bytes>> + Send {
        tokio::sync::mpsc::UnboundedReceiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<Bytes> {
        tokio::sync::mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}
