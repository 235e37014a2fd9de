//! Conversion of the resources the bridge serves, and the rejections that become NACKs.

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, LoadBalancingPolicy, circuit_breakers, load_balancing_policy,
};
use envoy_types::pb::envoy::config::core::v3::{
    Address, Locality as EnvoyLocality, SocketAddress, TypedExtensionConfig, address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::route::v3::{WeightedCluster, weighted_cluster};
use envoy_types::pb::envoy::extensions::load_balancing_policies::ring_hash::v3::RingHash;
use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

use super::*;

const V1: &str = "outbound|20880|v1|demo.greeter";
const V2: &str = "outbound|20880|v2|demo.greeter";

fn metadata(key: &str, any: Any) -> Option<Metadata> {
    Some(Metadata {
        typed_filter_metadata: [(key.to_owned(), any)].into(),
        ..Metadata::default()
    })
}

fn cluster(name: &str, policy: Any) -> EnvoyCluster {
    EnvoyCluster {
        name: name.into(),
        load_balancing_policy: Some(LoadBalancingPolicy {
            policies: vec![load_balancing_policy::Policy {
                typed_extension_config: Some(TypedExtensionConfig {
                    name: "lb".into(),
                    typed_config: Some(policy),
                }),
            }],
        }),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![circuit_breakers::Thresholds {
                max_requests: Some(UInt32Value { value: 7 }),
                ..circuit_breakers::Thresholds::default()
            }],
            ..CircuitBreakers::default()
        }),
        metadata: metadata(
            SERVICE_EXTRAS_KEY,
            pack_any(ServiceExtras {
                methods: vec!["greet".into(), "slow".into()],
                ..ServiceExtras::default()
            }),
        ),
        ..EnvoyCluster::default()
    }
}

fn assignment(name: &str, address: &str, version: &str) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            locality: Some(EnvoyLocality {
                region: "r1".into(),
                zone: "z2".into(),
                sub_zone: String::new(),
            }),
            priority: 1,
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
                    address: Some(Address {
                        address: Some(address::Address::SocketAddress(SocketAddress {
                            address: address.into(),
                            port_specifier: Some(socket_address::PortSpecifier::PortValue(20880)),
                            ..SocketAddress::default()
                        })),
                    }),
                    ..EnvoyEndpoint::default()
                })),
                metadata: metadata(
                    ENDPOINT_EXTRAS_KEY,
                    pack_any(EndpointExtras {
                        labels: vec![causeway_protocols::xds_ext::Attribute {
                            key: "version".into(),
                            value: version.into(),
                        }],
                    }),
                ),
                ..LbEndpoint::default()
            }],
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    }
}

fn routes(method: StringMatcher) -> dubbo::RouteConfiguration {
    let extras = MetaRouteExtras {
        request_mutation: vec![causeway_protocols::xds_ext::Attribute {
            key: "env".into(),
            value: "canary".into(),
        }],
        hash_attribute: "user".into(),
        mirrors: vec![causeway_protocols::xds_ext::Mirror {
            cluster: V1.into(),
            per_million: 250_000,
        }],
        timeout_ms: 900,
        ..MetaRouteExtras::default()
    };
    let weighted = WeightedCluster {
        clusters: [(V1, 80), (V2, 20)]
            .into_iter()
            .map(|(name, weight)| weighted_cluster::ClusterWeight {
                name: name.into(),
                weight: Some(UInt32Value { value: weight }),
                ..weighted_cluster::ClusterWeight::default()
            })
            .collect(),
        ..WeightedCluster::default()
    };
    dubbo::RouteConfiguration {
        name: "demo.greeter:20880".into(),
        interface: "demo.Greeter".into(),
        version: "1.0.0".into(),
        routes: vec![
            dubbo::Route {
                r#match: Some(dubbo::RouteMatch {
                    method: Some(dubbo::MethodMatch {
                        name: Some(method),
                        ..dubbo::MethodMatch::default()
                    }),
                    headers: vec![HeaderMatcher {
                        name: "tier".into(),
                        header_match_specifier: Some(
                            header_matcher::HeaderMatchSpecifier::PresentMatch(true),
                        ),
                        ..HeaderMatcher::default()
                    }],
                }),
                route: Some(dubbo::RouteAction {
                    metadata_match: metadata(META_ROUTE_EXTRAS_KEY, pack_any(extras)),
                    cluster_specifier: Some(dubbo::route_action::ClusterSpecifier::Cluster(
                        V2.into(),
                    )),
                }),
            },
            dubbo::Route {
                r#match: Some(dubbo::RouteMatch::default()),
                route: Some(dubbo::RouteAction {
                    metadata_match: None,
                    cluster_specifier: Some(
                        dubbo::route_action::ClusterSpecifier::WeightedClusters(weighted),
                    ),
                }),
            },
        ],
        ..dubbo::RouteConfiguration::default()
    }
}

fn exact(value: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(value.into())),
        ignore_case: false,
    }
}

