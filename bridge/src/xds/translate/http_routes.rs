//! LDS/RDS for HTTP, gRPC and Triple ports: an `ApiListener` listener named `<host>:<port>` (what a
//! proxyless gRPC client asks for with `xds:///<host>:<port>`) whose HTTP connection manager
//! points at the route configuration of the same name, and that route configuration built from
//! the host's VirtualService `http` routes, in order, first match wins:
//!
//! - each `match` becomes its own route (Istio ORs them): `uri` as the path specifier,
//!   `authority` as a `:authority` header matcher, `headers` as header matchers;
//! - `route` becomes a cluster or weighted clusters (`outbound|<port>|<subset>|<host>`);
//! - `timeout` (also as the gRPC max stream duration), `retries`, `mirror` with its percentage,
//!   and `fault` as the fault filter's per-route configuration.
//!
//! Without a VirtualService, one catch-all route sends everything to the host's cluster. A match
//! with `sourceLabels` is left out: labels of the calling workload are not known per node here.

use causeway_protocols::rules::common::Percent;
use causeway_protocols::rules::destination_rule::HashKey;
use causeway_protocols::rules::virtual_service::{
    AbortStatus, HttpFault, HttpMatchRequest, HttpRoute,
};
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault as EnvoyFault, fault_abort,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

use super::matchers::{duration, fraction, header, regex, runtime_fraction};
use super::{Destinations, HostPolicy, ads};

/// The fault filter's name: the key of its per-route configuration.
const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// Istio's retry conditions when a VirtualService gives attempts but no `retryOn`.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The API listener for `name` (`<host>:<port>`), routing through the fault filter and the router.
pub fn api_listener(name: &str) -> Listener {
    let manager = HttpConnectionManager {
        stat_prefix: name.to_owned(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: name.to_owned(),
        })),
        http_filters: vec![
            HttpFilter {
                name: FAULT_FILTER.to_owned(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                    EnvoyFault::default(),
                ))),
                ..HttpFilter::default()
            },
            HttpFilter {
                name: "envoy.filters.http.router".to_owned(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                    Router::default(),
                ))),
                ..HttpFilter::default()
            },
        ],
        ..HttpConnectionManager::default()
    };
    Listener {
        name: name.to_owned(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(manager)),
        }),
        ..Listener::default()
    }
}

/// The route configuration `name` for `host`.
pub fn route_configuration(
    name: &str,
    host: &str,
    policy: &HostPolicy,
    destinations: &Destinations<'_>,
) -> RouteConfiguration {
    let mut routes: Vec<Route> = policy
        .http_routes
        .iter()
        .flat_map(|rule| {
            let hash = hash_policy(policy.hash_key(host, &rule.route));
            let action = route_action(rule, destinations, hash);
            let per_filter = rule.fault.as_ref().map(|fault| {
                std::collections::HashMap::from([(
                    FAULT_FILTER.to_owned(),
                    pack_any(envoy_fault(fault)),
                )])
            });
            route_matches(&rule.matches)
                .into_iter()
                .map(move |route_match| Route {
                    name: rule.name.clone().unwrap_or_default(),
                    r#match: Some(route_match),
                    action: Some(route::Action::Route(action.clone())),
                    typed_per_filter_config: per_filter.clone().unwrap_or_default(),
                    ..Route::default()
                })
        })
        .collect();
    if policy.http_routes.is_empty() {
        routes.push(Route {
            r#match: Some(prefix_match("/")),
            action: Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                    destinations.whole_host(),
                )),
                hash_policy: hash_policy(policy.hash_key(host, &[])),
                ..RouteAction::default()
            })),
            ..Route::default()
        });
    }
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: name.to_owned(),
            domains: vec![host.to_owned(), name.to_owned()],
            routes,
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}

fn prefix_match(prefix: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix(prefix.to_owned())),
        ..RouteMatch::default()
    }
}

/// One Envoy match per rule match (none: match everything); matches needing source labels are
/// dropped.
fn route_matches(matches: &[HttpMatchRequest]) -> Vec<RouteMatch> {
    use causeway_protocols::rules::common::StringMatch;
    if matches.is_empty() {
        return vec![prefix_match("/")];
    }
    matches
        .iter()
        .filter(|m| m.source_labels.is_empty())
        .map(|m| {
            let path_specifier = match &m.uri {
                None | Some(StringMatch::Present) => {
                    route_match::PathSpecifier::Prefix("/".to_owned())
                }
                Some(StringMatch::Exact(path)) => route_match::PathSpecifier::Path(path.clone()),
                Some(StringMatch::Prefix(prefix)) => {
                    route_match::PathSpecifier::Prefix(prefix.clone())
                }
                Some(StringMatch::Regex(pattern)) => {
                    route_match::PathSpecifier::SafeRegex(regex(pattern.as_str()))
                }
            };
            let mut headers: Vec<_> = m
                .authority
                .iter()
                .map(|authority| header(":authority", authority))
                .collect();
            headers.extend(m.headers.iter().map(|(name, rule)| header(name, rule)));
            RouteMatch {
                path_specifier: Some(path_specifier),
                headers,
                ..RouteMatch::default()
            }
        })
        .collect()
}

