//! Circuit breakers, shared by every protocol: per cluster and per routing priority (Envoy's
//! DEFAULT and HIGH), the requests in flight, the requests waiting for an upstream connection,
//! and the upstream connections the priority's requests opened, each held against that
//! priority's thresholds ([`Thresholds`], from CDS `circuit_breakers.thresholds` or a
//! DestinationRule's `connectionPool` and a TrafficIsolation's `highPriorityConnectionPool`).
//! Each priority has counts of its own, as in Envoy, so a flood of DEFAULT requests at its limit
//! leaves HIGH requests untouched. A connection counts against the priority of the request that
//! opened it, for as long as it lives, whichever requests use it later.
//!
//! The counts are plain atomics behind RAII slots: a slot is taken when the request starts
//! waiting or the connection opens and given back when it is dropped, so no exit path can leak
//! one. A limit that is reached refuses at once — the caller gets its protocol's "overloaded"
//! answer with `UO` and `causeway_proxy_upstream_overflow_total{cluster,priority}` counts it —
//! rather than queueing behind a provider that is already behind.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::fasthash::FastMap;
use crate::routing::{Cluster, PerPriority, Priority, Thresholds};

/// Which threshold refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_requests`: requests in flight.
    Requests,
    /// `max_pending`: requests waiting for a connection.
    Pending,
    /// `max_connections`: upstream connections open.
    Connections,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Requests => "request limit",
            Self::Pending => "pending-request limit",
            Self::Connections => "connection limit",
        })
    }
}

/// The message a refused caller sees.
pub fn overflow_message(cluster: &str, limit: Limit) -> String {
    format!("causeway-proxy: {cluster} is at its {limit}")
}

/// Labels of `causeway_proxy_upstream_overflow_total`: bounded, the priority being one of two.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OverflowLabels {
    /// `outbound|<port>|<subset>|<host>`.
    pub cluster: Arc<str>,
    /// `default` or `high`.
    pub priority: Priority,
}

impl EncodeLabelValue for Priority {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

/// The counts of every cluster seen so far, per priority.
#[derive(Debug, Default)]
pub struct Breakers {
    clusters: Mutex<FastMap<Arc<str>, PerPriority<Arc<ClusterCounts>>>>,
}

// === impl Breakers ===

impl Breakers {
    /// The counts of the cluster named `name` at `priority` (the request path goes through
    /// [`Breakers::of`]).
    #[cfg(test)]
    pub fn by_name(&self, name: &Arc<str>, priority: Priority) -> Arc<ClusterCounts> {
        self.all_of(name).at(priority).clone()
    }

    fn all_of(&self, name: &Arc<str>) -> PerPriority<Arc<ClusterCounts>> {
        let mut clusters = self.clusters.lock().unwrap_or_else(PoisonError::into_inner);
        clusters.entry(name.clone()).or_default().clone()
    }

    /// The counts of `cluster` at `priority`, remembered by the cluster itself: the request
    /// path finds them without the map's lock and hash (the cluster outlives the request).
    pub fn of<'c>(&self, cluster: &'c Cluster, priority: Priority) -> &'c Arc<ClusterCounts> {
        cluster
            .counts
            .0
            .get_or_init(|| self.all_of(&cluster.name))
            .at(priority)
    }
}

/// A cluster's counts, found once per routing snapshot by [`Breakers::of`]. Counts live in
/// [`Breakers`] by cluster name, so a cluster rebuilt by a new snapshot finds the same ones.
#[derive(Debug, Clone, Default)]
pub struct CountsMemo(Arc<OnceLock<PerPriority<Arc<ClusterCounts>>>>);

/// Equal whatever it remembers: a cache is not part of a cluster's value.
impl PartialEq for CountsMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for CountsMemo {}

/// One cluster's counts at one priority.
#[derive(Debug, Default)]
pub struct ClusterCounts {
    /// Requests in flight; shared with each request's `InFlight`, which gives it back.
    requests: Arc<AtomicU32>,
    pending: AtomicU32,
    connections: AtomicU32,
}

// === impl ClusterCounts ===

impl ClusterCounts {
    /// The in-flight counter (incremented when a request is sent, decremented by its
    /// `InFlight`).
    pub fn requests(&self) -> &Arc<AtomicU32> {
        &self.requests
    }

    /// Whether a new request would exceed `max_requests`.
    pub fn requests_full(&self, thresholds: &Thresholds) -> bool {
        self.requests.load(Ordering::Relaxed) >= thresholds.max_requests
    }

    /// A slot among the requests waiting for a connection, or `None` at `max_pending`.
    pub fn try_pending(self: &Arc<Self>, thresholds: &Thresholds) -> Option<BreakerSlot> {
        self.take(Kind::Pending, thresholds.max_pending)
    }

    /// A slot for one more upstream connection, or `None` at `max_connections`; the connection
    /// holds it until it closes.
    pub fn try_connection(self: &Arc<Self>, thresholds: &Thresholds) -> Option<BreakerSlot> {
        self.take(Kind::Connections, thresholds.max_connections)
    }

