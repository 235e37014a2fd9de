//! Dubbo route tables: for an (interface, group, version) an ordered list of routes, each matching
//! the method and attachments (MetaRouter semantics) and sending to weighted clusters. The first
//! matching route wins; no match means no route.
//!
//! The shape mirrors Envoy's `dubbo_proxy.v3.RouteConfiguration` (interface, group, version, routes
//! with a method match, header matches and weighted clusters), which is what the bridge serves.

use std::sync::Arc;

use causeway_protocols::rules::common::StringMatch;
use serde::Serialize;

use super::http::MirrorSpec;
use super::meta_policy::MetaPolicy;

/// Which service a route table serves. `None` in group or version matches any value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceMatch {
    /// The exact interface name (case preserved).
    pub interface: String,
    /// The Dubbo group; `None` matches any.
    pub group: Option<String>,
    /// The Dubbo service version; `None` matches any.
    pub version: Option<String>,
}

// === impl ServiceMatch ===

impl ServiceMatch {
    /// Whether a request with this group and version (empty = none) is for the service.
    pub fn matches(&self, group: &str, version: &str) -> bool {
        self.group.as_deref().is_none_or(|g| g == group)
            && self.version.as_deref().is_none_or(|v| v == version)
    }

    /// How specific the match is: tables naming group and version win over wildcards.
    pub fn specificity(&self) -> u8 {
        u8::from(self.group.is_some()) + u8::from(self.version.is_some())
    }
}

/// Clusters and their weights. Weights are relative; zero-weight entries never receive traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WeightedClusters {
    entries: Vec<(Arc<str>, u32)>,
    total: u64,
}

// === impl WeightedClusters ===

impl WeightedClusters {
    /// From `(cluster, weight)` pairs; zero weights are dropped.
    pub fn new(entries: impl IntoIterator<Item = (Arc<str>, u32)>) -> Self {
        let entries: Vec<(Arc<str>, u32)> = entries.into_iter().filter(|(_, w)| *w > 0).collect();
        let total = entries.iter().map(|(_, w)| u64::from(*w)).sum();
        Self { entries, total }
    }

    /// One cluster taking all traffic.
    pub fn single(cluster: Arc<str>) -> Self {
        Self::new([(cluster, 1)])
    }

    /// The entries.
    pub fn entries(&self) -> &[(Arc<str>, u32)] {
        &self.entries
    }

    /// `true` when no cluster can receive traffic.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cluster for a uniformly random `roll`: each cluster is chosen with probability
    /// weight / total.
    pub fn pick(&self, roll: u64) -> Option<&Arc<str>> {
        if self.total == 0 {
            return None;
        }
        let mut point = roll % self.total;
        for (cluster, weight) in &self.entries {
            let weight = u64::from(*weight);
            if point < weight {
                return Some(cluster);
            }
            point -= weight;
        }
        None
    }
}

/// One route: all conditions must hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DubboRoute {
    /// Name for logs and the config dump.
    pub name: String,
    /// Method condition; `None` matches every method.
    pub method: Option<StringMatch>,
    /// Attachment conditions (key → match; `Present` only checks the key exists).
    pub attachments: Vec<(String, StringMatch)>,
    /// Where matching requests go.
    pub destinations: WeightedClusters,
    /// Attachments set on the request before it is forwarded (MetaRouter `requestMutation`).
    pub request_mutation: Vec<(String, String)>,
    /// Clusters a share of the requests is copied to, fire-and-forget (MetaRouter `mirror`,
    /// `requestMirrorPolicies`).
    pub mirrors: Vec<MirrorSpec>,
    /// Timeout, retries and fault injection.
    pub policy: MetaPolicy,
}

/// What routing needs to know about a request.
pub trait DubboAttributes {
    /// The method (for generic calls, the real method in argument 1).
    fn method(&self) -> &str;
    /// A string attachment's value.
    fn attachment(&self, key: &str) -> Option<&str>;
}

// === impl DubboRoute ===

impl DubboRoute {
    /// Whether the request satisfies every condition.
    pub fn matches(&self, request: &impl DubboAttributes) -> bool {
        self.method
            .as_ref()
            .is_none_or(|m| m.matches(request.method()))
            && self.attachments.iter().all(|(key, m)| {
                request
                    .attachment(key)
                    .is_some_and(|value| m.matches(value))
            })
    }
}

/// The routes of one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DubboRouteTable {
    /// Name (the bridge names its route configurations `<host>:<port>`).
    pub name: String,
    /// The service host (a metric label: `destination_service`).
    pub host: String,
    /// Which requests the table serves.
    pub service: ServiceMatch,
    /// Ordered routes; first match wins.
    pub routes: Vec<DubboRoute>,
    /// Methods the provider advertises: the only values `request_method` may take (others are
    /// counted as `other`, so a caller cannot blow up metric cardinality).
    pub methods: Vec<String>,
    /// The metric label values of this table.
    #[serde(skip)]
    pub metric_labels: TableLabels,
}

/// A route table's metric label values, made once per snapshot so a request clones them instead
/// of allocating its own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableLabels {
    /// `destination_service`: the host.
    pub host: Arc<str>,
    /// `destination_interface`.
    pub interface: Arc<str>,
    /// `request_method` values, parallel to [`DubboRouteTable::methods`].
    pub methods: Vec<Arc<str>>,
    /// `request_method` for any other method.
    pub other: Arc<str>,
}

impl TableLabels {
    /// The values for a table of `host` serving `interface` with the advertised `methods`.
    pub fn new(host: &str, interface: &str, methods: &[String]) -> Self {
        Self {
            host: Arc::from(host),
            interface: Arc::from(interface),
            methods: methods.iter().map(|m| Arc::from(m.as_str())).collect(),
            other: Arc::from("other"),
        }
    }
}

// === impl DubboRouteTable ===

impl DubboRouteTable {
    /// The first route the request matches.
    pub fn route(&self, request: &impl DubboAttributes) -> Option<&DubboRoute> {
        self.routes.iter().find(|route| route.matches(request))
    }

    /// Whether any route needs attachments (so the caller must parse past the arguments).
    pub fn needs_attachments(&self) -> bool {
        self.routes.iter().any(|r| !r.attachments.is_empty())
    }

    /// [`Self::method_label`] as the shared label value.
    pub fn method_label_value(&self, method: &str) -> Arc<str> {
        self.methods
            .iter()
            .position(|m| m.as_str() == method)
            .and_then(|i| self.metric_labels.methods.get(i))
            .unwrap_or(&self.metric_labels.other)
            .clone()
    }

    /// The `request_method` label for `method`: itself if advertised, else `other`.
    pub fn method_label(&self, method: &str) -> &str {
        self.methods
            .iter()
            .find(|m| m.as_str() == method)
            .map_or("other", String::as_str)
    }
}
