//! Istio's `DestinationRule` (`networking.istio.io/v1`, also `v1beta1` and `v1alpha3`): subsets of
//! a host's endpoints selected by endpoint labels, and the traffic policy (load balancing,
//! connection pool, outlier detection) for the host and per subset.
//!
//! Only the fields below are accepted; anything Causeway does not enforce (`tls`,
//! `portLevelSettings`, `exportTo`, …) is rejected rather than silently ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::common::{RuleDuration, check_host, check_label_name};
use super::error::{Issues, field, index};
use super::resource::RuleKind;

/// The body of a DestinationRule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The host the rule applies to (exact, or a `*.suffix` wildcard).
    pub host: String,
    /// The policy for the whole host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named subsets of the host's endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
}

impl RuleKind for DestinationRuleSpec {
    const KIND: &'static str = "DestinationRule";
    const API_VERSIONS: &'static [&'static str] = &[
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ];
}

impl DestinationRuleSpec {
    /// The subset called `name`.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|subset| subset.name == name)
    }

    /// The policy in force for `subset` (or the host when `None`): the subset's own policy
    /// replaces the host's field by field (load balancer, connection pool, outlier detection),
    /// as in Istio.
    pub fn effective_policy(&self, subset: Option<&str>) -> TrafficPolicy {
        let host = self.traffic_policy.clone().unwrap_or_default();
        let Some(own) = subset
            .and_then(|name| self.subset(name))
            .and_then(|subset| subset.traffic_policy.as_ref())
        else {
            return host;
        };
        TrafficPolicy {
            load_balancer: own.load_balancer.clone().or(host.load_balancer),
            connection_pool: own.connection_pool.clone().or(host.connection_pool),
            outlier_detection: own.outlier_detection.clone().or(host.outlier_detection),
        }
    }

    pub(crate) fn validate(&self, issues: &mut Issues) {
        issues.check("host", check_host(&self.host, true));
        if let Some(policy) = &self.traffic_policy {
            policy.validate(issues, "trafficPolicy");
        }
        let mut seen = BTreeSet::new();
        for (i, subset) in self.subsets.iter().enumerate() {
            let at = index("subsets", i);
            issues.check(field(&at, "name"), check_label_name(&subset.name));
            if !seen.insert(subset.name.as_str()) {
                issues.add(
                    field(&at, "name"),
                    format!("duplicate subset name `{}`", subset.name),
                );
            }
            if subset.labels.keys().any(String::is_empty) {
                issues.add(field(&at, "labels"), "label keys must not be empty");
            }
            if let Some(policy) = &subset.traffic_policy {
                policy.validate(issues, &field(&at, "trafficPolicy"));
            }
        }
    }
}

/// A named group of the host's endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Subset {
    /// The subset name routes refer to (a DNS-1123 label).
    pub name: String,
    /// Endpoints whose labels include all of these belong to the subset.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Overrides of the host's policy for this subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

impl Subset {
    /// Whether an endpoint with `labels` belongs to the subset.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }
}

/// Load balancing, connection limits and outlier detection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// How endpoints are chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Circuit-breaker thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
}

impl TrafficPolicy {
    fn validate(&self, issues: &mut Issues, path: &str) {
        if let Some(lb) = &self.load_balancer
            && let Some(locality) = &lb.locality_lb_setting
        {
            locality.validate(issues, &field(path, "loadBalancer.localityLbSetting"));
        }
        if let Some(pool) = &self.connection_pool {
            let at = field(path, "connectionPool");
            if let Some(timeout) = pool.tcp.as_ref().and_then(|tcp| tcp.connect_timeout) {
                issues.check(field(&at, "tcp.connectTimeout"), at_least_1ms(timeout));
            }
        }
        if let Some(outlier) = &self.outlier_detection {
            let at = field(path, "outlierDetection");
            if let Some(interval) = outlier.interval {
                issues.check(field(&at, "interval"), at_least_1ms(interval));
            }
            if let Some(time) = outlier.base_ejection_time {
                issues.check(field(&at, "baseEjectionTime"), at_least_1ms(time));
            }
            for (name, value) in [
                ("maxEjectionPercent", outlier.max_ejection_percent),
                ("minHealthPercent", outlier.min_health_percent),
            ] {
                if let Some(value) = value.filter(|v| *v > 100) {
                    issues.add(
                        field(&at, name),
                        format!("percentage {value} is outside 0..100"),
                    );
                }
            }
        }
    }
}

fn at_least_1ms(duration: RuleDuration) -> Result<(), String> {
    if duration.get() >= std::time::Duration::from_millis(1) {
        Ok(())
    } else {
        Err(format!("must be at least 1ms, got {duration}"))
    }
}

/// Istio's `LoadBalancerSettings`: a simple policy or a consistent hash (not both), plus locality
/// settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLoadBalancer", rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// The policy, when one is given.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub policy: Option<LbPolicy>,
    /// Locality-aware distribution and failover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLbSetting>,
}

