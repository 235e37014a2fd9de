use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, route, route_action};

use super::*;
use crate::model::derive::DeriveConfig;
use crate::model::filter::Filter;
use crate::model::provider::RegistryScope;
use crate::model::store::ModelStore;
use crate::registry::dubbo_url::DubboUrl;
use crate::registry::{RegistryEvent, RegistryMessage};
use crate::rules::RuleSet;

fn snapshot() -> Snapshot {
    let mut store = ModelStore::new(
        DeriveConfig::default(),
        Filter::default(),
        Duration::from_secs(30),
        &["zk"],
    );
    let urls = [
        "grpc://10.0.0.1:50051/demo.Greeter?interface=demo.Greeter&aeraki_meta_app_version=v1&region=r1&zone=z1",
        "grpc://10.0.0.2:50051/demo.Greeter?interface=demo.Greeter&aeraki_meta_app_version=v2&region=r1&zone=z2",
        "grpc://10.0.0.3:50051/demo.Greeter?interface=demo.Greeter&aeraki_meta_app_version=v2&region=r2&zone=z9",
        "dubbo://10.0.0.4:20880/demo.Orders?interface=demo.Orders",
    ];
    let entries = urls
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let p = DubboUrl::parse(u)
                .unwrap()
                .into_provider(RegistryScope::Global)
                .unwrap();
            (i.to_string(), p)
        })
        .collect();
    for event in [RegistryEvent::Resync(entries), RegistryEvent::Up] {
        store.apply(RegistryMessage {
            registry: Arc::from("zk"),
            event,
            observed: Instant::now(),
        });
    }
    store.build(Instant::now()).0
}

const CANARY: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter}
spec:
  host: demo.greeter
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter}
spec:
  hosts: [demo.greeter]
  http:
    - route:
        - {destination: {host: demo.greeter, subset: v1}, weight: 80}
        - {destination: {host: demo.greeter, subset: v2}, weight: 20}
";

fn rules(text: &str) -> RuleSet {
    RuleSet::parse("rules.yaml", text).unwrap()
}

fn decode<M: prost::Message + Default>(set: &ResourceSet, type_url: &str, name: &str) -> M {
    let any = &set.of_type(type_url).resources[name].body;
    M::decode(any.value.as_slice()).unwrap()
}

#[test]
fn grpc_services_get_listeners_routes_clusters_and_endpoints() {
    let set = translate(&snapshot(), &NoPolicies, &NodeLocality::default());
    let clusters: Vec<&String> = set.of_type(CLUSTER).resources.keys().collect();
    assert_eq!(
        clusters,
        [
            "outbound|20880||demo.orders",
            "outbound|50051||demo.greeter"
        ]
    );
    let listeners: Vec<&String> = set.of_type(LISTENER).resources.keys().collect();
    assert_eq!(
        listeners,
        ["demo.greeter:50051"],
        "Dubbo ports get no API listener"
    );
    let route: RouteConfiguration = decode(&set, ROUTE, "demo.greeter:50051");
    assert_eq!(
        route.virtual_hosts[0].domains,
        ["demo.greeter", "demo.greeter:50051"]
    );
    let cla: ClusterLoadAssignment = decode(&set, ENDPOINT, "outbound|50051||demo.greeter");
    assert_eq!(cla.endpoints.len(), 3, "one group per locality");
    assert!(
        cla.endpoints
            .iter()
            .all(|l| l.locality.is_some() && l.priority == 0)
    );
}

#[test]
fn priorities_follow_the_node_locality_without_gaps() {
    let node = NodeLocality {
        region: "r1".into(),
        zone: "z2".into(),
    };
    let set = translate(&snapshot(), &NoPolicies, &node);
    let cla: ClusterLoadAssignment = decode(&set, ENDPOINT, "outbound|50051||demo.greeter");
    let by_zone: BTreeMap<String, u32> = cla
        .endpoints
        .iter()
        .map(|l| (l.locality.clone().unwrap().zone, l.priority))
        .collect();
    assert_eq!(by_zone["z2"], 0);
    assert_eq!(by_zone["z1"], 1);
    assert_eq!(by_zone["z9"], 2);
    // A node in a zone with no endpoints: priorities still start at 0.
    let far = NodeLocality {
        region: "r1".into(),
        zone: "z7".into(),
    };
    let set = translate(&snapshot(), &NoPolicies, &far);
    let cla: ClusterLoadAssignment = decode(&set, ENDPOINT, "outbound|50051||demo.greeter");
    let mut priorities: Vec<u32> = cla.endpoints.iter().map(|l| l.priority).collect();
    priorities.sort_unstable();
    assert_eq!(priorities, [0, 0, 1]);
}