#[test]
fn the_bridge_shapes_become_a_routing_snapshot() {
    let clusters: BTreeMap<String, ClusterSpec> = [
        cluster(V1, pack_any(RoundRobin::default())),
        cluster(V2, pack_any(RingHash::default())),
    ]
    .iter()
    .map(|c| (c.name.clone(), cluster_spec(c).unwrap()))
    .collect();
    let assignments: BTreeMap<String, Vec<Endpoint>> = [
        assignment(V1, "10.0.0.1", "v1"),
        assignment(V2, "10.0.0.2", "v2"),
    ]
    .iter()
    .map(|a| (a.cluster_name.clone(), endpoints(a).unwrap()))
    .collect();
    let table = dubbo_table(&routes(exact("slow"))).unwrap();
    let tables = BTreeMap::from([("demo.greeter:20880".to_owned(), table)]);
    let snapshot = assemble("v".into(), &clusters, &assignments, &tables);

    let v1 = snapshot.cluster(V1).unwrap();
    assert_eq!(v1.lb, LbPolicy::RoundRobin);
    assert_eq!(v1.breaker.at(Priority::Default).max_requests, 7);
    // No HIGH entry: Envoy's defaults.
    assert_eq!(v1.breaker.at(Priority::High), &Thresholds::default());
    assert_eq!(
        (v1.host.as_str(), v1.port, v1.subset.as_str()),
        ("demo.greeter", 20880, "v1")
    );
    let endpoint = &v1.endpoints[0];
    assert_eq!(endpoint.address, "10.0.0.1:20880".parse().unwrap());
    assert_eq!(
        (endpoint.priority, endpoint.locality.zone.as_str()),
        (1, "z2")
    );
    assert_eq!(endpoint.labels["version"], "v1");
    // The route to v2 names the attribute v2's ring hash uses.
    assert_eq!(
        snapshot.cluster(V2).unwrap().lb,
        LbPolicy::ConsistentHash(HashOn::Attachment("user".into()))
    );

    let table = snapshot.dubbo_table("demo.Greeter", "", "1.0.0").unwrap();
    assert_eq!(table.host, "demo.greeter");
    assert_eq!(table.methods, ["greet", "slow"]);
    assert_eq!(
        table.routes[0].method,
        Some(StringMatch::Exact("slow".into()))
    );
    assert_eq!(
        table.routes[0].attachments,
        [("tier".to_owned(), StringMatch::Present)]
    );
    assert_eq!(
        table.routes[0].request_mutation,
        [("env".to_owned(), "canary".to_owned())]
    );
    assert_eq!(
        table.routes[0].mirrors,
        [crate::routing::http::MirrorSpec {
            cluster: Arc::from(V1),
            fraction: 0.25
        }]
    );
    assert_eq!(table.routes[0].policy.timeout_ms, Some(900));
    assert_eq!(table.routes[1].destinations.entries().len(), 2);
    assert!(snapshot.needs_attachments("demo.Greeter"));
}

#[test]
fn each_thresholds_entry_holds_its_own_routing_priority() {
    use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
    let entry =
        |priority: i32, requests: u32, connections: Option<u32>| circuit_breakers::Thresholds {
            priority,
            max_requests: Some(UInt32Value { value: requests }),
            max_connections: connections.map(|value| UInt32Value { value }),
            ..circuit_breakers::Thresholds::default()
        };
    let with = |thresholds| EnvoyCluster {
        circuit_breakers: Some(CircuitBreakers {
            thresholds,
            ..CircuitBreakers::default()
        }),
        ..cluster(V1, pack_any(RoundRobin::default()))
    };
    let (high, default) = (
        RoutingPriority::High as i32,
        RoutingPriority::Default as i32,
    );
    // HIGH listed first, and a second HIGH entry Envoy would ignore: the first per priority wins.
    let spec = cluster_spec(&with(vec![
        entry(high, 50, Some(8)),
        entry(default, 2, None),
        entry(high, 999, None),
    ]))
    .unwrap();
    let breaker = spec.breaker;
    assert_eq!(
        breaker.at(Priority::Default),
        &Thresholds {
            max_requests: 2,
            ..Thresholds::default()
        }
    );
    assert_eq!(
        breaker.at(Priority::High),
        &Thresholds {
            max_requests: 50,
            max_connections: 8,
            max_pending: 1024,
        }
    );
    // Only HIGH given: DEFAULT keeps Envoy's defaults.
    let spec = cluster_spec(&with(vec![entry(high, 50, None)])).unwrap();
    assert_eq!(spec.breaker.at(Priority::Default), &Thresholds::default());
    // A priority Envoy does not define is NACKed with the resource and the entry.
    let error = cluster_spec(&with(vec![entry(default, 2, None), entry(5, 1, None)])).unwrap_err();
    assert_eq!(error.resource, V1);
    assert_eq!(
        error.reason,
        "circuit_breakers.thresholds[1]: unknown routing priority 5"
    );
}

