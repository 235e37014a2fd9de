//! LDS and RDS for the gRPC and HTTP data plane: what the bridge serves for gRPC, Triple and HTTP
//! ports (`bridge/src/xds/translate/http_routes.rs`). Pure, like the rest of [`super`]:
//!
//! - a `Listener` must be an `ApiListener` whose `HttpConnectionManager` names its route
//!   configuration over RDS; [`listener_route`] returns that name;
//! - a `RouteConfiguration` with one virtual host becomes an [`HttpRouteTable`] ([`route_table`]):
//!   its domains, and per route the path (prefix, exact, safe regex), header matchers, a cluster
//!   or weighted clusters, the timeout (`timeout`, or `max_stream_duration` for gRPC; the shorter
//!   when both are set), retries, mirrors, the hash policy and the fault filter's per-route
//!   configuration. Anything else this proxy cannot honour is rejected with the reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{HttpFault, fault_abort};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::Duration as PbDuration;

use super::{ClusterSpec, ConvertError, reject, unpack};
use crate::routing::http::{AbortWith, FaultSpec, HashPolicy, MirrorSpec, RetrySpec};
use crate::routing::{
    HttpRoute, HttpRouteTable, HttpTableLabels, PathMatch, Priority, WeightedClusters,
};

/// The fault filter's name: the key of its per-route configuration.
const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// A converted route configuration (its methods come from the clusters at assembly).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpTableSpec {
    table: HttpRouteTable,
}

/// The route configuration an API listener's connection manager names.
pub fn listener_route(listener: &Listener) -> Result<String, ConvertError> {
    let name = listener.name.as_str();
    let any = listener
        .api_listener
        .as_ref()
        .and_then(|a| a.api_listener.as_ref())
        .ok_or_else(|| reject(name, "not an API listener (only API listeners are used)"))?;
    let manager = unpack::<HttpConnectionManager>(name, any)?;
    match manager.route_specifier {
        Some(http_connection_manager::RouteSpecifier::Rds(rds))
            if !rds.route_config_name.is_empty() =>
        {
            Ok(rds.route_config_name)
        }
        _ => Err(reject(
            name,
            "the connection manager must name its route configuration over RDS",
        )),
    }
}

fn millis(resource: &str, duration: &PbDuration) -> Result<u64, ConvertError> {
    if duration.seconds < 0 || duration.nanos < 0 {
        return Err(reject(resource, "negative duration"));
    }
    Ok((duration.seconds as u64)
        .saturating_mul(1000)
        .saturating_add(u64::from(duration.nanos.unsigned_abs()) / 1_000_000))
}

pub(super) fn fraction(percent: Option<&FractionalPercent>) -> f64 {
    let Some(percent) = percent else {
        return 0.0;
    };
    let denominator = match fractional_percent::DenominatorType::try_from(percent.denominator) {
        Ok(fractional_percent::DenominatorType::TenThousand) => 10_000.0,
        Ok(fractional_percent::DenominatorType::Million) => 1_000_000.0,
        _ => 100.0,
    };
    (f64::from(percent.numerator) / denominator).min(1.0)
}

fn path_match(
    at: &str,
    specifier: Option<&route_match::PathSpecifier>,
) -> Result<PathMatch, ConvertError> {
    use route_match::PathSpecifier as Spec;
    match specifier {
        Some(Spec::Prefix(prefix)) => Ok(PathMatch::Prefix(prefix.clone())),
        Some(Spec::Path(path)) => Ok(PathMatch::Exact(path.clone())),
        Some(Spec::SafeRegex(regex)) => {
            causeway_protocols::rules::common::Pattern::new(&regex.regex)
                .map(PathMatch::Regex)
                .map_err(|e| reject(at, e))
        }
        Some(_) => Err(reject(
            at,
            "only prefix, path and safe_regex path matches are supported",
        )),
        None => Err(reject(at, "a route match without a path specifier")),
    }
}

