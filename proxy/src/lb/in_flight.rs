//! The load one forwarded request puts on its endpoint and cluster, for the Dubbo and Thrift data
//! planes: counted when the request is handed to a provider connection, released exactly once —
//! with a latency sample when the provider answered, without one when the request failed or was
//! dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;

use super::EndpointState;

/// Load a forwarded request puts on its endpoint and cluster, released once.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<EndpointState>,
    cluster: Arc<AtomicU32>,
    gauge: Gauge,
    /// When the request was written to the provider connection: latency samples leave out
    /// routing and connecting, which say nothing about the provider's speed.
    sent: Instant,
    done: bool,
}

// === impl InFlight ===

impl InFlight {
    /// Counts a request against `endpoint` and `cluster` (the cluster counter was already
    /// incremented by the caller's circuit-breaker check).
    pub fn new(endpoint: Arc<EndpointState>, cluster: Arc<AtomicU32>, gauge: Gauge) -> Self {
        endpoint.start();
        gauge.inc();
        Self {
            endpoint,
            cluster,
            gauge,
            sent: Instant::now(),
            done: false,
        }
    }

    /// Marks the moment the request was written.
    pub fn sent_now(&mut self) {
        self.sent = Instant::now();
    }

    /// The provider answered: releases the load with the time since the request was sent.
    pub fn answered(&mut self) {
        let latency = self.sent.elapsed();
        self.finish(Some(latency));
    }

    fn finish(&mut self, latency: Option<std::time::Duration>) {
        if self.done {
            return;
        }
        self.done = true;
        self.endpoint.finish(latency);
        self.cluster.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

impl Drop for InFlight {
    /// Not answered (failed, timed out, dropped): released without a latency sample.
    fn drop(&mut self) {
        self.finish(None);
    }
}
