//! CDS: one EDS cluster per (host, port, subset), with the DestinationRule's traffic policy for
//! that subset — load balancing, circuit-breaker thresholds and outlier detection.
//!
//! Circuit breakers have one thresholds entry per Envoy routing priority: DEFAULT from the
//! subset's `connectionPool`, HIGH from the host's TrafficIsolation `highPriorityConnectionPool`
//! (the same on every cluster of the host, like the isolation classes that choose it).
//!
//! Load balancing is expressed as `load_balancing_policy`, a list of typed policies of which a
//! client uses the first it supports: an unset or `LEAST_REQUEST` policy lists least-request
//! first and round robin after it, so Envoy and causeway-proxy balance by outstanding requests
//! while proxyless gRPC clients, which do not implement least-request, fall back to round robin
//! instead of rejecting the cluster.

use causeway_protocols::rules::destination_rule::{
    BreakerLimits, ConnectionPoolSettings, DestinationRuleSpec, HashKey, LbPolicy,
    OutlierDetection as RuleOutlier, SimpleLb, TrafficPolicy,
};
use causeway_protocols::xds_ext::{SERVICE_EXTRAS_KEY, ServiceExtras};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, LoadBalancingPolicy, OutlierDetection, circuit_breakers, cluster,
    load_balancing_policy,
};
use envoy_types::pb::envoy::config::core::v3::{Metadata, RoutingPriority, TypedExtensionConfig};
use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
use envoy_types::pb::envoy::extensions::load_balancing_policies::random::v3::Random;
use envoy_types::pb::envoy::extensions::load_balancing_policies::ring_hash::v3::RingHash;
use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
use envoy_types::pb::envoy::r#type::v3::Percent as PbPercent;
use envoy_types::pb::google::protobuf::{Any, UInt32Value, UInt64Value};
use envoy_types::util::pack_any;

use super::ads;
use super::matchers::duration;

/// Connect timeout when the rules give none: short, because a provider that does not accept
/// within a second is better skipped for another endpoint.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The traffic policy for `subset` (empty: the whole host): the subset's own settings override
/// the rule's top-level ones field by field, as Istio merges them.
pub fn effective_policy(rule: Option<&DestinationRuleSpec>, subset: &str) -> TrafficPolicy {
    let Some(rule) = rule else {
        return TrafficPolicy::default();
    };
    let mut policy = rule.traffic_policy.clone().unwrap_or_default();
    let own = rule
        .subsets
        .iter()
        .find(|s| s.name == subset)
        .and_then(|s| s.traffic_policy.as_ref());
    if let Some(own) = own {
        if own.load_balancer.is_some() {
            policy.load_balancer.clone_from(&own.load_balancer);
        }
        if own.connection_pool.is_some() {
            policy.connection_pool.clone_from(&own.connection_pool);
        }
        if own.outlier_detection.is_some() {
            policy.outlier_detection.clone_from(&own.outlier_detection);
        }
    }
    policy
}

/// The consistent-hash key of `policy`, when it hashes.
pub fn hash_key(policy: &TrafficPolicy) -> Option<HashKey> {
    match policy.load_balancer.as_ref()?.policy.as_ref()? {
        LbPolicy::ConsistentHash(hash) => Some(hash.key.clone()),
        LbPolicy::Simple(_) => None,
    }
}

/// The cluster `name` with `policy` applied and `high_priority` as its HIGH priority's
/// connection pool; `extras` (the service's advertised methods and its host's isolation classes
/// and local rate limit) ride in its metadata as [`ServiceExtras`].
pub fn eds_cluster(
    name: &str,
    policy: &TrafficPolicy,
    high_priority: Option<&ConnectionPoolSettings>,
    extras: &ServiceExtras,
) -> Cluster {
    let connect_timeout = policy
        .connection_pool
        .as_ref()
        .and_then(|pool| pool.tcp.as_ref())
        .and_then(|tcp| tcp.connect_timeout)
        .map_or(DEFAULT_CONNECT_TIMEOUT, |timeout| timeout.get());
    let lb = policy
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.policy.as_ref());
    let min_health = policy
        .outlier_detection
        .as_ref()
        .and_then(|o| o.min_health_percent);
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        connect_timeout: Some(super::matchers::from_std(connect_timeout)),
        lb_policy: legacy_lb_policy(lb) as i32,
        load_balancing_policy: Some(load_balancing_policy(lb)),
        circuit_breakers: circuit_breakers(policy.connection_pool.as_ref(), high_priority),
        outlier_detection: policy.outlier_detection.as_ref().map(outlier_detection),
        // Istio's `minHealthPercent`: below it, outlier ejection stops mattering (panic mode).
        common_lb_config: min_health.map(|percent| cluster::CommonLbConfig {
            healthy_panic_threshold: Some(PbPercent {
                value: f64::from(percent),
            }),
            ..cluster::CommonLbConfig::default()
        }),
        metadata: (*extras != ServiceExtras::default()).then(|| Metadata {
            // One key only: a map with more would encode in a random order.
            typed_filter_metadata: std::collections::HashMap::from([(
                SERVICE_EXTRAS_KEY.to_owned(),
                pack_any(extras.clone()),
            )]),
            ..Metadata::default()
        }),
        ..Cluster::default()
    }
}

