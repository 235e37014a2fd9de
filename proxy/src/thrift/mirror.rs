//! Mirrored Thrift calls: a copy of the routed message (after the route's header mutation) sent
//! to an endpoint of each mirror cluster the call was chosen for, on a pooled connection of its
//! own that is held until the reply arrives (then discarded, and the connection returned to the
//! pool) or the deadline passes. A one-way call is copied as one-way. The connection gives the
//! copy a fresh seqid, like any call.
//!
//! Nothing here can delay or fail the caller's call: each copy runs in its own task, copies beyond
//! the per-cluster bound are dropped and counted, and no outcome of a copy reaches the caller, the
//! request metrics or the endpoint's load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_protocols::thrift::ThriftMessage;

use super::ThriftContext;
use super::upstream::{CheckoutError, Exchange, PoolKey};
use crate::lb::RequestKey;
use crate::metrics::Protocol;
use crate::routing::{Cluster, Priority};

/// Copies `message` to one endpoint of each of `clusters`; `service` labels the mirror counters.
pub(super) fn send_copies(
    message: &ThriftMessage,
    clusters: Vec<Arc<Cluster>>,
    service: &Arc<str>,
    context: &Arc<ThriftContext>,
    rng: &mut fastrand::Rng,
) {
    let oneway = message.header.message_type == causeway_protocols::thrift::MessageType::Oneway;
    for cluster in clusters {
        let Some(slot) = context.mirror_slots.try_acquire(&cluster.name) else {
            context
                .metrics
                .resilience
                .mirror_dropped(service, Protocol::Thrift);
            continue;
        };
        let key = RequestKey {
            method: message.header.method(),
            interface: message.header.service().unwrap_or_default(),
            attachment: None,
        };
        let Some((index, state)) =
            context
                .balancer
                .choose(&cluster, &key, &[], rng, Instant::now())
        else {
            context
                .metrics
                .resilience
                .mirror_dropped(service, Protocol::Thrift);
            continue;
        };
        let Some(address) = cluster.endpoints.get(index).map(|e| e.address) else {
            continue;
        };
        context
            .metrics
            .resilience
            .mirrored(service, Protocol::Thrift);
        let copy = message.clone();
        let context = context.clone();
        tokio::spawn(async move {
            // Held until the copy is done, whatever way it ends.
            let _slot = slot;
            let pool_key = PoolKey {
                address,
                transport: copy.transport,
                protocol: copy.header.protocol,
            };
            let connect_timeout = Duration::from_millis(cluster.breaker.connect_timeout_ms);
            // Copies are DEFAULT priority, as Envoy's shadow requests are.
            let counts = context.breakers.of(&cluster, Priority::Default).clone();
            let mut conn = match context
                .upstreams
                .checkout(
                    pool_key,
                    &state,
                    connect_timeout,
                    (&counts, cluster.breaker.at(Priority::Default)),
                )
                .await
            {
                Ok(conn) => conn,
                Err(CheckoutError::Overflow) => {
                    context.metrics.overflow(&cluster.name, Priority::Default);
                    return;
                }
                Err(CheckoutError::Io(error)) => {
                    // A mirror that is down is ejected like any endpoint, so copies stop
                    // trying it for a while.
                    context
                        .balancer
                        .connect_failed(&cluster, &state, Instant::now());
                    tracing::debug!(%address, %error, "mirror connect failed; copy dropped");
                    return;
                }
            };
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(context.settings.request_timeout_ms);
            let seqid = copy.header.seqid;
            match conn.call(copy, seqid, oneway, deadline).await {
                // The reply is discarded; the connection is clean and goes back to the pool.
                Exchange::Reply(_) | Exchange::Sent => context.upstreams.checkin(conn),
                // Anything else leaves the connection in an unknown state: it is closed.
                _ => {}
            }
        });
    }
}
