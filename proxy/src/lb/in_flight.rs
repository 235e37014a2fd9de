//! The load one forwarded request puts on its endpoint and cluster, for the Dubbo and Thrift data
//! planes: counted when the request is handed to a provider connection, released exactly once —
//! with a latency sample when the provider answered, without one when the request failed or was
//! dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;

use super::{Balancer, EndpointState, Verdict};
use crate::routing::Cluster;

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
    /// Where the request's result goes for outlier detection (taken by the first report).
    outlier: Option<(Arc<Balancer>, Arc<Cluster>)>,
}

// === impl InFlight ===

impl InFlight {
    /// Counts a request against `endpoint` and `cluster` (the cluster counter was already
    /// incremented by the caller's circuit-breaker check).
    pub fn new(endpoint: Arc<EndpointState>, cluster: Arc<AtomicU32>, gauge: Gauge) -> Self {
        Self::sent_at(endpoint, cluster, gauge, Instant::now())
    }

    /// [`InFlight::new`] for a request written at `sent` (a time the caller read already: the
    /// clock is read a few times per request, and each read shows at saturation).
    pub fn sent_at(
        endpoint: Arc<EndpointState>,
        cluster: Arc<AtomicU32>,
        gauge: Gauge,
        sent: Instant,
    ) -> Self {
        endpoint.start();
        gauge.inc();
        Self {
            endpoint,
            cluster,
            gauge,
            sent,
            done: false,
            outlier: None,
        }
    }

    /// Reports this request's result to `cluster`'s outlier detector in `balancer` (see
    /// [`InFlight::report`]).
    #[must_use]
    pub fn with_outliers(mut self, balancer: Arc<Balancer>, cluster: Arc<Cluster>) -> Self {
        self.outlier = Some((balancer, cluster));
        self
    }

    /// Tells the outlier detector how the request went (once; later reports are ignored).
    pub fn report(&mut self, verdict: Verdict) {
        self.report_at(verdict, Instant::now());
    }

    /// [`InFlight::report`] at `now`.
    pub fn report_at(&mut self, verdict: Verdict, now: Instant) {
        if let Some((balancer, cluster)) = self.outlier.take() {
            balancer.report(&cluster, &self.endpoint, verdict, now);
        }
    }

    /// Marks the moment the request was written.
    pub fn sent_now(&mut self) {
        self.sent = Instant::now();
    }

    /// The provider answered: releases the load with the time since the request was sent.
    pub fn answered(&mut self) {
        self.answered_at(Instant::now());
    }

    /// [`InFlight::answered`], the answer having arrived at `now`.
    pub fn answered_at(&mut self, now: Instant) {
        let latency = now.saturating_duration_since(self.sent);
        self.finish(Some((latency, now)));
    }

    /// No answer in time: releases the load with the time the endpoint held the request, a
    /// lower bound of its latency. Without it an endpoint that never answers would look as fast
    /// as an idle one to the latency-weighted balancer and keep attracting requests.
    pub fn timed_out(&mut self) {
        let now = Instant::now();
        let held = now.saturating_duration_since(self.sent);
        self.finish(Some((held, now)));
    }

    fn finish(&mut self, sample: Option<(std::time::Duration, Instant)>) {
        if self.done {
            return;
        }
        self.done = true;
        self.endpoint.finish_at(sample);
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