/// The `lb_policy` enum for clients that predate `load_balancing_policy`: only the values a
/// proxyless gRPC client accepts.
fn legacy_lb_policy(lb: Option<&LbPolicy>) -> cluster::LbPolicy {
    match lb {
        Some(LbPolicy::ConsistentHash(_)) => cluster::LbPolicy::RingHash,
        _ => cluster::LbPolicy::RoundRobin,
    }
}

fn typed(name: &str, config: Any) -> load_balancing_policy::Policy {
    load_balancing_policy::Policy {
        typed_extension_config: Some(TypedExtensionConfig {
            name: name.to_owned(),
            typed_config: Some(config),
        }),
    }
}

fn load_balancing_policy(lb: Option<&LbPolicy>) -> LoadBalancingPolicy {
    let least_request = || {
        typed(
            "envoy.load_balancing_policies.least_request",
            pack_any(LeastRequest::default()),
        )
    };
    let round_robin = || {
        typed(
            "envoy.load_balancing_policies.round_robin",
            pack_any(RoundRobin::default()),
        )
    };
    let policies = match lb {
        None | Some(LbPolicy::Simple(SimpleLb::Unspecified | SimpleLb::LeastRequest)) => {
            vec![least_request(), round_robin()]
        }
        // Passthrough has no meaning without an original destination: balance as round robin.
        Some(LbPolicy::Simple(SimpleLb::RoundRobin | SimpleLb::Passthrough)) => vec![round_robin()],
        Some(LbPolicy::Simple(SimpleLb::Random)) => vec![
            typed(
                "envoy.load_balancing_policies.random",
                pack_any(Random::default()),
            ),
            round_robin(),
        ],
        Some(LbPolicy::ConsistentHash(hash)) => vec![typed(
            "envoy.load_balancing_policies.ring_hash",
            pack_any(RingHash {
                minimum_ring_size: hash.minimum_ring_size.map(|value| UInt64Value { value }),
                ..RingHash::default()
            }),
        )],
    };
    LoadBalancingPolicy { policies }
}

/// A DEFAULT entry when the subset's pool sets a threshold, a HIGH entry when the host has a
/// HIGH pool; a priority without an entry keeps Envoy's defaults.
fn circuit_breakers(
    default: Option<&ConnectionPoolSettings>,
    high: Option<&ConnectionPoolSettings>,
) -> Option<CircuitBreakers> {
    let default = default
        .map(ConnectionPoolSettings::breaker_limits)
        .filter(|limits| !limits.is_empty())
        .map(|limits| thresholds(RoutingPriority::Default, limits));
    let high = high.map(|pool| thresholds(RoutingPriority::High, pool.breaker_limits()));
    let thresholds: Vec<_> = default.into_iter().chain(high).collect();
    (!thresholds.is_empty()).then(|| CircuitBreakers {
        thresholds,
        ..CircuitBreakers::default()
    })
}

fn thresholds(priority: RoutingPriority, limits: BreakerLimits) -> circuit_breakers::Thresholds {
    let wrap = |value: Option<u32>| value.map(|value| UInt32Value { value });
    circuit_breakers::Thresholds {
        priority: priority as i32,
        max_connections: wrap(limits.max_connections),
        max_pending_requests: wrap(limits.max_pending_requests),
        max_requests: wrap(limits.max_requests),
        max_retries: wrap(limits.max_retries),
        ..circuit_breakers::Thresholds::default()
    }
}

fn outlier_detection(rule: &RuleOutlier) -> OutlierDetection {
    let wrap = |value: Option<u32>| value.map(|value| UInt32Value { value });
    // Like Istio, set only what the rule names; Envoy's defaults cover the rest (consecutive
    // 5xx at 5, enforced), while gateway errors are enforced only when asked for.
    let enforce = |value: Option<u32>| value.map(|_| UInt32Value { value: 100 });
    OutlierDetection {
        consecutive_5xx: wrap(rule.consecutive_5xx_errors),
        enforcing_consecutive_5xx: enforce(rule.consecutive_5xx_errors),
        consecutive_gateway_failure: wrap(rule.consecutive_gateway_errors),
        enforcing_consecutive_gateway_failure: enforce(rule.consecutive_gateway_errors),
        interval: rule.interval.map(duration),
        base_ejection_time: rule.base_ejection_time.map(duration),
        max_ejection_percent: wrap(rule.max_ejection_percent),
        ..OutlierDetection::default()
    }
}
