//! Golden tests of the xDS translation: registry state plus traffic rules in, every resource a
//! node gets out. Resources are rendered as proto3 JSON through Envoy's own protos (compiled at
//! test time from the sources shipped with `envoy-types`, plus Causeway's extension proto), so a
//! review reads like an Envoy config dump, and a field our code sets that the published schema
//! does not have cannot go unnoticed. `cargo insta review` shows any change for approval.

// Test helpers panic on failure by design: a panic is how a test reports what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use causeway_bridge::rules::RuleSet;
use causeway_bridge::xds::resources::ResourceSet;
use causeway_bridge::xds::translate::{NoPolicies, NodeLocality, Policies, translate};
use common::{snapshot_of, zk};
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Map, Value};

/// Where `envoy-types` keeps the Envoy, xDS, validate and Google API protos it was built from.
fn envoy_proto_root() -> PathBuf {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata failed");
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "envoy-types")
        .expect("envoy-types is a dependency");
    Path::new(package["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .join("proto")
}

/// Every message type the bridge packs, resolvable by name (nested `Any`s included).
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let root = envoy_proto_root();
        let mut includes: Vec<PathBuf> = [
            "data-plane-api",
            "xds",
            "protoc-gen-validate",
            "googleapis",
            "cel-spec",
            "opentelemetry-proto",
            "client_model",
        ]
        .iter()
        .map(|dir| root.join(dir))
        .collect();
        includes.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocols/proto"));
        let mut compiler = protox::Compiler::new(includes).unwrap();
        compiler.include_imports(true);
        compiler
            .open_files([
                "envoy/config/cluster/v3/cluster.proto",
                "envoy/config/endpoint/v3/endpoint.proto",
                "envoy/config/listener/v3/listener.proto",
                "envoy/config/route/v3/route.proto",
                "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
                "envoy/extensions/filters/http/router/v3/router.proto",
                "envoy/extensions/filters/http/fault/v3/fault.proto",
                "envoy/extensions/filters/network/dubbo_proxy/v3/route.proto",
                "envoy/extensions/filters/network/thrift_proxy/v3/route.proto",
                "envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto",
                "envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto",
                "envoy/extensions/load_balancing_policies/random/v3/random.proto",
                "envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto",
                "causeway/xds/v1/extras.proto",
            ])
            .unwrap();
        compiler.descriptor_pool()
    })
}

/// `{type: {name: resource as JSON}}` for the resource types Envoy's protos describe.
fn render(set: &ResourceSet) -> Value {
    let mut types = Map::new();
    for type_url in set.type_urls() {
        let Some(message_name) = type_url.strip_prefix("type.googleapis.com/") else {
            // MCP resources are Istio types, checked by their own tests.
            continue;
        };
        let descriptor = pool().get_message_by_name(message_name).unwrap();
        let mut resources = Map::new();
        for (name, resource) in set.of_type(type_url).resources.iter() {
            let message =
                DynamicMessage::decode(descriptor.clone(), resource.body.value.as_slice()).unwrap();
            resources.insert(name.clone(), serde_json::to_value(&message).unwrap());
        }
        types.insert(message_name.to_owned(), Value::Object(resources));
    }
    Value::Object(types)
}

fn rules(text: &str) -> RuleSet {
    RuleSet::parse("rules.yaml", text).unwrap()
}

fn golden(urls: &[&str], policies: &dyn Policies, node: &NodeLocality) -> Value {
    render(&translate(&snapshot_of(&[zk(urls)]), policies, node))
}

const GREETER_V1: &str = "dubbo://10.0.1.1:20880/com.acme.Greeter?interface=com.acme.Greeter&methods=greet,slow&aeraki_meta_app_version=v1&region=r1&zone=za";
const GREETER_V2: &str = "dubbo://10.0.1.2:20880/com.acme.Greeter?interface=com.acme.Greeter&methods=greet,slow&aeraki_meta_app_version=v2&region=r1&zone=zb&weight=50";
const GREETER_FAR: &str = "dubbo://10.0.1.3:20880/com.acme.Greeter?interface=com.acme.Greeter&methods=greet,slow&aeraki_meta_app_version=v1&region=r2&zone=zc";

#[test]
fn without_rules_every_port_routes_to_all_its_endpoints() {
    insta::assert_json_snapshot!(golden(
        &[
            GREETER_V1,
            "tri://10.0.2.1:50051/com.acme.Orders?interface=com.acme.Orders&region=r1&zone=za",
            "thrift://10.0.2.9:9090/Calculator?interface=Calculator&region=r1&zone=zb",
        ],
        &NoPolicies,
        &NodeLocality::default(),
    ));
}

const DUBBO_RULES: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter}
spec:
  host: com.acme.greeter
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        failover: [{from: r1, to: r2}]
    outlierDetection: {consecutiveGatewayErrors: 3, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
    - {name: v1, labels: {version: v1}}
    - name: v2
      labels: {version: v2}
      trafficPolicy:
        loadBalancer: {consistentHash: {httpHeaderName: userId}}
        connectionPool:
          tcp: {maxConnections: 64, connectTimeout: 250ms}
          http: {http1MaxPendingRequests: 32, http2MaxRequests: 128, maxRetries: 3}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: greeter}
