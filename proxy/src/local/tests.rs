//! Unit tests of local-mode translation: clusters per subset, route tables from MetaRouters,
//! policies, and validation errors.

use super::*;
use crate::routing::Priority;

const CONFIG: &str = r#"
locality: eu/eu-a
services:
- host: demo.greeter
  port: 20880
  dubbo: {interface: demo.Greeter, version: 1.0.0, methods: [greet]}
  endpoints:
  - {address: 127.0.0.1, port: 1001, labels: {version: v1}, locality: eu/eu-a}
  - {address: 127.0.0.1, port: 1002, labels: {version: v1}, locality: eu/eu-b, weight: 3}
  - {address: 127.0.0.1, port: 1003, labels: {version: v2}, locality: us/us-a}
- host: demo.other
  port: 20880
  dubbo: {interface: demo.Other}
  endpoints:
  - {address: 127.0.0.1, port: 1004}
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: greeter}
  spec:
    host: demo.greeter
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
      connectionPool: {tcp: {connectTimeout: 250ms}, http: {http2MaxRequests: 7}}
    subsets:
    - {name: v1, labels: {version: v1}}
    - name: v2
      labels: {version: v2}
      trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: user}}}
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {name: greeter}
  spec:
    hosts: [demo.greeter]
    routes:
    - name: place-to-v2
      match: {attributes: {method: {exact: place}}}
      route: [{destination: {host: demo.greeter, subset: v2}}]
      requestMutation: [{key: routed, value: "yes"}]
    - name: wrong-interface
      match: {attributes: {interface: {exact: demo.Nope}}}
      route: [{destination: {host: demo.greeter, subset: v2}}]
    - name: canary
      match: {attributes: {canary: {exact: "true"}}}
      route: [{destination: {host: demo.greeter, subset: v2}}]
    - name: split
      route:
      - {destination: {host: demo.greeter, subset: v1}, weight: 80}
      - {destination: {host: demo.greeter, subset: v2}, weight: 20}
"#;

fn snapshot(text: &str) -> Result<Snapshot, ConfigError> {
    let config = ProxyConfig::parse(text).unwrap();
    let rules = load_rules(&config, None)?;
    build_snapshot(&config, &rules)
}

#[test]
fn clusters_follow_subsets_policies_and_localities() {
    let s = snapshot(CONFIG).unwrap();
    let names: Vec<&str> = s.clusters.keys().map(|k| &**k).collect();
    assert_eq!(
        names,
        [
            "outbound|20880|v1|demo.greeter",
            "outbound|20880|v2|demo.greeter",
            "outbound|20880||demo.greeter",
            "outbound|20880||demo.other",
        ]
    );
    let all = s.cluster("outbound|20880||demo.greeter").unwrap();
    assert_eq!(all.endpoints.len(), 3);
    let prio: Vec<u32> = all.endpoints.iter().map(|e| e.priority).collect();
    assert_eq!(
        prio,
        [0, 2, 3],
        "same zone is tier 0, same region 2, elsewhere 3"
    );
    assert_eq!(all.endpoints[1].weight, 3);
    assert_eq!(all.lb, LbPolicy::RoundRobin);
    assert_eq!(all.breaker.at(Priority::Default).max_requests, 7);
    assert_eq!(all.breaker.connect_timeout_ms, 250);
    let v1 = s.cluster("outbound|20880|v1|demo.greeter").unwrap();
    assert_eq!(v1.endpoints.len(), 2);
    let v2 = s.cluster("outbound|20880|v2|demo.greeter").unwrap();
    assert_eq!(v2.endpoints.len(), 1);
    assert_eq!(
        v2.lb,
        LbPolicy::ConsistentHash(HashOn::Attachment("user".into()))
    );
    assert_eq!(
        v2.breaker.at(Priority::Default).max_requests,
        7,
        "the host's pool applies to subsets without their own"
    );
    assert_eq!(s.version.len(), 16);
    assert_eq!(
        s.version,
        snapshot(CONFIG).unwrap().version,
        "content-hashed"
    );
}

