//! The routing snapshot: an immutable, versioned value holding every cluster and every Dubbo and
//! Thrift route table. A pure library: no I/O, no clocks, no shared state.
//!
//! Whoever builds snapshots (the local config today, the xDS client next) publishes a whole new
//! one; requests read the snapshot that was current when they arrived and finish on it, so a
//! route or endpoint change never disturbs a request in flight.

pub mod cluster;
pub mod dubbo;
pub mod http;
pub mod meta_policy;
pub mod priority;
pub mod thrift;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::fasthash::FastMap;
use crate::isolation::AdmissionPolicy;

pub use cluster::{
    Cluster, Endpoint, EndpointLabels, HashOn, LbPolicy, Locality, OutlierPolicy, cluster_name,
};
pub use dubbo::{
    DubboAttributes, DubboRoute, DubboRouteTable, ServiceMatch, TableLabels, WeightedClusters,
};
pub use http::{HttpAttributes, HttpRoute, HttpRouteTable, HttpTableLabels, PathMatch};
pub use priority::{CircuitBreaker, PerPriority, Priority, Thresholds};
pub use thrift::{ThriftAttributes, ThriftRoute, ThriftRouteTable, ThriftTables};

/// Java writes `0.0.0` when a reference has no version and `null` is possible from other
/// clients: all mean "no version".
pub fn normalize_version(version: Option<&str>) -> &str {
    match version {
        None | Some("0.0.0") => "",
        Some(v) => v,
    }
}

/// Everything a request needs to be routed, at one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Identifies the snapshot (content hash or xDS version); shown on `/config_dump`.
    pub version: String,
    /// Clusters by name.
    pub clusters: BTreeMap<Arc<str>, Arc<Cluster>>,
    /// Dubbo route tables by interface, most specific (group and version set) first.
    pub dubbo: BTreeMap<String, Vec<Arc<DubboRouteTable>>>,
    /// Thrift route tables by host (Thrift calls name no interface the Dubbo tables could key).
    pub thrift: ThriftTables,
    /// Per interface: whether routing needs the attachments (derived, so not dumped).
    #[serde(skip)]
    index: FastMap<String, bool>,
    /// HTTP and gRPC route tables by name (`<host>:<port>`); see [`Snapshot::with_http`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub http: BTreeMap<String, Arc<HttpRouteTable>>,
    /// HTTP tables by domain (derived, so not dumped).
    #[serde(skip)]
    domains: FastMap<String, Arc<HttpRouteTable>>,
    /// Admission policies (traffic classes, local rate limit) by host; see
    /// [`Snapshot::with_admission`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub admission: BTreeMap<String, Arc<AdmissionPolicy>>,
}

// === impl Snapshot ===

impl Snapshot {
    /// Builds a snapshot from clusters and route tables. Tables are ordered by specificity, then
    /// by name, so the same input always gives the same snapshot.
    pub fn new(
        version: String,
        clusters: impl IntoIterator<Item = Cluster>,
        tables: impl IntoIterator<Item = DubboRouteTable>,
    ) -> Self {
        let clusters: BTreeMap<Arc<str>, Arc<Cluster>> = clusters
            .into_iter()
            .map(|c| (c.name.clone(), Arc::new(c)))
            .collect();
        let mut dubbo: BTreeMap<String, Vec<Arc<DubboRouteTable>>> = BTreeMap::new();
        for table in tables {
            dubbo
                .entry(table.service.interface.clone())
                .or_default()
                .push(Arc::new(table));
        }
        for tables in dubbo.values_mut() {
            tables.sort_by(|a, b| {
                b.service
                    .specificity()
                    .cmp(&a.service.specificity())
                    .then_with(|| a.name.cmp(&b.name))
            });
        }
        let index = dubbo
            .iter()
            .map(|(interface, tables)| {
                // Group-specific tables read the `group` attachment; attachment matches and
                // clusters hashing on an attachment read theirs.
                let needs = tables.iter().any(|t| {
                    t.service.group.is_some()
                        || t.needs_attachments()
                        || t.routes.iter().any(|r| {
                            r.destinations.entries().iter().any(|(name, _)| {
                                clusters.get(name).is_some_and(|c: &Arc<Cluster>| {
                                    matches!(c.lb, LbPolicy::ConsistentHash(HashOn::Attachment(_)))
                                })
                            })
                        })
                });
                (interface.clone(), needs)
            })
            .collect();
        Self {
            version,
            clusters,
            dubbo,
            thrift: ThriftTables::default(),
            index,
            http: BTreeMap::new(),
            domains: FastMap::default(),
            admission: BTreeMap::new(),
        }
    }