spec:
  hosts: [com.acme.greeter]
  routes:
    - name: slow-calls-to-v2
      match: {attributes: {method: {exact: slow}}}
      route: [{destination: {host: com.acme.greeter, subset: v2}}]
      timeout: 3s
      retries: {attempts: 2, perTryTimeout: 1s, retryOn: 'timeout,threadpool-exhausted'}
      fault:
        delay: {percentage: {value: 10}, fixedDelay: 100ms}
        abort: {percentage: {value: 0.5}, dubboStatus: SERVER_ERROR}
    - name: gold-users
      match: {attributes: {interface: {exact: com.acme.Greeter}, user-tier: {prefix: gold}}}
      route: [{destination: {host: com.acme.greeter, subset: v2}}]
    - name: never-matches
      match: {attributes: {interface: {exact: com.acme.Other}}}
      route: [{destination: {host: com.acme.greeter, subset: v1}}]
    - name: canary
      route:
        - {destination: {host: com.acme.greeter, subset: v1}, weight: 80}
        - {destination: {host: com.acme.greeter, subset: v2}, weight: 20}
      mirror: {host: com.acme.greeter, subset: v2}
      mirrorPercentage: {value: 12.5}
      requestMutation: [{key: env, value: canary}]
";

#[test]
fn dubbo_method_attachment_and_weighted_routes_with_subset_policies() {
    let node = NodeLocality {
        region: "r1".into(),
        zone: "za".into(),
    };
    insta::assert_json_snapshot!(golden(
        &[GREETER_V1, GREETER_V2, GREETER_FAR],
        &rules(DUBBO_RULES),
        &node,
    ));
}

const GRPC_RULES: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: search}
spec:
  host: acme.v1.search
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: search}
spec:
  hosts: [acme.v1.search]
  http:
    - name: canary-header
      match:
        - headers: {x-canary: {exact: 'yes'}}
        - uri: {prefix: /acme.v1.Search/Beta}
          authority: {regex: 'search\\..*'}
      route: [{destination: {host: acme.v1.search, subset: v2}}]
      timeout: 2s
      retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 'unavailable,cancelled'}
    - name: chaos
      match: [{headers: {x-chaos: {}}}]
      route: [{destination: {host: acme.v1.search, subset: v1}}]
      fault:
        delay: {fixedDelay: 100ms, percentage: {value: 10}}
        abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.5}}
    - name: split
      route:
        - {destination: {host: acme.v1.search, subset: v1}, weight: 90}
        - {destination: {host: acme.v1.search, subset: v2}, weight: 10}
      mirror: {host: acme.v1.search, subset: v2}
      retries: {attempts: 2}
";

#[test]
fn grpc_matches_timeouts_retries_faults_and_mirrors() {
    insta::assert_json_snapshot!(golden(
        &[
            "grpc://10.0.3.1:9000/acme.v1.Search?interface=acme.v1.Search&aeraki_meta_app_version=v1&region=r1&zone=za",
            "grpc://10.0.3.2:9000/acme.v1.Search?interface=acme.v1.Search&aeraki_meta_app_version=v2&region=r1&zone=za",
        ],
        &rules(GRPC_RULES),
        &NodeLocality::default(),
    ));
}

const THRIFT_RULES: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calculator}
spec:
  host: calculator
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: calculator}
spec:
  hosts: [calculator]
  routes:
    - name: add-to-v2
      match: {attributes: {method: {exact: add}}}
      route: [{destination: {host: calculator, subset: v2}}]
      requestMirrorPolicies: [{destination: {host: calculator, subset: v1}, percentage: {value: 50}}]
    - name: reports
      match: {attributes: {method: {prefix: report}, service: {exact: Calculator}, tenant: {exact: acme}}}
      route: [{destination: {host: calculator, subset: v1}}]
      retries: {attempts: 1}
      fault: {abort: {percentage: {value: 25}, thriftException: 1}}
    - route: [{destination: {host: calculator, subset: v1}}]
";

#[test]
fn thrift_method_service_and_header_routes() {
    insta::assert_json_snapshot!(golden(
        &[
            "thrift://10.0.4.1:9090/Calculator?interface=Calculator&aeraki_meta_app_version=v1",
            "thrift://10.0.4.2:9090/Calculator?interface=Calculator&aeraki_meta_app_version=v2",
        ],
        &rules(THRIFT_RULES),
        &NodeLocality::default(),
    ));
}

const ISOLATION_RULES: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter}
spec:
  host: com.acme.greeter
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 64}
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: batchjob, labels: {version: v2}}
---
apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {name: greeter}
spec:
  host: com.acme.greeter
  classes:
    - name: batch
      match:
        attributes: {batch: {exact: 'true'}, method: {prefix: report}}
        headers: {x-caller-app: {regex: 'report-.*'}}
      maxConcurrency: 8
      subset: batchjob
      shedOrder: 0
    - name: user
      maxConcurrency: 48
      shedOrder: 10
      priority: HIGH
  defaultClass: user
  highPriorityConnectionPool:
    tcp: {maxConnections: 16}
    http: {http2MaxRequests: 48, http1MaxPendingRequests: 8}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: greeter}
spec:
  hosts: [com.acme.greeter]
  localRateLimit:
    tokenBucket: {maxTokens: 100, tokensPerFill: 10, fillInterval: 100ms}
    conditions:
      - match: {attributes: {method: {exact: slow}, tenant: {}}}
        tokenBucket: {maxTokens: 5, fillInterval: 1s}
";

#[test]
fn isolation_classes_and_local_rate_limit_ride_on_every_cluster() {
    insta::assert_json_snapshot!(golden(
        &[GREETER_V1, GREETER_V2],
        &rules(ISOLATION_RULES),
        &NodeLocality::default(),
    ));
}