    /// Requests waiting for a connection now.
    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Upstream connections open now.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    fn counter(&self, kind: Kind) -> &AtomicU32 {
        match kind {
            Kind::Pending => &self.pending,
            Kind::Connections => &self.connections,
        }
    }

    fn take(self: &Arc<Self>, kind: Kind, max: u32) -> Option<BreakerSlot> {
        let counter = self.counter(kind);
        // Reserve first, give back on overshoot: exact under contention, no lock.
        if counter.fetch_add(1, Ordering::AcqRel) >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(BreakerSlot {
            counts: self.clone(),
            kind,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pending,
    Connections,
}

/// A pending request or an open connection, counted until dropped.
#[derive(Debug)]
pub struct BreakerSlot {
    counts: Arc<ClusterCounts>,
    kind: Kind,
}

impl Drop for BreakerSlot {
    fn drop(&mut self) {
        self.counts
            .counter(self.kind)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds(max: u32) -> Thresholds {
        Thresholds {
            max_requests: max,
            max_connections: max,
            max_pending: max,
        }
    }

    #[test]
    fn slots_stop_at_the_threshold_and_come_back_when_dropped() {
        let breakers = Breakers::default();
        let name: Arc<str> = Arc::from("outbound|9090||calc");
        let counts = breakers.by_name(&name, Priority::Default);
        let limits = thresholds(2);
        let first = counts.try_pending(&limits).unwrap();
        let _second = counts.try_pending(&limits).unwrap();
        assert!(counts.try_pending(&limits).is_none());
        assert_eq!(counts.pending(), 2);
        // Connections are counted apart from pending requests.
        let _connection = counts.try_connection(&limits).unwrap();
        assert_eq!(counts.connections(), 1);
        drop(first);
        assert_eq!(counts.pending(), 1);
        assert!(counts.try_pending(&limits).is_some());
        // The same cluster name and priority give the same counts.
        assert_eq!(breakers.by_name(&name, Priority::Default).connections(), 1);
    }

    #[test]
    fn a_cluster_rebuilt_by_a_new_snapshot_finds_the_same_counts() {
        let breakers = Breakers::default();
        let cluster = |port| Cluster {
            name: Arc::from(format!("outbound|{port}||calc")),
            host: "calc".into(),
            port,
            subset: String::new(),
            endpoints: Vec::new(),
            lb: crate::routing::LbPolicy::default(),
            breaker: crate::routing::CircuitBreaker::default(),
            outlier: None,
            counts: CountsMemo::default(),
        };
        let (old, rebuilt, other) = (cluster(9090), cluster(9090), cluster(9091));
        let counts = breakers.of(&old, Priority::High);
        counts.requests().fetch_add(3, Ordering::Relaxed);
        assert!(Arc::ptr_eq(breakers.of(&rebuilt, Priority::High), counts));
        assert!(Arc::ptr_eq(
            &breakers.by_name(&old.name, Priority::High),
            counts
        ));
        assert_eq!(
            breakers
                .of(&rebuilt, Priority::High)
                .requests()
                .load(Ordering::Relaxed),
            3
        );
        assert!(!Arc::ptr_eq(breakers.of(&old, Priority::Default), counts));
        assert!(!Arc::ptr_eq(breakers.of(&other, Priority::High), counts));
    }

    #[test]
    fn each_priority_counts_apart_against_its_own_thresholds() {
        let breakers = Breakers::default();
        let name: Arc<str> = Arc::from("outbound|50051||greeter");
        let default = breakers.by_name(&name, Priority::Default);
        let high = breakers.by_name(&name, Priority::High);
        // DEFAULT full at 2 requests, pending requests and connections.
        let (low, generous) = (thresholds(2), thresholds(50));
        default.requests().fetch_add(2, Ordering::Relaxed);
        let _pending = [default.try_pending(&low), default.try_pending(&low)];
        let _connections = [default.try_connection(&low), default.try_connection(&low)];
        assert!(default.requests_full(&low));
        assert!(default.try_pending(&low).is_none());
        assert!(default.try_connection(&low).is_none());
        // HIGH's counts are untouched, so HIGH requests still pass their own thresholds.
        assert!(!high.requests_full(&generous));
        assert_eq!((high.pending(), high.connections()), (0, 0));
        let slot = high.try_connection(&generous).unwrap();
        assert_eq!((default.connections(), high.connections()), (2, 1));
        // A HIGH slot gives back to HIGH.
        drop(slot);
        assert_eq!((default.connections(), high.connections()), (2, 0));
        assert!(!Arc::ptr_eq(default.requests(), high.requests()));
    }

    #[test]
    fn requests_are_full_at_max_requests() {
        let counts = Arc::new(ClusterCounts::default());
        let limits = thresholds(1);
        assert!(!counts.requests_full(&limits));
        counts.requests().fetch_add(1, Ordering::Relaxed);
        assert!(counts.requests_full(&limits));
    }

    #[test]
    fn a_zero_threshold_refuses_everything() {
        let counts = Arc::new(ClusterCounts::default());
        assert!(counts.try_connection(&thresholds(0)).is_none());
        assert_eq!(counts.connections(), 0);
    }
}