#[test]
fn what_the_proxy_cannot_honour_is_rejected_with_the_resource_named() {
    let suffix = StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Suffix("ow".into())),
        ignore_case: false,
    };
    let error = dubbo_table(&routes(suffix)).unwrap_err();
    assert_eq!(error.resource, "demo.greeter:20880 routes[0]");
    assert!(
        error.reason.contains("exact, prefix and safe_regex"),
        "{error}"
    );

    let bad_regex = StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(
            envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                regex: "(".into(),
                ..Default::default()
            },
        )),
        ignore_case: false,
    };
    assert!(
        dubbo_table(&routes(bad_regex))
            .unwrap_err()
            .reason
            .contains("regex")
    );

    // A policy list with nothing this proxy implements.
    let unknown = cluster(
        V1,
        Any {
            type_url: "type.googleapis.com/example.Unknown".into(),
            value: Vec::new(),
        },
    );
    assert!(
        cluster_spec(&unknown)
            .unwrap_err()
            .reason
            .contains("load_balancing_policy")
    );

    // Extras of the wrong type.
    let mut wrong = cluster(V1, pack_any(RoundRobin::default()));
    wrong.metadata = metadata(SERVICE_EXTRAS_KEY, pack_any(RoundRobin::default()));
    assert!(
        cluster_spec(&wrong)
            .unwrap_err()
            .reason
            .contains("expected")
    );
}

#[test]
fn endpoints_named_by_host_name_are_skipped() {
    assert!(
        endpoints(&assignment(V1, "provider.example", "v1"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn isolation_and_rate_limit_extras_reach_the_snapshot_per_host() {
    use causeway_protocols::xds_ext::{
        AttributeMatch, LocalRateLimit, StringMatch as WireMatch, TokenBucket, TrafficClass,
        TrafficIsolation, string_match,
    };
    let extras = ServiceExtras {
        methods: vec!["greet".into()],
        isolation: Some(TrafficIsolation {
            classes: vec![
                TrafficClass {
                    name: "batch".into(),
                    attributes: vec![AttributeMatch {
                        name: "batch".into(),
                        value: Some(WireMatch {
                            pattern: Some(string_match::Pattern::Exact("true".into())),
                        }),
                    }],
                    max_concurrency: 2,
                    subset: "batchjob".into(),
                    ..TrafficClass::default()
                },
                TrafficClass {
                    name: "user".into(),
                    max_concurrency: 10,
                    shed_order: 10,
                    priority: causeway_protocols::xds_ext::RoutingPriority::High as i32,
                    ..TrafficClass::default()
                },
            ],
            default_class: "user".into(),
        }),
        local_rate_limit: Some(LocalRateLimit {
            token_bucket: Some(TokenBucket {
                max_tokens: 5,
                tokens_per_fill: 1,
                fill_interval_nanos: 1_000_000,
            }),
            conditions: vec![],
        }),
    };
    let mut envoy = cluster(
        "outbound|20880||demo.greeter",
        pack_any(RoundRobin::default()),
    );
    envoy.metadata = metadata(SERVICE_EXTRAS_KEY, pack_any(extras.clone()));
    let spec = cluster_spec(&envoy).unwrap();
    let snapshot = assemble(
        "v1".into(),
        &BTreeMap::from([("outbound|20880||demo.greeter".to_owned(), spec)]),
        &BTreeMap::new(),
        &BTreeMap::new(),
    );
    let policy = snapshot.admission("demo.greeter").unwrap();
    let isolation = policy.isolation.as_ref().unwrap();
    assert_eq!(isolation.classes.len(), 2);
    assert_eq!(isolation.default_class, Some(1));
    assert_eq!(isolation.classes[0].subset.as_deref(), Some("batchjob"));
    assert_eq!(
        (isolation.classes[0].priority, isolation.classes[1].priority),
        (Priority::Default, Priority::High)
    );
    assert_eq!(
        policy
            .rate_limit
            .as_ref()
            .unwrap()
            .default
            .unwrap()
            .max_tokens,
        5
    );

    // A class with a routing priority Envoy does not define is NACKed with the reason.
    let mut unknown = extras.clone();
    if let Some(isolation) = unknown.isolation.as_mut() {
        isolation.classes[1].priority = 3;
    }
    envoy.metadata = metadata(SERVICE_EXTRAS_KEY, pack_any(unknown));
    let error = cluster_spec(&envoy).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("traffic class `user` has unknown routing priority 3"),
        "{error}"
    );

    // A class naming a default class that does not exist is NACKed with the reason.
    let mut bad = extras;
    if let Some(isolation) = bad.isolation.as_mut() {
        isolation.default_class = "nobody".into();
    }
    envoy.metadata = metadata(SERVICE_EXTRAS_KEY, pack_any(bad));
    let error = cluster_spec(&envoy).unwrap_err();
    assert!(
        error.to_string().contains("default class `nobody`"),
        "{error}"
    );
}
