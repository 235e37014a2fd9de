//! Mirrored Dubbo requests: a copy of the routed frame (after the route's request mutation, with a
//! fresh upstream request id given by the provider connection) sent to an endpoint of each mirror
//! cluster the request was chosen for. The copy's answer is read by the provider connection and
//! discarded; a one-way request is copied as one-way.
//!
//! Nothing here can delay or fail the caller's request: the copy is made and queued without
//! waiting (an open connection) or handed to a task (a connection to open), copies beyond the
//! per-cluster bound are dropped and counted, and no outcome of a copy reaches the caller, the
//! request metrics or the endpoint's load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use causeway_protocols::dubbo::Frame;

use super::DubboContext;
use super::upstream::{ConnectError, MirrorCopy};
use crate::lb::RequestKey;
use crate::metrics::Protocol;
use crate::routing::{Cluster, Priority};

/// Copies `frame` to one endpoint of each of `clusters`; `service` labels the mirror counters.
// Out of line: its connect task is a large future (see `inbound::spawn_forward`).
#[inline(never)]
pub(super) fn send_copies(
    frame: &Frame,
    clusters: Vec<Arc<Cluster>>,
    service: &Arc<str>,
    method: &str,
    interface: &str,
    context: &Arc<DubboContext>,
    rng: &mut fastrand::Rng,
) {
    let two_way = frame.header().is_two_way();
    for cluster in clusters {
        let Some(slot) = context.mirror_slots.try_acquire(&cluster.name) else {
            context
                .metrics
                .resilience
                .mirror_dropped(service, Protocol::Dubbo);
            continue;
        };
        let key = RequestKey {
            method,
            interface,
            attachment: None,
        };
        let Some((index, state)) =
            context
                .balancer
                .choose(&cluster, &key, &[], rng, Instant::now())
        else {
            // No usable endpoint in the mirror: nothing to copy to.
            context
                .metrics
                .resilience
                .mirror_dropped(service, Protocol::Dubbo);
            continue;
        };
        let Some(address) = cluster.endpoints.get(index).map(|e| e.address) else {
            continue;
        };
        // The caller's frame goes on to its provider with its own id rewritten in place: the
        // copy needs bytes of its own.
        let Ok(copy) = Frame::from_bytes(BytesMut::from(frame.as_bytes())) else {
            continue;
        };
        let timeout = Duration::from_millis(context.settings.request_timeout_ms);
        let waiter = two_way.then(|| MirrorCopy {
            deadline: Instant::now() + timeout,
            slot,
        });
        context
            .metrics
            .resilience
            .mirrored(service, Protocol::Dubbo);
        if let Some(conn) = context.upstreams.existing(address) {
            conn.try_send_mirror(copy, waiter);
            continue;
        }
        // Copies are DEFAULT priority, as Envoy's shadow requests are.
        let counts = context.breakers.of(&cluster, Priority::Default).clone();
        let context = context.clone();
        let connect_timeout = Duration::from_millis(cluster.breaker.connect_timeout_ms);
        tokio::spawn(async move {
            match context
                .upstreams
                .connection(
                    address,
                    &state,
                    connect_timeout,
                    (&counts, cluster.breaker.at(Priority::Default)),
                )
                .await
            {
                Ok(conn) => {
                    conn.try_send_mirror(copy, waiter);
                }
                Err(ConnectError::Overflow) => {
                    context.metrics.overflow(&cluster.name, Priority::Default);
                }
                Err(ConnectError::Io(error)) => {
                    // A mirror that is down is ejected like any endpoint, so copies stop
                    // trying it for a while.
                    context
                        .balancer
                        .connect_failed(&cluster, &state, Instant::now());
                    tracing::debug!(%address, %error, "mirror connect failed; copy dropped");
                }
            }
        });
    }
}