    /// The same snapshot with these admission policies by host. Interfaces of a host whose
    /// classes or buckets look at attachments now need them.
    #[must_use]
    pub fn with_admission(
        mut self,
        policies: impl IntoIterator<Item = (String, AdmissionPolicy)>,
    ) -> Self {
        self.admission = policies
            .into_iter()
            .map(|(host, policy)| (host, Arc::new(policy)))
            .collect();
        for (interface, tables) in &self.dubbo {
            let reads = tables.iter().any(|t| {
                self.admission
                    .get(&t.host)
                    .is_some_and(|p| p.needs_attachments())
            });
            if reads {
                self.index.insert(interface.clone(), true);
            }
        }
        self
    }

    /// The admission policy of `host`, if it has one.
    pub fn admission(&self, host: &str) -> Option<&Arc<AdmissionPolicy>> {
        self.admission.get(host)
    }

    /// How many requests `host` takes at once per routing priority, for overload shedding: the
    /// priority's request limit of its all-endpoints cluster on `port` (else of `fallback`, the
    /// routed cluster), scaled by the share of its endpoints that are healthy.
    pub fn host_capacity(&self, host: &str, port: u16, fallback: &Cluster) -> PerPriority<u32> {
        let cluster = self
            .cluster(&cluster_name(port, "", host))
            .map_or(fallback, |c| c.as_ref());
        let total = cluster.endpoints.len() as u64;
        let healthy = cluster.endpoints.iter().filter(|e| e.healthy).count() as u64;
        cluster.breaker.thresholds.map(|thresholds| {
            if total == 0 {
                return thresholds.max_requests;
            }
            u32::try_from(u64::from(thresholds.max_requests) * healthy / total).unwrap_or(u32::MAX)
        })
    }

    /// The same snapshot with these Thrift route tables.
    #[must_use]
    pub fn with_thrift(mut self, tables: impl IntoIterator<Item = ThriftRouteTable>) -> Self {
        self.thrift = ThriftTables::new(tables);
        self
    }

    /// Adds HTTP and gRPC route tables. When two tables claim a domain (a host with two HTTP
    /// ports, both answering `<host>`), the first by name keeps it; `<host>:<port>` stays exact.
    pub fn with_http(mut self, tables: impl IntoIterator<Item = HttpRouteTable>) -> Self {
        for table in tables {
            self.http.insert(table.name.clone(), Arc::new(table));
        }
        self.domains.clear();
        for table in self.http.values() {
            for domain in &table.domains {
                self.domains
                    .entry(domain.to_ascii_lowercase())
                    .or_insert_with(|| table.clone());
            }
        }
        self
    }

    /// The HTTP route table for a request's authority (`Host` or `:authority`, with or without
    /// port): an exact domain first, then the host part alone.
    pub fn http_table(&self, authority: &str) -> Option<&Arc<HttpRouteTable>> {
        let authority = authority.trim().to_ascii_lowercase();
        let authority = authority.strip_suffix('.').unwrap_or(&authority);
        self.domains
            .get(authority)
            .or_else(|| self.domains.get(http::authority_host(authority)))
    }

    /// A cluster by name.
    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name)
    }

    /// Whether routing a request for `interface` needs its attachments (a group-specific table
    /// or an attachment match). When `false` the caller can skip parsing past the arguments.
    pub fn needs_attachments(&self, interface: &str) -> bool {
        self.index.get(interface).copied().unwrap_or(false)
    }

    /// `true` when some table serves `interface`, whatever its group and version.
    pub fn knows_interface(&self, interface: &str) -> bool {
        self.dubbo.contains_key(interface)
    }

    /// The route table for a request: the most specific table of the interface whose group and
    /// version accept the request's (empty = none; see [`normalize_version`]).
    pub fn dubbo_table(
        &self,
        interface: &str,
        group: &str,
        version: &str,
    ) -> Option<&Arc<DubboRouteTable>> {
        self.dubbo
            .get(interface)?
            .iter()
            .find(|t| t.service.matches(group, version))
    }
}