fn fault(at: &str, route: &Route) -> Result<Option<FaultSpec>, ConvertError> {
    let Some(any) = route.typed_per_filter_config.get(FAULT_FILTER) else {
        return Ok(None);
    };
    let fault = unpack::<HttpFault>(at, any)?;
    let delay = match &fault.delay {
        Some(delay) => {
            use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
            let Some(FaultDelaySecifier::FixedDelay(fixed)) = &delay.fault_delay_secifier else {
                return Err(reject(at, "only fixed fault delays are supported"));
            };
            Some((millis(at, fixed)?, fraction(delay.percentage.as_ref())))
        }
        None => None,
    };
    let abort = match &fault.abort {
        Some(abort) => {
            let with = match &abort.error_type {
                Some(fault_abort::ErrorType::HttpStatus(status)) => AbortWith::Http(
                    u16::try_from(*status).map_err(|_| reject(at, "HTTP status out of range"))?,
                ),
                Some(fault_abort::ErrorType::GrpcStatus(code)) => AbortWith::Grpc(*code),
                _ => return Err(reject(at, "only HTTP and gRPC status aborts are supported")),
            };
            Some((with, fraction(abort.percentage.as_ref())))
        }
        None => None,
    };
    Ok(Some(FaultSpec { delay, abort }))
}

fn hash_policy(action: &RouteAction) -> Option<HashPolicy> {
    use route_action::hash_policy::PolicySpecifier as Spec;
    action
        .hash_policy
        .iter()
        .find_map(|p| match p.policy_specifier.as_ref()? {
            Spec::Header(h) => Some(HashPolicy::Header(h.header_name.to_ascii_lowercase())),
            Spec::Cookie(c) => Some(HashPolicy::Cookie(c.name.clone())),
            Spec::ConnectionProperties(c) if c.source_ip => Some(HashPolicy::SourceIp),
            Spec::QueryParameter(q) => Some(HashPolicy::QueryParameter(q.name.clone())),
            _ => None,
        })
}