fn route_action(
    rule: &HttpRoute,
    destinations: &Destinations<'_>,
    hash_policy: Vec<route_action::HashPolicy>,
) -> RouteAction {
    let retry_policy = rule
        .retries
        .as_ref()
        .filter(|retries| retries.attempts > 0)
        .map(|retries| {
            let conditions = retries.conditions();
            RetryPolicy {
                retry_on: if conditions.is_empty() {
                    DEFAULT_RETRY_ON.to_owned()
                } else {
                    conditions.join(",")
                },
                num_retries: Some(UInt32Value {
                    value: retries.attempts,
                }),
                per_try_timeout: retries.per_try_timeout.map(duration),
                ..RetryPolicy::default()
            }
        });
    let request_mirror_policies = rule
        .mirror
        .iter()
        .map(|mirror| route_action::RequestMirrorPolicy {
            cluster: destinations.cluster(mirror),
            // Istio mirrors everything when no percentage is given.
            runtime_fraction: Some(runtime_fraction(
                rule.mirror_percentage.unwrap_or(Percent { value: 100.0 }),
            )),
            ..route_action::RequestMirrorPolicy::default()
        })
        .collect();
    RouteAction {
        cluster_specifier: Some(cluster_specifier(destinations.weighted(&rule.route))),
        timeout: rule.timeout.map(duration),
        // gRPC clients read the stream duration, not `timeout`.
        max_stream_duration: rule.timeout.map(|timeout| route_action::MaxStreamDuration {
            max_stream_duration: Some(duration(timeout)),
            ..route_action::MaxStreamDuration::default()
        }),
        retry_policy,
        request_mirror_policies,
        hash_policy,
        ..RouteAction::default()
    }
}

/// Route hash policies for a consistent-hash destination.
fn hash_policy(key: Option<HashKey>) -> Vec<route_action::HashPolicy> {
    use route_action::hash_policy::{self, PolicySpecifier};
    let Some(key) = key else {
        return Vec::new();
    };
    let specifier = match key {
        HashKey::HttpHeaderName(name) => PolicySpecifier::Header(hash_policy::Header {
            header_name: name,
            ..hash_policy::Header::default()
        }),
        HashKey::HttpCookie(cookie) => PolicySpecifier::Cookie(hash_policy::Cookie {
            name: cookie.name,
            path: cookie.path.unwrap_or_default(),
            ttl: cookie.ttl.map(duration),
            ..hash_policy::Cookie::default()
        }),
        HashKey::UseSourceIp(_) => {
            PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties {
                source_ip: true,
            })
        }
        HashKey::HttpQueryParameterName(name) => {
            PolicySpecifier::QueryParameter(hash_policy::QueryParameter { name })
        }
    };
    vec![route_action::HashPolicy {
        policy_specifier: Some(specifier),
        ..route_action::HashPolicy::default()
    }]
}

fn envoy_fault(fault: &HttpFault) -> EnvoyFault {
    EnvoyFault {
        delay: fault.delay.as_ref().map(|delay| FaultDelay {
            // Istio: no percentage means no request is delayed.
            percentage: Some(fraction(delay.percentage.unwrap_or(Percent { value: 0.0 }))),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(duration(
                delay.fixed_delay,
            ))),
        }),
        abort: fault.abort.as_ref().map(|abort| FaultAbort {
            percentage: Some(fraction(abort.percentage.unwrap_or(Percent { value: 0.0 }))),
            error_type: Some(match abort.status {
                AbortStatus::HttpStatus(status) => {
                    fault_abort::ErrorType::HttpStatus(u32::from(status))
                }
                AbortStatus::GrpcStatus(code) => fault_abort::ErrorType::GrpcStatus(code.code()),
            }),
            ..FaultAbort::default()
        }),
        ..EnvoyFault::default()
    }
}

/// One cluster, or weighted clusters when the route splits traffic.
fn cluster_specifier(mut weighted: Vec<(String, u32)>) -> route_action::ClusterSpecifier {
    if weighted.len() == 1 {
        let (cluster, _) = weighted.remove(0);
        return route_action::ClusterSpecifier::Cluster(cluster);
    }
    route_action::ClusterSpecifier::WeightedClusters(super::weighted_clusters(weighted))
}