#[test]
fn the_high_priority_pool_comes_from_the_traffic_isolation() {
    let config = CONFIG.replace(
        "      - {destination: {host: demo.greeter, subset: v2}, weight: 20}\n",
        "      - {destination: {host: demo.greeter, subset: v2}, weight: 20}
  ---
  apiVersion: causeway.io/v1alpha1
  kind: TrafficIsolation
  metadata: {name: greeter}
  spec:
    host: demo.greeter
    classes:
    - {name: user, match: {attributes: {tier: {exact: gold}}}, maxConcurrency: 50, priority: HIGH}
    highPriorityConnectionPool:
      tcp: {maxConnections: 9}
      http: {http2MaxRequests: 50}
",
    );
    let s = snapshot(&config).unwrap();
    for name in [
        "outbound|20880||demo.greeter",
        "outbound|20880|v1|demo.greeter",
        "outbound|20880|v2|demo.greeter",
    ] {
        let breaker = &s.cluster(name).unwrap().breaker;
        assert_eq!(breaker.at(Priority::Default).max_requests, 7, "{name}");
        assert_eq!(
            breaker.at(Priority::High),
            &Thresholds {
                max_requests: 50,
                max_connections: 9,
                max_pending: 1024,
            },
            "{name}: the host's HIGH pool, unset fields at Envoy's defaults"
        );
        // The connect timeout is the cluster's, whatever the priority.
        assert_eq!(breaker.connect_timeout_ms, 250);
    }
    let policy = s.admission("demo.greeter").unwrap();
    let class = &policy.isolation.as_ref().unwrap().classes[0];
    assert_eq!(class.priority, Priority::High);
    // Another host, without a TrafficIsolation: Envoy's defaults at HIGH.
    let other = s.cluster("outbound|20880||demo.other").unwrap();
    assert_eq!(other.breaker.at(Priority::High), &Thresholds::default());
}

#[test]
fn route_tables_come_from_meta_routers() {
    let s = snapshot(CONFIG).unwrap();
    let table = s.dubbo_table("demo.Greeter", "", "1.0.0").unwrap();
    let names: Vec<&str> = table.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["place-to-v2", "canary", "split"],
        "routes for other interfaces are dropped"
    );
    assert_eq!(
        table.routes[0].request_mutation,
        [("routed".to_owned(), "yes".to_owned())]
    );
    let split: Vec<(&str, u32)> = table.routes[2]
        .destinations
        .entries()
        .iter()
        .map(|(c, w)| (&**c, *w))
        .collect();
    assert_eq!(
        split,
        [
            ("outbound|20880|v1|demo.greeter", 80),
            ("outbound|20880|v2|demo.greeter", 20)
        ]
    );
    assert_eq!(
        table.methods,
        ["greet", "place"],
        "configured plus routed methods"
    );
    assert!(
        s.dubbo_table("demo.Greeter", "", "2.0.0").is_none(),
        "version is part of the key"
    );
    assert!(s.needs_attachments("demo.Greeter"));
    // No MetaRouter: one default route to every endpoint, any group or version.
    let other = s.dubbo_table("demo.Other", "g", "9").unwrap();
    assert_eq!(other.routes.len(), 1);
    assert_eq!(
        &*other.routes[0].destinations.entries()[0].0,
        "outbound|20880||demo.other"
    );
    assert!(!s.needs_attachments("demo.Other"));
}

#[test]
fn invalid_configs_name_the_field() {
    let err = |text: &str| snapshot(text).unwrap_err().to_string();
    let e = err(
        "services: [{host: a, port: 1, dubbo: {interface: A}, endpoints: [{address: 127.0.0.1, weight: 0}]}]",
    );
    assert!(e.contains("services[0].endpoints[0].weight"), "{e}");
    let e = err("services: [{host: a, port: 1}]");
    assert!(e.contains("services[0].dubbo"), "{e}");
    let e = err(
        "services: [{host: a, port: 1, dubbo: {interface: A}}, {host: a, port: 1, dubbo: {interface: B}}]",
    );
    assert!(e.contains("configured twice"), "{e}");
    let e = err(
        "services: [{host: a, port: 1, dubbo: {interface: A}}, {host: b, port: 1, dubbo: {interface: A}}]",
    );
    assert!(e.contains("already served"), "{e}");
    let e = err("services: [{host: a, port: 1, dubbo: {interface: A}}]\n\
         rules: |\n  apiVersion: metaprotocol.aeraki.io/v1alpha1\n  kind: MetaRouter\n  metadata: {name: r}\n  spec:\n    hosts: [a]\n    routes: [{route: [{destination: {host: b}}]}]\n");
    assert!(e.contains("destination host b"), "{e}");
    let e = err(
        "rules: |\n  apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: r}\n  spec: {host: a, bogus: 1}\n",
    );
    assert!(e.contains("invalid rules") && e.contains("bogus"), "{e}");
}