/// Checks and converts a route configuration named `<host>:<port>`.
pub fn route_table(config: &RouteConfiguration) -> Result<HttpTableSpec, ConvertError> {
    let name = config.name.as_str();
    let [vhost] = config.virtual_hosts.as_slice() else {
        return Err(reject(
            name,
            format!(
                "expected one virtual host, got {}",
                config.virtual_hosts.len()
            ),
        ));
    };
    let host = name
        .rsplit_once(':')
        .map_or(name, |(host, _)| host)
        .to_owned();
    let mut routes = Vec::new();
    for (index, route) in vhost.routes.iter().enumerate() {
        let at = format!("{name} routes[{index}]");
        let matching = route.r#match.clone().unwrap_or_default();
        if matching.case_sensitive.is_some_and(|c| !c.value) {
            return Err(reject(
                &at,
                "case-insensitive path matches are not supported",
            ));
        }
        if !matching.query_parameters.is_empty() || !matching.cookies.is_empty() {
            return Err(reject(
                &at,
                "query parameter and cookie matches are not supported",
            ));
        }
        if matching.runtime_fraction.is_some()
            || matching.grpc.is_some()
            || matching.tls_context.is_some()
        {
            return Err(reject(
                &at,
                "runtime fraction, grpc and tls_context matches are not supported",
            ));
        }
        let path = path_match(&at, matching.path_specifier.as_ref())?;
        let headers = matching
            .headers
            .iter()
            .map(|h| super::header_match(&at, h).map(|(n, m)| (n.to_ascii_lowercase(), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(route::Action::Route(action)) = &route.action else {
            return Err(reject(
                &at,
                "only route actions are supported (no redirects or direct responses)",
            ));
        };
        let destinations = match &action.cluster_specifier {
            Some(route_action::ClusterSpecifier::Cluster(cluster)) => {
                WeightedClusters::single(Arc::from(cluster.as_str()))
            }
            Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) => {
                WeightedClusters::new(
                    weighted
                        .clusters
                        .iter()
                        .map(|c| (Arc::from(c.name.as_str()), c.weight.map_or(0, |w| w.value))),
                )
            }
            _ => {
                return Err(reject(
                    &at,
                    "only a cluster or weighted clusters are supported",
                ));
            }
        };
        if destinations.is_empty() {
            return Err(reject(&at, "no cluster with a positive weight"));
        }
        // Envoy: a zero duration disables the limit.
        let timeout = action
            .timeout
            .as_ref()
            .map(|d| millis(&at, d))
            .transpose()?;
        let stream = action
            .max_stream_duration
            .as_ref()
            .and_then(|m| m.max_stream_duration.as_ref())
            .map(|d| millis(&at, d))
            .transpose()?;
        let timeout_ms = [timeout, stream]
            .into_iter()
            .flatten()
            .filter(|ms| *ms > 0)
            .min();
        let retries = match &action.retry_policy {
            Some(policy) => Some(RetrySpec::new(
                policy.num_retries.map_or(1, |n| n.value),
                policy
                    .per_try_timeout
                    .as_ref()
                    .map(|d| millis(&at, d))
                    .transpose()?,
                policy.retry_on.clone(),
                &policy.retriable_status_codes,
            )),
            None => None,
        };
        // Envoy's RoutingPriority; a value it does not define is rejected, as Envoy does.
        let priority = Priority::from_envoy(action.priority)
            .ok_or_else(|| reject(&at, format!("unknown routing priority {}", action.priority)))?;
        let mirrors = action
            .request_mirror_policies
            .iter()
            .map(|m| MirrorSpec {
                cluster: Arc::from(m.cluster.as_str()),
                fraction: m
                    .runtime_fraction
                    .as_ref()
                    .map_or(1.0, |r| fraction(r.default_value.as_ref())),
            })
            .collect();
        routes.push(HttpRoute {
            name: if route.name.is_empty() {
                format!("{name}#{index}")
            } else {
                route.name.clone()
            },
            path,
            headers,
            destinations,
            timeout_ms,
            retries,
            fault: fault(&at, route)?,
            mirrors,
            hash_policy: hash_policy(action),
            priority,
        });
    }
    Ok(HttpTableSpec {
        table: HttpRouteTable {
            name: name.to_owned(),
            host,
            domains: vhost
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            routes,
            methods: Vec::new(),
            metric_labels: HttpTableLabels::default(),
        },
    })
}

/// The tables the held listeners name, with each host's advertised methods from its clusters.
pub fn tables(
    listeners: &BTreeMap<String, String>,
    routes: &BTreeMap<String, HttpTableSpec>,
    clusters: &BTreeMap<String, ClusterSpec>,
) -> Vec<HttpRouteTable> {
    let mut methods: BTreeMap<&str, &[String]> = BTreeMap::new();
    for spec in clusters.values() {
        if !spec.methods.is_empty() {
            methods.entry(spec.host.as_str()).or_insert(&spec.methods);
        }
    }
    let named: std::collections::BTreeSet<&String> = listeners.values().collect();
    routes
        .iter()
        .filter(|(name, _)| named.contains(name))
        .map(|(_, spec)| {
            let mut table = spec.table.clone();
            if let Some(list) = methods.get(table.host.as_str()) {
                table.methods = list.to_vec();
            }
            table
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::listener::v3::ApiListener;
    use envoy_types::pb::envoy::config::route::v3::{
        HeaderMatcher, RouteMatch, VirtualHost, WeightedCluster, header_matcher, weighted_cluster,
    };
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::Rds;
    use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
    use envoy_types::pb::google::protobuf::UInt32Value;
    use envoy_types::util::pack_any;

    use super::*;

    fn route(specifier: route_match::PathSpecifier, action: route::Action) -> Route {
        Route {
            r#match: Some(RouteMatch {
                path_specifier: Some(specifier),
                headers: vec![HeaderMatcher {
                    name: "X-Canary".into(),
                    header_match_specifier: Some(
                        header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher {
                            match_pattern: Some(string_matcher::MatchPattern::Exact("true".into())),
                            ..StringMatcher::default()
                        }),
                    ),
                    ..HeaderMatcher::default()
                }],
                ..RouteMatch::default()
            }),
            action: Some(action),
            ..Route::default()
        }
    }

    fn split() -> route::Action {
        let weighted = |name: &str, weight| weighted_cluster::ClusterWeight {
            name: name.into(),
            weight: Some(UInt32Value { value: weight }),
            ..weighted_cluster::ClusterWeight::default()
        };
        route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::WeightedClusters(
                WeightedCluster {
                    clusters: vec![
                        weighted("outbound|50051|v1|demo.greeter", 80),
                        weighted("outbound|50051|v2|demo.greeter", 20),
                    ],
                    ..WeightedCluster::default()
                },
            )),
            timeout: Some(PbDuration {
                seconds: 2,
                nanos: 0,
            }),
            max_stream_duration: Some(route_action::MaxStreamDuration {
                max_stream_duration: Some(PbDuration {
                    seconds: 1,
                    nanos: 500_000_000,
                }),
                ..route_action::MaxStreamDuration::default()
            }),
            ..RouteAction::default()
        })
    }

    fn config(routes: Vec<Route>) -> RouteConfiguration {
        RouteConfiguration {
            name: "demo.greeter:50051".into(),
            virtual_hosts: vec![VirtualHost {
                name: "demo.greeter:50051".into(),
                domains: vec!["demo.greeter".into(), "demo.greeter:50051".into()],
                routes,
                ..VirtualHost::default()
            }],
            ..RouteConfiguration::default()
        }
    }

    #[test]
    fn the_bridges_route_configuration_becomes_a_table() {
        let spec = route_table(&config(vec![route(
            route_match::PathSpecifier::Prefix("/".into()),
            split(),
        )]))
        .unwrap();
        let table = &spec.table;
        assert_eq!(table.host, "demo.greeter");
        assert_eq!(table.domains, ["demo.greeter", "demo.greeter:50051"]);
        let route = &table.routes[0];
        assert_eq!(route.path, PathMatch::Prefix("/".into()));
        assert_eq!(route.headers[0].0, "x-canary");
        assert_eq!(route.destinations.entries().len(), 2);
        // The shorter of `timeout` and `max_stream_duration`.
        assert_eq!(route.timeout_ms, Some(1500));
    }

    #[test]
    fn a_routes_envoy_priority_is_kept_and_an_unknown_one_rejected() {
        let with_priority = |priority: i32| {
            let route::Action::Route(action) = split() else {
                unreachable!("split() is a route action")
            };
            route::Action::Route(RouteAction { priority, ..action })
        };
        let prefix = || route_match::PathSpecifier::Prefix("/".into());
        let table = |routes| route_table(&config(routes)).map(|spec| spec.table);
        // Envoy's RoutingPriority: 0 DEFAULT (also when absent), 1 HIGH.
        let high = table(vec![route(prefix(), with_priority(1))]).unwrap();
        assert_eq!(high.routes[0].priority, Priority::High);
        let default = table(vec![route(prefix(), split())]).unwrap();
        assert_eq!(default.routes[0].priority, Priority::Default);
        let error = table(vec![route(prefix(), with_priority(7))]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("routes[0]: unknown routing priority 7"),
            "{error}"
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_rejected_with_the_reason() {
        let redirect = route::Action::Redirect(Default::default());
        let error = route_table(&config(vec![route(
            route_match::PathSpecifier::Prefix("/".into()),
            redirect,
        )]))
        .unwrap_err();
        assert!(
            error.to_string().contains("routes[0]: only route actions"),
            "{error}"
        );
        let bad_regex = route_match::PathSpecifier::SafeRegex(
            envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                regex: "(".into(),
                ..Default::default()
            },
        );
        assert!(route_table(&config(vec![route(bad_regex, split())])).is_err());
        let mut two = config(Vec::new());
        two.virtual_hosts.push(VirtualHost::default());
        assert!(
            route_table(&two)
                .unwrap_err()
                .to_string()
                .contains("one virtual host")
        );

        let listener = |manager: HttpConnectionManager| Listener {
            name: "demo.greeter:50051".into(),
            api_listener: Some(ApiListener {
                api_listener: Some(pack_any(manager)),
            }),
            ..Listener::default()
        };
        let rds = HttpConnectionManager {
            route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
                route_config_name: "demo.greeter:50051".into(),
                ..Rds::default()
            })),
            ..HttpConnectionManager::default()
        };
        assert_eq!(
            listener_route(&listener(rds)).unwrap(),
            "demo.greeter:50051"
        );
        let inline = listener(HttpConnectionManager::default());
        assert!(
            listener_route(&inline)
                .unwrap_err()
                .to_string()
                .contains("over RDS")
        );
        assert!(listener_route(&Listener::default()).is_err());
    }
}
