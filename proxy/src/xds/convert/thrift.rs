//! Thrift route configurations (`thrift_proxy.v3.RouteConfiguration`, named `<host>:<port>`) →
//! [`ThriftRouteTable`]s, as the bridge emits them (`bridge/src/xds/translate/meta_routes.rs`):
//! a method name (empty = any) or a service name, header matchers where `:method` and `:service`
//! are the pseudo-headers of the method and the multiplexed service and any other name a THeader
//! header, weighted clusters, and [`MetaRouteExtras`] (request mutation, hash attribute) in the
//! route action's metadata. What this proxy cannot honour is rejected with the route named:
//! inverted matches, `strip_service_name`, clusters taken from a header. Envoy's native
//! `request_mirror_policies` become the route's mirrors.

use std::collections::BTreeMap;
use std::sync::Arc;

use causeway_protocols::rules::common::StringMatch;
use causeway_protocols::xds_ext::{META_ROUTE_EXTRAS_KEY, MetaRouteExtras};
use envoy_types::pb::envoy::extensions::filters::network::thrift_proxy::v3 as thrift;

use super::http::fraction;
use super::{ClusterSpec, ConvertError, header_match, reject, typed_metadata, unpack};
use crate::routing::http::MirrorSpec;
use crate::routing::{ThriftRoute, ThriftRouteTable, WeightedClusters};

/// A converted Thrift route table (its methods are filled in from the clusters when assembled).
#[derive(Debug, Clone, PartialEq)]
pub struct ThriftTableSpec {
    table: ThriftRouteTable,
}

/// Checks and converts a Thrift route configuration named `<host>:<port>`.
pub fn thrift_table(config: &thrift::RouteConfiguration) -> Result<ThriftTableSpec, ConvertError> {
    let name = config.name.as_str();
    let host = name
        .rsplit_once(':')
        .map_or(name, |(host, _)| host)
        .to_owned();
    if host.is_empty() {
        return Err(reject(name, "no host in the name (expected <host>:<port>)"));
    }
    let mut routes = Vec::new();
    for (index, route) in config.routes.iter().enumerate() {
        let at = format!("{name} routes[{index}]");
        let matching = route.r#match.clone().unwrap_or_default();
        if matching.invert {
            return Err(reject(&at, "inverted matches are not supported"));
        }
        let mut method = None;
        let mut service = None;
        match &matching.match_specifier {
            Some(thrift::route_match::MatchSpecifier::MethodName(m)) if !m.is_empty() => {
                method = Some(StringMatch::Exact(m.clone()));
            }
            // Envoy matches the `Service:` prefix of the message name.
            Some(thrift::route_match::MatchSpecifier::ServiceName(s)) if !s.is_empty() => {
                service = Some(StringMatch::Exact(s.trim_end_matches(':').to_owned()));
            }
            _ => {}
        }
        let mut headers = Vec::new();
        for matcher in &matching.headers {
            let (key, rule) = header_match(&at, matcher)?;
            let slot = match key.as_str() {
                ":method" => &mut method,
                ":service" => &mut service,
                _ => {
                    headers.push((key, rule));
                    continue;
                }
            };
            if slot.is_some() {
                return Err(reject(&at, format!("`{key}` is matched twice")));
            }
            *slot = Some(rule);
        }
        let action = route
            .route
            .as_ref()
            .ok_or_else(|| reject(&at, "no route action"))?;
        if action.strip_service_name {
            return Err(reject(&at, "strip_service_name is not supported"));
        }
        let destinations = match &action.cluster_specifier {
            Some(thrift::route_action::ClusterSpecifier::Cluster(cluster)) => {
                WeightedClusters::single(Arc::from(cluster.as_str()))
            }
            Some(thrift::route_action::ClusterSpecifier::WeightedClusters(weighted)) => {
                WeightedClusters::new(
                    weighted
                        .clusters
                        .iter()
                        .map(|c| (Arc::from(c.name.as_str()), c.weight.map_or(0, |w| w.value))),
                )
            }
            Some(thrift::route_action::ClusterSpecifier::ClusterHeader(_)) => {
                return Err(reject(&at, "cluster_header is not supported"));
            }
            None => return Err(reject(&at, "no cluster")),
        };
        if destinations.is_empty() {
            return Err(reject(&at, "no cluster with a positive weight"));
        }
        let extras = match typed_metadata(action.metadata_match.as_ref(), META_ROUTE_EXTRAS_KEY) {
            Some(any) => unpack::<MetaRouteExtras>(&at, any)?,
            None => MetaRouteExtras::default(),
        };
        let policy = crate::routing::meta_policy::MetaPolicy::from_extras(&extras);
        routes.push(ThriftRoute {
            policy,
            name: format!("{name}#{index}"),
            method,
            service,
            headers,
            destinations,
            request_mutation: extras
                .request_mutation
                .into_iter()
                .map(|a| (a.key, a.value))
                .collect(),
            mirrors: action
                .request_mirror_policies
                .iter()
                .map(|m| MirrorSpec {
                    cluster: Arc::from(m.cluster.as_str()),
                    // Envoy: no runtime fraction mirrors every call.
                    fraction: m
                        .runtime_fraction
                        .as_ref()
                        .map_or(1.0, |r| fraction(r.default_value.as_ref())),
                })
                .collect(),
        });
    }
    Ok(ThriftTableSpec {
        table: ThriftRouteTable {
            name: name.to_owned(),
            host,
            services: Vec::new(),
            routes,
            methods: Vec::new(),
        },
    })
}

