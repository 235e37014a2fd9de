//! Dubbo and Thrift route discovery: per Dubbo or Thrift port of a host, a route configuration
//! named `<host>:<port>`, served as its own resource type so a route change never touches a
//! listener. Built from the host's MetaRouter routes, in order, first match wins (Aeraki's
//! semantics):
//!
//! - Dubbo (`dubbo_proxy` `RouteConfiguration`, with the interface, group and version the routes
//!   apply to): the `interface` attribute is checked here against the host's interface (a route
//!   that cannot match is left out), `method` becomes the method matcher, every other attribute a
//!   header matcher on the request's attachments.
//! - Thrift (`thrift_proxy` `RouteConfiguration`): an exact `method` becomes the method name;
//!   a non-exact method and the `service`/`interface` attributes become matchers on the
//!   pseudo-headers `:method` and `:service`; other attributes match THeader headers. An empty
//!   method name matches every method.
//! - Mirrors (native for Thrift), request mutation and the consistent-hash attribute ride in
//!   [`MetaRouteExtras`] under the route action's `typed_filter_metadata`.
//!
//! Without a MetaRouter, one catch-all route sends everything to the host's cluster.

use std::collections::HashMap;

use causeway_protocols::rules::common::{Percent, StringMatch};
use causeway_protocols::rules::destination_rule::HashKey;
use causeway_protocols::rules::meta_router::MetaRoute;
use causeway_protocols::xds_ext::{
    Attribute, FaultPolicy, META_ROUTE_EXTRAS_KEY, MetaRouteExtras, Mirror, RetryPolicy,
};
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::extensions::filters::network::dubbo_proxy::v3 as dubbo;
use envoy_types::pb::envoy::extensions::filters::network::thrift_proxy::v3 as thrift;
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

use super::matchers::{fraction, header, runtime_fraction, string_matcher};
use super::{Destinations, HostPolicy};
use crate::model::snapshot::DubboIdentity;

/// Istio mirrors every request when a mirror names no percentage; Aeraki follows.
const ALL: Percent = Percent { value: 100.0 };

/// The Dubbo route configuration `name` for a host serving `identity`.
pub fn dubbo_route_configuration(
    name: &str,
    identity: &DubboIdentity,
    policy: &HostPolicy,
    destinations: &Destinations<'_>,
) -> dubbo::RouteConfiguration {
    let host = destinations.host();
    let mut routes: Vec<dubbo::Route> = policy
        .meta_routes
        .iter()
        .filter(|route| {
            attribute(route, "interface").is_none_or(|rule| rule.matches(&identity.interface))
        })
        .map(|route| {
            let method = attribute(route, "method").and_then(string_matcher);
            let headers = other_attributes(route, &["interface", "method"]);
            let hash = hash_attribute(policy.hash_key(host, &route.route));
            let extras = extras(route, destinations, &hash, true);
            dubbo::Route {
                r#match: Some(dubbo::RouteMatch {
                    method: method.map(|name| dubbo::MethodMatch {
                        name: Some(name),
                        ..dubbo::MethodMatch::default()
                    }),
                    headers,
                }),
                route: Some(dubbo::RouteAction {
                    metadata_match: extras,
                    cluster_specifier: Some(dubbo_cluster(destinations.weighted(&route.route))),
                }),
            }
        })
        .collect();
    if policy.meta_routes.is_empty() {
        routes.push(dubbo::Route {
            r#match: Some(dubbo::RouteMatch::default()),
            route: Some(dubbo::RouteAction {
                metadata_match: pack_extras(MetaRouteExtras {
                    hash_attribute: hash_attribute(policy.hash_key(host, &[])),
                    ..MetaRouteExtras::default()
                }),
                cluster_specifier: Some(dubbo::route_action::ClusterSpecifier::Cluster(
                    destinations.whole_host(),
                )),
            }),
        });
    }
    dubbo::RouteConfiguration {
        name: name.to_owned(),
        interface: identity.interface.clone(),
        group: identity.group.clone().unwrap_or_default(),
        version: identity.version.clone().unwrap_or_default(),
        routes,
    }
}

