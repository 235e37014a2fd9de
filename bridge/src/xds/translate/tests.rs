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