/// The tables, each with its host's advertised methods (from the clusters' `ServiceExtras`).
pub fn tables(
    specs: &BTreeMap<String, ThriftTableSpec>,
    clusters: &BTreeMap<String, ClusterSpec>,
) -> Vec<ThriftRouteTable> {
    specs
        .values()
        .map(|spec| {
            let mut table = spec.table.clone();
            if let Some(cluster) = clusters
                .values()
                .find(|c| c.host == table.host && !c.methods.is_empty())
            {
                table.methods.clone_from(&cluster.methods);
            }
            table
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
    use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
    use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
    use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
    use envoy_types::pb::google::protobuf::UInt32Value;

    use super::*;

    fn prefix(name: &str, value: &str) -> HeaderMatcher {
        HeaderMatcher {
            name: name.into(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Prefix(value.into())),
                    ..StringMatcher::default()
                },
            )),
            ..HeaderMatcher::default()
        }
    }

    fn route(
        specifier: thrift::route_match::MatchSpecifier,
        headers: Vec<HeaderMatcher>,
        clusters: &[(&str, u32)],
    ) -> thrift::Route {
        thrift::Route {
            r#match: Some(thrift::RouteMatch {
                match_specifier: Some(specifier),
                headers,
                ..thrift::RouteMatch::default()
            }),
            route: Some(thrift::RouteAction {
                cluster_specifier: Some(thrift::route_action::ClusterSpecifier::WeightedClusters(
                    thrift::WeightedCluster {
                        clusters: clusters
                            .iter()
                            .map(|(name, weight)| thrift::weighted_cluster::ClusterWeight {
                                name: (*name).into(),
                                weight: Some(UInt32Value { value: *weight }),
                                ..thrift::weighted_cluster::ClusterWeight::default()
                            })
                            .collect(),
                    },
                )),
                ..thrift::RouteAction::default()
            }),
        }
    }

    #[test]
    fn the_bridges_shapes_become_routes() {
        use thrift::route_match::MatchSpecifier::{MethodName, ServiceName};
        let config = thrift::RouteConfiguration {
            name: "calculator:9090".into(),
            routes: vec![
                route(MethodName("multiply".into()), vec![], &[("v2", 1)]),
                route(
                    MethodName(String::new()),
                    vec![
                        prefix(":method", "ad"),
                        prefix(":service", "Calc"),
                        prefix("tenant", "a"),
                    ],
                    &[("v1", 80), ("v2", 20)],
                ),
                route(ServiceName("Calculator:".into()), vec![], &[("v1", 1)]),
            ],
            ..thrift::RouteConfiguration::default()
        };
        let mut config = config;
        if let Some(action) = config.routes[0].route.as_mut() {
            action.request_mirror_policies = vec![
                thrift::route_action::RequestMirrorPolicy {
                    cluster: "shadow".into(),
                    runtime_fraction: Some(RuntimeFractionalPercent {
                        default_value: Some(FractionalPercent {
                            numerator: 5,
                            denominator: 0,
                        }),
                        ..RuntimeFractionalPercent::default()
                    }),
                },
                thrift::route_action::RequestMirrorPolicy {
                    cluster: "all".into(),
                    runtime_fraction: None,
                },
            ];
        }
        let spec = thrift_table(&config).unwrap();
        let table = spec.table;
        assert_eq!(table.host, "calculator");
        // Envoy's native mirror policies: 5/100, and no fraction mirrors every call.
        assert_eq!(
            table.routes[0].mirrors,
            [
                MirrorSpec {
                    cluster: Arc::from("shadow"),
                    fraction: 0.05
                },
                MirrorSpec {
                    cluster: Arc::from("all"),
                    fraction: 1.0
                }
            ]
        );
        assert!(table.routes[1].mirrors.is_empty());
        assert_eq!(
            table.routes[0].method,
            Some(StringMatch::Exact("multiply".into()))
        );
        assert_eq!(
            table.routes[1].method,
            Some(StringMatch::Prefix("ad".into()))
        );
        assert_eq!(
            table.routes[1].service,
            Some(StringMatch::Prefix("Calc".into()))
        );
        assert_eq!(
            table.routes[1].headers,
            vec![("tenant".to_owned(), StringMatch::Prefix("a".into()))]
        );
        assert_eq!(table.routes[1].destinations.entries().len(), 2);
        assert_eq!(
            table.routes[2].service,
            Some(StringMatch::Exact("Calculator".into()))
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_rejected_with_the_route_named() {
        use thrift::route_match::MatchSpecifier::MethodName;
        let mut inverted = route(MethodName("add".into()), vec![], &[("v1", 1)]);
        if let Some(m) = inverted.r#match.as_mut() {
            m.invert = true;
        }
        let mut stripped = route(MethodName("add".into()), vec![], &[("v1", 1)]);
        if let Some(a) = stripped.route.as_mut() {
            a.strip_service_name = true;
        }
        let twice = route(
            MethodName("add".into()),
            vec![prefix(":method", "a")],
            &[("v1", 1)],
        );
        let zero = route(MethodName("add".into()), vec![], &[("v1", 0)]);
        for (bad, reason) in [
            (inverted, "inverted"),
            (stripped, "strip_service_name"),
            (twice, "matched twice"),
            (zero, "positive weight"),
        ] {
            let config = thrift::RouteConfiguration {
                name: "calculator:9090".into(),
                routes: vec![bad],
                ..thrift::RouteConfiguration::default()
            };
            let error = thrift_table(&config).unwrap_err();
            assert_eq!(error.resource, "calculator:9090 routes[0]");
            assert!(error.reason.contains(reason), "{error}");
        }
    }
}