/// The Thrift route configuration `name` for a host.
pub fn thrift_route_configuration(
    name: &str,
    policy: &HostPolicy,
    destinations: &Destinations<'_>,
) -> thrift::RouteConfiguration {
    let host = destinations.host();
    let mut routes: Vec<thrift::Route> = policy
        .meta_routes
        .iter()
        .map(|route| {
            let mut headers = Vec::new();
            let method_name = match attribute(route, "method") {
                Some(StringMatch::Exact(method)) => method.clone(),
                Some(other) => {
                    headers.push(header(":method", other));
                    String::new()
                }
                None => String::new(),
            };
            for key in ["service", "interface"] {
                if let Some(rule) = attribute(route, key) {
                    headers.push(header(":service", rule));
                }
            }
            headers.extend(other_attributes(route, &["method", "service", "interface"]));
            thrift::Route {
                r#match: Some(thrift::RouteMatch {
                    headers,
                    match_specifier: Some(thrift::route_match::MatchSpecifier::MethodName(
                        method_name,
                    )),
                    ..thrift::RouteMatch::default()
                }),
                route: Some(thrift::RouteAction {
                    metadata_match: extras(
                        route,
                        destinations,
                        &hash_attribute(policy.hash_key(host, &route.route)),
                        false,
                    ),
                    request_mirror_policies: route
                        .mirrors()
                        .iter()
                        .map(|mirror| thrift::route_action::RequestMirrorPolicy {
                            cluster: destinations.cluster(&mirror.destination),
                            runtime_fraction: Some(runtime_fraction(
                                mirror.percentage.unwrap_or(ALL),
                            )),
                        })
                        .collect(),
                    cluster_specifier: Some(thrift_cluster(destinations.weighted(&route.route))),
                    ..thrift::RouteAction::default()
                }),
            }
        })
        .collect();
    if policy.meta_routes.is_empty() {
        routes.push(thrift::Route {
            r#match: Some(thrift::RouteMatch {
                match_specifier: Some(thrift::route_match::MatchSpecifier::MethodName(
                    String::new(),
                )),
                ..thrift::RouteMatch::default()
            }),
            route: Some(thrift::RouteAction {
                metadata_match: pack_extras(MetaRouteExtras {
                    hash_attribute: hash_attribute(policy.hash_key(host, &[])),
                    ..MetaRouteExtras::default()
                }),
                cluster_specifier: Some(thrift::route_action::ClusterSpecifier::Cluster(
                    destinations.whole_host(),
                )),
                ..thrift::RouteAction::default()
            }),
        });
    }
    thrift::RouteConfiguration {
        name: name.to_owned(),
        routes,
        ..thrift::RouteConfiguration::default()
    }
}

fn attribute<'a>(route: &'a MetaRoute, key: &str) -> Option<&'a StringMatch> {
    route.matches.as_ref()?.attributes.get(key)
}

fn other_attributes(route: &MetaRoute, skip: &[&str]) -> Vec<HeaderMatcher> {
    route
        .matches
        .iter()
        .flat_map(|m| m.attributes.iter())
        .filter(|(key, _)| !skip.contains(&key.as_str()))
        .map(|(key, rule)| header(key, rule))
        .collect()
}

/// The attribute a consistent hash uses: `httpHeaderName` names a request attribute for Dubbo
/// and Thrift, as in Aeraki; other hash keys have no Dubbo or Thrift meaning.
fn hash_attribute(key: Option<HashKey>) -> String {
    match key {
        Some(HashKey::HttpHeaderName(name)) => name,
        _ => String::new(),
    }
}

/// The route's extras as metadata; `with_mirrors` for Dubbo, whose proto has no mirror field.
fn extras(
    route: &MetaRoute,
    destinations: &Destinations<'_>,
    hash_attribute: &str,
    with_mirrors: bool,
) -> Option<Metadata> {
    let mirrors = if with_mirrors {
        route
            .mirrors()
            .iter()
            .map(|mirror| Mirror {
                cluster: destinations.cluster(&mirror.destination),
                per_million: fraction(mirror.percentage.unwrap_or(ALL)).numerator,
            })
            .collect()
    } else {
        Vec::new()
    };
    pack_extras(MetaRouteExtras {
        mirrors,
        request_mutation: route
            .request_mutation
            .iter()
            .map(|kv| Attribute {
                key: kv.key.clone(),
                value: kv.value.clone(),
            })
            .collect(),
        hash_attribute: hash_attribute.to_owned(),
        // Causeway's resilience extension: Envoy's dubbo_proxy/thrift_proxy routes have no
        // timeout, retry or fault fields, so both protocols carry them here.
        timeout_ms: route.timeout.map_or(0, |t| {
            u64::try_from(t.get().as_millis()).unwrap_or(u64::MAX)
        }),
        retry: route
            .retries
            .as_ref()
            .filter(|r| r.attempts > 0)
            .map(RetryPolicy::from),
        fault: route.fault.as_ref().map(FaultPolicy::from),
    })
}

/// Extras as route metadata, or nothing when they are empty (most routes).
fn pack_extras(extras: MetaRouteExtras) -> Option<Metadata> {
    if extras == MetaRouteExtras::default() {
        return None;
    }
    Some(Metadata {
        // One key only: a map with more would encode in a random order and break content hashes.
        typed_filter_metadata: HashMap::from([(
            META_ROUTE_EXTRAS_KEY.to_owned(),
            pack_any(extras),
        )]),
        ..Metadata::default()
    })
}

fn dubbo_cluster(mut weighted: Vec<(String, u32)>) -> dubbo::route_action::ClusterSpecifier {
    if weighted.len() == 1 {
        let (cluster, _) = weighted.remove(0);
        return dubbo::route_action::ClusterSpecifier::Cluster(cluster);
    }
    dubbo::route_action::ClusterSpecifier::WeightedClusters(super::weighted_clusters(weighted))
}

fn thrift_cluster(mut weighted: Vec<(String, u32)>) -> thrift::route_action::ClusterSpecifier {
    if weighted.len() == 1 {
        let (cluster, _) = weighted.remove(0);
        return thrift::route_action::ClusterSpecifier::Cluster(cluster);
    }
    thrift::route_action::ClusterSpecifier::WeightedClusters(thrift::WeightedCluster {
        clusters: weighted
            .into_iter()
            .map(|(name, weight)| thrift::weighted_cluster::ClusterWeight {
                name,
                weight: Some(UInt32Value { value: weight }),
                ..thrift::weighted_cluster::ClusterWeight::default()
            })
            .collect(),
    })
}
