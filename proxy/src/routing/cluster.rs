//! Clusters: a named set of endpoints (address, weight, health, locality, priority, labels) with
//! the load-balancing policy and circuit-breaker thresholds (per routing priority, see
//! [`super::priority`]) that apply to them.
//!
//! Names follow Istio: `outbound|<port>|<subset>|<host>`, an empty subset meaning every endpoint
//! of the host. That is also what the bridge's CDS serves, so xDS clusters map one to one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use super::priority::CircuitBreaker;

/// The Istio-style cluster name for a host's port and subset (empty subset = all endpoints).
pub fn cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// A `region/zone/subzone` locality; missing parts are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Locality {
    /// Region, e.g. `eu-central-1`.
    pub region: String,
    /// Zone, e.g. `eu-central-1a`.
    pub zone: String,
    /// Sub-zone (rack, cell).
    pub subzone: String,
}

// === impl Locality ===

impl Locality {
    /// Parses `region[/zone[/subzone]]`; the empty string is the unknown locality.
    pub fn parse(text: &str) -> Self {
        let mut parts = text.splitn(3, '/').map(str::to_owned);
        Self {
            region: parts.next().unwrap_or_default(),
            zone: parts.next().unwrap_or_default(),
            subzone: parts.next().unwrap_or_default(),
        }
    }

    /// `true` when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty() && self.zone.is_empty() && self.subzone.is_empty()
    }

    /// Failover priority of an endpoint in `self` as seen from a proxy in `from`: 0 same
    /// subzone, 1 same zone, 2 same region, 3 elsewhere (Istio's default tiers). An unknown
    /// locality on either side gives 0: without locality information every endpoint is local.
    pub fn priority_from(&self, from: &Locality) -> u32 {
        if from.is_empty() || self.is_empty() {
            return 0;
        }
        if self.region != from.region {
            3
        } else if self.zone != from.zone {
            2
        } else if self.subzone != from.subzone {
            1
        } else {
            0
        }
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.region, self.zone, self.subzone)
    }
}

/// One endpoint of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Where to connect.
    pub address: SocketAddr,
    /// Load-balancing weight (at least 1).
    pub weight: u32,
    /// `false` when the control plane (or the config) marks it unhealthy.
    pub healthy: bool,
    /// Where it runs.
    pub locality: Locality,
    /// Failover tier: lower is preferred; higher tiers take traffic only when every lower tier
    /// has no usable endpoint.
    pub priority: u32,
    /// Labels (`version`, `app`, ...), used for subsets and metric labels.
    pub labels: BTreeMap<String, String>,
    /// The metric label values taken from `labels`.
    #[serde(skip)]
    pub metric_labels: EndpointLabels,
}

/// An endpoint's metric label values (`destination_version`, `destination_workload`,
/// `destination_locality`, `priority`), made once per snapshot so a request clones them instead of
/// allocating its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointLabels {
    /// The `version` label, else `unknown`.
    pub version: Arc<str>,
    /// The `app` label, else `unknown`.
    pub app: Arc<str>,
    /// The locality, `region/zone/subzone` (empty parts left empty).
    pub locality: Arc<str>,
    /// The failover priority, as a label value.
    pub priority: Arc<str>,
    /// This endpoint's `causeway_proxy_upstream_requests_total` series, found on its first
    /// request and kept for the snapshot's life (see [`crate::metrics::SeriesHandle`]).
    pub upstream_series: crate::metrics::SeriesHandle,
}

impl EndpointLabels {
    /// The values for an endpoint with `labels` in `locality` at failover `priority`.
    pub fn of(labels: &BTreeMap<String, String>, locality: &Locality, priority: u32) -> Self {
        let get = |key: &str| Arc::from(labels.get(key).map_or("unknown", String::as_str));
        Self {
            version: get("version"),
            app: get("app"),
            locality: Arc::from(locality.to_string()),
            priority: Arc::from(priority.to_string()),
            upstream_series: crate::metrics::SeriesHandle::default(),
        }
    }
}

/// What a consistent hash is computed from, for Dubbo requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    /// The method name.
    Method,
    /// The interface name.
    Interface,
    /// An attachment's value (requests without it hash on nothing, i.e. spread randomly).
    Attachment(String),
}

/// How an endpoint is chosen within the preferred priority tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Weighted power of two choices on in-flight requests × latency EWMA (the default).
    #[default]
    LeastRequest,
    /// Weighted round robin.
    RoundRobin,
    /// Weighted random.
    Random,
    /// Consistent (rendezvous) hash of a request property.
    ConsistentHash(HashOn),
}

/// Outlier detection of a cluster (Envoy's `OutlierDetection`, Istio's `outlierDetection`):
/// endpoints that fail consecutively are ejected for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutlierPolicy {
    /// Consecutive errors (a protocol's 5xx class, gateway errors included) before ejection;
    /// `None` when not enforced.
    pub consecutive_errors: Option<u32>,
    /// Consecutive gateway errors (connect failure, reset, timeout, 502/503/504,
    /// UNAVAILABLE) before ejection; `None` when not enforced.
    pub consecutive_gateway_errors: Option<u32>,
    /// How often ejections are reviewed and published, in milliseconds.
    pub interval_ms: u64,
    /// The first ejection's length; the n-th ejection lasts n times as long (capped).
    pub base_ejection_ms: u64,
    /// Share of the cluster's endpoints that may be ejected at once (at least one always may).
    pub max_ejection_percent: u32,
}

impl Default for OutlierPolicy {
    /// Envoy's defaults: 5 consecutive errors enforced, gateway errors counted but not
    /// enforced, 10 s interval, 30 s base ejection, at most 10 % ejected.
    fn default() -> Self {
        Self {
            consecutive_errors: Some(5),
            consecutive_gateway_errors: None,
            interval_ms: 10_000,
            base_ejection_ms: 30_000,
            max_ejection_percent: 10,
        }
    }
}

/// A named set of endpoints and how traffic is spread over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    /// `outbound|<port>|<subset>|<host>`.
    pub name: Arc<str>,
    /// The service host.
    pub host: String,
    /// The service port.
    pub port: u16,
    /// The subset (empty for all endpoints).
    pub subset: String,
    /// Endpoints, in a stable order.
    pub endpoints: Vec<Endpoint>,
    /// Endpoint choice.
    pub lb: LbPolicy,
    /// Circuit-breaker thresholds, per routing priority, and the connect timeout.
    pub breaker: CircuitBreaker,
    /// Outlier detection (`None`: only connect failures eject).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier: Option<OutlierPolicy>,
    /// The circuit-breaker counts, once looked up (`Breakers::of`).
    #[serde(skip)]
    pub counts: crate::resilience::breaker::CountsMemo,
}