#[test]
fn subsets_and_weighted_routes() {
    let set = translate(&snapshot(), &rules(CANARY), &NodeLocality::default());
    let v2: ClusterLoadAssignment = decode(&set, ENDPOINT, "outbound|50051|v2|demo.greeter");
    let total: usize = v2.endpoints.iter().map(|l| l.lb_endpoints.len()).sum();
    assert_eq!(total, 2);
    let route: RouteConfiguration = decode(&set, ROUTE, "demo.greeter:50051");
    let Some(route::Action::Route(action)) = &route.virtual_hosts[0].routes[0].action else {
        panic!("route action expected");
    };
    let Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) =
        &action.cluster_specifier
    else {
        panic!("weighted clusters expected");
    };
    let split: Vec<(&str, u32)> = weighted
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(
        split,
        [
            ("outbound|50051|v1|demo.greeter", 80),
            ("outbound|50051|v2|demo.greeter", 20)
        ]
    );
}

#[test]
fn identical_inputs_give_identical_versions() {
    let a = translate(&snapshot(), &rules(CANARY), &NodeLocality::default());
    let b = translate(&snapshot(), &rules(CANARY), &NodeLocality::default());
    assert_eq!(a, b);
    assert_eq!(a.of_type(CLUSTER).version(), b.of_type(CLUSTER).version());
}

const PRIORITIES: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter}
spec:
  host: demo.greeter
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 2}}
  subsets:
    - {name: v1, labels: {version: v1}}
    - name: v2
      labels: {version: v2}
      trafficPolicy:
        connectionPool: {tcp: {maxConnections: 4}}
---
apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {name: greeter}
spec:
  host: demo.greeter
  classes:
    - {name: user, match: {headers: {x-caller-app: {prefix: shop-}}}, maxConcurrency: 100, priority: HIGH}
  highPriorityConnectionPool:
    http: {http2MaxRequests: 50, maxRetries: 5}
";

/// `(priority, max_connections, max_pending_requests, max_requests, max_retries)` per entry.
type Entry = (i32, Option<u32>, Option<u32>, Option<u32>, Option<u32>);

fn thresholds(set: &ResourceSet, name: &str) -> Vec<Entry> {
    let cluster: envoy_types::pb::envoy::config::cluster::v3::Cluster = decode(set, CLUSTER, name);
    let value = |v: Option<envoy_types::pb::google::protobuf::UInt32Value>| v.map(|v| v.value);
    cluster
        .circuit_breakers
        .map(|b| b.thresholds)
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            (
                t.priority,
                value(t.max_connections),
                value(t.max_pending_requests),
                value(t.max_requests),
                value(t.max_retries),
            )
        })
        .collect()
}

#[test]
fn thresholds_per_routing_priority_and_the_class_priority_in_the_extras() {
    use causeway_protocols::xds_ext::{RoutingPriority, SERVICE_EXTRAS_KEY, ServiceExtras};
    let set = translate(&snapshot(), &rules(PRIORITIES), &NodeLocality::default());
    // Envoy's RoutingPriority: DEFAULT = 0, HIGH = 1.
    let high = (1, None, None, Some(50), Some(5));
    assert_eq!(
        thresholds(&set, "outbound|50051||demo.greeter"),
        [(0, None, None, Some(2), None), high]
    );
    // A subset's own pool replaces the host's DEFAULT one; HIGH is the host's on every cluster.
    assert_eq!(
        thresholds(&set, "outbound|50051|v2|demo.greeter"),
        [(0, Some(4), None, None, None), high]
    );
    // Without DEFAULT limits, only the HIGH entry: DEFAULT keeps Envoy's defaults.
    let only_high = PRIORITIES.replace(
        "  trafficPolicy:\n    connectionPool: {http: {http2MaxRequests: 2}}\n",
        "",
    );
    let set_high = translate(&snapshot(), &rules(&only_high), &NodeLocality::default());
    assert_eq!(
        thresholds(&set_high, "outbound|50051|v1|demo.greeter"),
        [high]
    );
    // Without a HIGH pool, one DEFAULT entry as before.
    let no_high = PRIORITIES
        .split("  highPriorityConnectionPool:")
        .next()
        .unwrap();
    let set_default = translate(&snapshot(), &rules(no_high), &NodeLocality::default());
    assert_eq!(
        thresholds(&set_default, "outbound|50051||demo.greeter"),
        [(0, None, None, Some(2), None)]
    );
    // The class's priority travels with the classes.
    let cluster: envoy_types::pb::envoy::config::cluster::v3::Cluster =
        decode(&set, CLUSTER, "outbound|50051|v1|demo.greeter");
    let any = &cluster.metadata.unwrap().typed_filter_metadata[SERVICE_EXTRAS_KEY];
    let extras = <ServiceExtras as prost::Message>::decode(any.value.as_slice()).unwrap();
    let class = &extras.isolation.unwrap().classes[0];
    assert_eq!(class.priority(), RoutingPriority::High);
}