/// How an endpoint is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LbPolicy {
    /// A standard algorithm.
    Simple(SimpleLb),
    /// Sticky sessions by a request property.
    ConsistentHash(ConsistentHashLb),
}

/// Istio's `SimpleLB` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Let the proxy choose (Causeway: least request).
    Unspecified,
    /// Round robin.
    RoundRobin,
    /// Least outstanding requests (`LEAST_CONN` is Istio's deprecated spelling).
    #[serde(alias = "LEAST_CONN")]
    LeastRequest,
    /// Uniformly random.
    Random,
    /// Forward to the address the caller asked for.
    Passthrough,
}

/// Consistent-hash load balancing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHashLb {
    /// What is hashed.
    #[serde(flatten)]
    pub key: HashKey,
    /// Minimum number of virtual nodes on the ring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// The request property a consistent hash uses. For Dubbo and Thrift, `httpHeaderName` names a
/// request attribute (e.g. `method` or an attachment), as Aeraki does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HashKey {
    /// A header (or meta-protocol attribute).
    HttpHeaderName(String),
    /// A cookie, created by the proxy when absent.
    HttpCookie(HttpCookie),
    /// The caller's IP address (always `true` when present).
    UseSourceIp(bool),
    /// A URL query parameter.
    HttpQueryParameterName(String),
}

/// Istio's `HTTPCookie`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpCookie {
    /// Cookie name.
    pub name: String,
    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Lifetime of a generated cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<RuleDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLoadBalancer {
    #[serde(default)]
    simple: Option<SimpleLb>,
    #[serde(default)]
    consistent_hash: Option<RawConsistentHash>,
    #[serde(default)]
    locality_lb_setting: Option<LocalityLbSetting>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConsistentHash {
    #[serde(default)]
    http_header_name: Option<String>,
    #[serde(default)]
    http_cookie: Option<HttpCookie>,
    #[serde(default)]
    use_source_ip: Option<bool>,
    #[serde(default)]
    http_query_parameter_name: Option<String>,
    #[serde(default)]
    minimum_ring_size: Option<u64>,
}

impl TryFrom<RawLoadBalancer> for LoadBalancerSettings {
    type Error = String;

    fn try_from(raw: RawLoadBalancer) -> Result<Self, String> {
        let policy = match (raw.simple, raw.consistent_hash) {
            (Some(_), Some(_)) => {
                return Err("give `simple` or `consistentHash`, not both".to_owned());
            }
            (Some(simple), None) => Some(LbPolicy::Simple(simple)),
            (None, Some(hash)) => Some(LbPolicy::ConsistentHash(hash.try_into()?)),
            (None, None) => None,
        };
        Ok(Self {
            policy,
            locality_lb_setting: raw.locality_lb_setting,
        })
    }
}

impl TryFrom<RawConsistentHash> for ConsistentHashLb {
    type Error = String;

    fn try_from(raw: RawConsistentHash) -> Result<Self, String> {
        let mut keys = Vec::new();
        if let Some(name) = raw.http_header_name {
            keys.push(HashKey::HttpHeaderName(name));
        }
        if let Some(cookie) = raw.http_cookie {
            keys.push(HashKey::HttpCookie(cookie));
        }
        if raw.use_source_ip == Some(true) {
            keys.push(HashKey::UseSourceIp(true));
        }
        if let Some(name) = raw.http_query_parameter_name {
            keys.push(HashKey::HttpQueryParameterName(name));
        }
        let only_one = "give exactly one of `httpHeaderName`, `httpCookie`, `useSourceIp: true` \
                        and `httpQueryParameterName`";
        if keys.len() != 1 {
            return Err(only_one.to_owned());
        }
        let key = keys.remove(0);
        let empty_name = match &key {
            HashKey::HttpHeaderName(name) | HashKey::HttpQueryParameterName(name) => {
                name.is_empty()
            }
            HashKey::HttpCookie(cookie) => cookie.name.is_empty(),
            HashKey::UseSourceIp(_) => false,
        };
        if empty_name {
            return Err("the hashed header, cookie or parameter name must not be empty".to_owned());
        }
        if raw.minimum_ring_size == Some(0) {
            return Err("minimumRingSize must be positive".to_owned());
        }
        Ok(Self {
            key,
            minimum_ring_size: raw.minimum_ring_size,
        })
    }
}

/// Istio's `LocalityLoadBalancerSetting`. Localities are `region/zone/subzone`; in `distribute`
/// a trailing `*` segment matches any value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalityLbSetting {
    /// Turns locality-aware load balancing on or off (on when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Explicit traffic shares per origin locality.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    /// Where traffic from a region goes when its own endpoints are unhealthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// Endpoint label keys that order failover priorities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
}

