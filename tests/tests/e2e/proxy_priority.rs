//! Circuit breakers per routing priority (issue 7) with real peers: a Python `grpcio` provider
//! that holds every call (`tests/python/flaky_server.py`) behind causeway-proxy, and the real
//! `grpcio` client. The host's DestinationRule allows 2 requests in flight (the DEFAULT
//! priority); its TrafficIsolation puts the `user` class at HIGH priority with a
//! `highPriorityConnectionPool` of 50. With DEFAULT full, a flood of batch calls is refused at
//! once (`UO`, UNAVAILABLE "request limit") while as many user calls at the same moment are all
//! answered, and the overflow counter shows the refusals under `priority="default"` only. Once in
//! local mode, once through the bridge (CDS HIGH thresholds, the class priority in
//! `ServiceExtras`).

use std::time::Duration;

use causeway_proxy::app::RunningProxy;
use causeway_proxy::config::ListenProtocol;
use causeway_tests::python::PythonEnv;
use causeway_tests::{assert_eventually, logs};

use crate::proxy_grpc::grpc_batch;
use crate::proxy_resilience::{flaky, grpc_service, sample, start_bridge_and_proxy, start_proxy};
use crate::xds_grpc::HOST;

/// How long the provider holds each call: the DEFAULT slots stay taken while the flood runs
/// (a Python client needs a second or two to start on a busy machine).
const HOLD: &str = "slow:5000";

/// The DEFAULT limit (DestinationRule) and the HIGH one (TrafficIsolation), for `HOST`.
fn rules() -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter}}
spec:
  host: {HOST}
  trafficPolicy:
    connectionPool: {{http: {{http2MaxRequests: 2}}}}
---
apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {{name: greeter}}
spec:
  host: {HOST}
  classes:
  - name: user
    match: {{headers: {{x-caller-app: {{prefix: shop-}}}}}}
    maxConcurrency: 100
    priority: HIGH
  highPriorityConnectionPool:
    http: {{http2MaxRequests: 50}}
"
    )
}

/// Indents `text` by two spaces, for a block scalar in the proxy's config.
fn indented(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn high_priority_users_pass_while_default_batch_calls_overflow() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let (_busy, port) = flaky(&python, "grpc", "busy", HOLD).await;
    let config = format!(
        "admin_listen: 127.0.0.1:0
listen: [{{protocol: grpc, address: 127.0.0.1:0}}]
workload: priority-caller
services:
{}rules: |
{}",
        grpc_service(HOST, &[port]),
        indented(&rules()),
    );
    let (proxy, _dir) = start_proxy(&config).await;
    flood_and_users(&proxy, &python, "outbound|50051||demo.greeter").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn high_priority_thresholds_and_class_priorities_travel_over_xds() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let (_busy, port) = flaky(&python, "grpc", "busy", HOLD).await;
    let registry = format!(
        "services:\n  - interface: demo.Greeter\n    protocol: grpc\n    methods: [SayHello]\n    endpoints:\n      - {{address: 127.0.0.1, port: {port}, labels: {{region: r1, zone: z1}}}}\n"
    );
    let (_bridge, proxy, _dir) =
        start_bridge_and_proxy(&registry, &rules(), "priority-caller").await;
    let cluster = format!("outbound|{port}||{HOST}");
    assert_eventually!(within Duration::from_secs(30); {
        let snapshot = proxy.store.load();
        let thresholds = snapshot.cluster(&cluster).map(|c| {
            let breaker = &c.breaker.thresholds;
            (breaker.default.max_requests, breaker.high.max_requests, c.endpoints.len())
        });
        let classes = snapshot
            .admission(HOST)
            .and_then(|p| p.isolation.as_ref())
            .map(|i| i.classes.len());
        thresholds == Some((2, 50, 1)) && classes == Some(1) && snapshot.http_table(HOST).is_some()
    }, "the proxy never got both priorities' thresholds and the classes over xDS: {:?}", proxy.store.load());
    flood_and_users(&proxy, &python, &cluster).await;
}

/// Two batch calls take DEFAULT's two slots; while they are held, ten more batch calls and ten
/// user calls arrive together: every batch call is refused at once, every user call answered.
async fn flood_and_users(proxy: &RunningProxy, python: &PythonEnv, cluster: &str) {
    let target = proxy.addr(ListenProtocol::Grpc).unwrap().to_string();
    let batch_args = ["--parallel", "x-caller-app=report-nightly"];
    let user_args = ["--parallel", "x-caller-app=shop-web"];
    let sent = |text: &str| {
        sample(
            text,
            "causeway_proxy_upstream_requests_total",
            &[&format!("destination_service=\"{HOST}\"")],
        )
    };
    let holders = grpc_batch(python, &target, 2, &batch_args);
    let flood = async {
        // Only once both holders are with the provider is DEFAULT full for certain.
        assert_eventually!(
            sent(&proxy.metrics.encode().unwrap()) >= 2.0,
            "the two batch calls never reached the provider"
        );
        tokio::join!(
            grpc_batch(python, &target, 10, &batch_args),
            grpc_batch(python, &target, 10, &user_args),
        )
    };
    let (held, (batch, users)) = tokio::join!(holders, flood);
    println!(
        "priorities: held {:?}, batch {:?}, users {:?}",
        held.codes, batch.codes, users.codes
    );
    assert_eq!(held.counts.get("busy"), Some(&2), "{held:?}");
    assert_eq!(users.counts.get("busy"), Some(&10), "{users:?}");
    assert_eq!(batch.codes.get("UNAVAILABLE"), Some(&10), "{batch:?}");
    assert!(
        batch
            .last_error
            .contains(&format!("{cluster} is at its request limit")),
        "{batch:?}"
    );

    let text = proxy.metrics.encode().unwrap();
    let overflow = |priority: &str| {
        sample(
            &text,
            "causeway_proxy_upstream_overflow_total",
            &[
                &format!("cluster=\"{cluster}\""),
                &format!("priority=\"{priority}\""),
            ],
        )
    };
    assert_eq!(overflow("default"), 10.0, "{text}");
    assert_eq!(overflow("high"), 0.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "istio_requests_total",
            &[
                &format!("destination_service=\"{HOST}\""),
                "grpc_response_status=\"14\"",
                "response_flags=\"UO\""
            ]
        ),
        10.0,
        "{text}"
    );
    // Every call that was not refused reached the provider: 2 held and 10 users.
    assert_eq!(sent(&text), 12.0, "{text}");

    // The config dump shows both priorities' thresholds.
    let dump: serde_json::Value = reqwest::get(format!("http://{}/config_dump", proxy.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let breaker = &dump["clusters"][cluster]["breaker"];
    assert_eq!(breaker["default"]["max_requests"], 2, "{breaker}");
    assert_eq!(breaker["high"]["max_requests"], 50, "{breaker}");
    assert_eq!(breaker["high"]["max_connections"], 1024, "{breaker}");
}