/// Traffic from `from` is spread over the `to` localities by weight (summing to 100).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalityDistribute {
    /// Origin locality.
    pub from: String,
    /// Destination locality → weight.
    pub to: BTreeMap<String, u32>,
}

/// Failover from one region to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalityFailover {
    /// Origin region.
    pub from: String,
    /// Region to fail over to.
    pub to: String,
}

impl LocalityLbSetting {
    fn validate(&self, issues: &mut Issues, path: &str) {
        if !self.distribute.is_empty() && !self.failover.is_empty() {
            issues.add(
                field(path, "failover"),
                "`distribute` and `failover` cannot both be set",
            );
        }
        for (i, rule) in self.distribute.iter().enumerate() {
            let at = index(&field(path, "distribute"), i);
            issues.check(field(&at, "from"), check_locality(&rule.from, true));
            for locality in rule.to.keys() {
                issues.check(field(&at, "to"), check_locality(locality, true));
            }
            let sum: u64 = rule.to.values().map(|w| u64::from(*w)).sum();
            if sum != 100 {
                issues.add(
                    field(&at, "to"),
                    format!("weights sum to {sum}, expected 100"),
                );
            }
        }
        for (i, rule) in self.failover.iter().enumerate() {
            let at = index(&field(path, "failover"), i);
            for (name, region) in [("from", &rule.from), ("to", &rule.to)] {
                if region.is_empty() || region.contains('/') || region.contains('*') {
                    issues.add(
                        field(&at, name),
                        format!("`{region}` is not a region (failover names regions only)"),
                    );
                }
            }
            if rule.from == rule.to {
                issues.add(
                    field(&at, "to"),
                    format!("failover from `{}` to itself", rule.from),
                );
            }
        }
        for (i, key) in self.failover_priority.iter().enumerate() {
            if key.is_empty() {
                issues.add(
                    index(&field(path, "failoverPriority"), i),
                    "label key must not be empty",
                );
            }
        }
    }
}

/// `region[/zone[/subzone]]`, non-empty segments; `*` only as the whole last segment.
fn check_locality(locality: &str, wildcard: bool) -> Result<(), String> {
    let segments: Vec<&str> = locality.split('/').collect();
    let last = segments.len() - 1;
    let valid = segments.len() <= 3
        && segments.iter().enumerate().all(|(i, segment)| {
            !segment.is_empty()
                && (!segment.contains('*') || (wildcard && i == last && *segment == "*"))
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{locality}` is not a locality (`region[/zone[/subzone]]`, `*` only as the last \
             segment)"
        ))
    }
}

/// Istio's `ConnectionPoolSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    /// Connection-level limits (all protocols).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// Request-level limits (HTTP, gRPC, and Causeway's Dubbo/Thrift pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

// === impl ConnectionPoolSettings ===

impl ConnectionPoolSettings {
    /// The circuit-breaker thresholds this pool sets, as Envoy's `circuit_breakers.thresholds`
    /// name them; unset ones are left to the data plane's defaults.
    pub fn breaker_limits(&self) -> BreakerLimits {
        let tcp = self.tcp.as_ref();
        let http = self.http.as_ref();
        BreakerLimits {
            max_connections: tcp.and_then(|t| t.max_connections),
            max_pending_requests: http.and_then(|h| h.http1_max_pending_requests),
            max_requests: http.and_then(|h| h.http2_max_requests),
            max_retries: http.and_then(|h| h.max_retries),
        }
    }
}

/// The circuit-breaker thresholds of one routing priority that a connection pool sets (`None`:
/// not set). The single place that says which `connectionPool` fields feed the breakers, so the
/// bridge's CDS and the proxy's local mode cannot disagree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerLimits {
    /// `tcp.maxConnections`.
    pub max_connections: Option<u32>,
    /// `http.http1MaxPendingRequests`.
    pub max_pending_requests: Option<u32>,
    /// `http.http2MaxRequests`.
    pub max_requests: Option<u32>,
    /// `http.maxRetries`.
    pub max_retries: Option<u32>,
}

impl BreakerLimits {
    /// Whether no threshold is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Connection-level limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpSettings {
    /// Maximum connections to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Connect timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<RuleDuration>,
}

/// Request-level limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpSettings {
    /// Maximum requests queued while waiting for a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<u32>,
    /// Maximum concurrent requests to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<u32>,
    /// Requests per connection before it is recycled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
    /// Maximum concurrent retries to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Idle time after which a connection is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<RuleDuration>,
}

/// Istio's `OutlierDetection`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Consecutive 5xx (or protocol error) responses before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Consecutive gateway errors (502/503/504, connect failures) before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Time between ejection sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<RuleDuration>,
    /// Minimum ejection duration (multiplied by the number of ejections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<RuleDuration>,
    /// Maximum share of endpoints ejected at once, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Outlier detection is off while fewer than this share of endpoints are healthy, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<u32>,
}
