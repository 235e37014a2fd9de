//! Every dashboard, live: a real mesh carries traffic on all four protocols and a real Prometheus
//! (Debian's) scrapes the bridge and both proxies every second, with the repository's recording
//! and alert rules loaded and a `namespace` target label as a Kubernetes scrape would add. Then
//! every panel query and every variable query of every dashboard (variables at *All*, as a first
//! visit shows them) must return data, except queries listed in [`EXPECTED_EMPTY`], which must be
//! valid and return nothing. The mesh fails, sheds and overflows on purpose, so the error panels
//! have data too and the list is empty.
//!
//! The mesh: a real ZooKeeper; Apache Dubbo Java providers v1 (zone a) and v2 (zone b); Apache
//! Thrift Python servers v1 and v2; Python `grpcio` greeters v1 and v2 plus a registered v1
//! endpoint nothing listens on (connect failures, retries and an ejection); a Python
//! `http.server`. The bridge serves them over xDS with the rules below (80/20 splits, method
//! routes, TrafficIsolation classes `user` and `batch` for the Dubbo service, a local rate limit
//! on Thrift `multiply` that sheds most of those calls, a circuit breaker of one request in flight
//! on the HTTP service that bursts overflow) to two proxies in xDS mode: `order-consumer` (Dubbo,
//! Thrift) and `web-consumer` (gRPC, HTTP). Callers: the Java
//! Dubbo consumer (`greet` as user traffic, `slow` as batch traffic), the Thrift Python client, the
//! `grpcio` client (also an unrouted path: proxy-answered `NR` failures), plain HTTP/1.1 GETs, and
//! a frame of garbage (a protocol error). A second xDS client NACKs what the bridge sends it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use causeway_proxy::app as proxy_app;
use causeway_proxy::config::ListenProtocol;
use causeway_tests::ports::free_port;
use causeway_tests::prometheus::{PrometheusServer, Scrape};
use causeway_tests::promql;
use causeway_tests::python::PythonEnv;
use causeway_tests::zookeeper::ZooKeeperServer;
use causeway_tests::{assert_eventually, logs};
use tokio::io::AsyncWriteExt as _;
use zookeeper_client as zk;

use crate::bridge_dubbo_java::{HOST as DUBBO_HOST, JavaProvider, run_consumer, sample};
use crate::dashboards::{
    Contract, dashboard_files, exposition, load, nack_every_response, queries, rule_files,
};
use crate::mesh::xds_proxy_config;
use crate::proxy_grpc::{grpc_batch, http_get, http_server};
use crate::xds_grpc::{HOST as GRPC_HOST, greeter, provider_path, register, start_bridge};

/// Queries meant to return nothing on a healthy mesh, by dashboard file and panel title, and why.
/// Each must still be a valid query (Prometheus accepts it) and must return no series.
/// (A counter without labels, such as READONLY events, always has a series, so its rate is data,
/// zero here.)
/// Nothing is listed today: every panel has data on this mesh. An entry is `(dashboard file,
/// panel title, why it is empty)`.
const EXPECTED_EMPTY: [(&str, &str, &str); 0] = [];

/// The Scrape's `namespace` label.
const NAMESPACE: &str = "causeway-e2e";

fn rules(thrift_host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter}}
spec:
  host: {DUBBO_HOST}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {{name: greeter}}
spec:
  hosts: [{DUBBO_HOST}]
  routes:
  - name: split
    route:
    - {{destination: {{host: {DUBBO_HOST}, subset: v1}}, weight: 80}}
    - {{destination: {{host: {DUBBO_HOST}, subset: v2}}, weight: 20}}
---
apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {{name: greeter}}
spec:
  host: {DUBBO_HOST}
  classes:
  - name: batch
    match: {{attributes: {{method: {{exact: slow}}}}}}
    maxConcurrency: 50
    shedOrder: 0
  - name: user
    maxConcurrency: 200
    shedOrder: 10
  defaultClass: user
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: calculator}}
spec:
  host: {thrift_host}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {{name: calculator}}
spec:
  hosts: [{thrift_host}]
  routes:
  - name: multiply-to-v2
    match: {{attributes: {{method: {{exact: multiply}}}}}}
    route: [{{destination: {{host: {thrift_host}, subset: v2}}}}]
  - name: split
    route:
    - {{destination: {{host: {thrift_host}, subset: v1}}, weight: 80}}
    - {{destination: {{host: {thrift_host}, subset: v2}}, weight: 20}}
  localRateLimit:
    conditions:
    - match: {{attributes: {{method: {{exact: multiply}}}}}}
      tokenBucket: {{maxTokens: 50, tokensPerFill: 1, fillInterval: 60s}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter-grpc}}
spec:
  host: {GRPC_HOST}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: greeter-grpc}}
spec:
  hosts: [{GRPC_HOST}]
  http:
  - name: split
    route:
    - {{destination: {{host: {GRPC_HOST}, subset: v1}}, weight: 80}}
    - {{destination: {{host: {GRPC_HOST}, subset: v2}}, weight: 20}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web}}
spec:
  host: demo.web
  trafficPolicy:
    connectionPool:
      http: {{http2MaxRequests: 1}}
"
    )
}

async fn proxy(
    bridge: &causeway_bridge::app::RunningBridge,
    workload: &str,
    zone: &str,
    protocols: &[ListenProtocol],
) -> proxy_app::RunningProxy {
    proxy_app::start(
        xds_proxy_config(
            bridge.xds_addr,
            protocols,
            &format!("{}/{zone}", crate::bridge_dubbo_java::REGION),
            workload,
            &format!("{workload}-1"),
        ),
        None,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_returns_data_from_a_live_mesh() {
    logs::init();
    let started = Instant::now();
    let python = PythonEnv::shared().unwrap();
    let (zookeeper, program) = tokio::join!(ZooKeeperServer::start(), sample());
    let (zookeeper, program) = (zookeeper.unwrap(), program.unwrap());
    let registry = format!("zookeeper://{}", zookeeper.connect_string());
    let zk_client = zk::Client::connect(&zookeeper.connect_string())
        .await
        .unwrap();

    // Providers of all four protocols, started together.
    let thrift_port = free_port().unwrap();
    let grpc_port = free_port().unwrap();
    let web_port = free_port().unwrap();
    let (dubbo_v1, dubbo_v2, thrift_v1, thrift_v2, grpc_v1, grpc_v2, (_web, _files)) = tokio::join!(
        JavaProvider::start_as(&program, &registry, "v1", "zone-a", &[]),
        JavaProvider::start_as(&program, &registry, "v2", "zone-b", &[]),
        crate::proxy_thrift::server(&python, "127.0.0.1", thrift_port, "v1"),
        crate::proxy_thrift::server(&python, "127.0.0.2", thrift_port, "v2"),
        greeter(&python, "127.0.0.1", grpc_port, "v1"),
        greeter(&python, "127.0.0.2", grpc_port, "v2"),
        http_server(&python, web_port),
    );
    let _providers = (
        dubbo_v1.unwrap(),
        dubbo_v2.unwrap(),
        thrift_v1,
        thrift_v2,
        grpc_v1,
        grpc_v2,
    );
    crate::proxy_thrift::register(&zk_client, "127.0.0.1", thrift_port, "v1").await;
    crate::proxy_thrift::register(&zk_client, "127.0.0.2", thrift_port, "v2").await;
    register(
        &zk_client,
        &provider_path("127.0.0.1", grpc_port, "v1", "z1"),
    )
    .await;
    register(
        &zk_client,
        &provider_path("127.0.0.2", grpc_port, "v2", "z1"),
    )
    .await;
    // Registered, never started: its connects fail, so calls are retried elsewhere and it is
    // ejected.
    register(
        &zk_client,
        &provider_path("127.0.0.3", grpc_port, "v1", "z2"),
    )
    .await;
    let web_url = format!(
        "http://127.0.0.1:{web_port}/demo.Web?interface=demo.Web&aeraki_meta_app_version=v1&region=r1&zone=z1"
    );
    register(
        &zk_client,
        &format!(
            "/dubbo/demo.Web/providers/{}",
            causeway_bridge::registry::dubbo_url::url_encode(&web_url)
        ),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yaml");
    std::fs::write(&rules_path, rules(crate::proxy_thrift::HOST)).unwrap();
    let bridge = start_bridge(&zookeeper, Some(&rules_path)).await;
    let orders = proxy(
        &bridge,
        "order-consumer",
        "zone-a",
        &[ListenProtocol::Dubbo, ListenProtocol::Thrift],
    )
    .await;
    let web = proxy(
        &bridge,
        "web-consumer",
        "zone-a",
        &[ListenProtocol::Grpc, ListenProtocol::Http],
    )
    .await;
    let nacker = nack_every_response(bridge.xds_addr).await;
    let prometheus = PrometheusServer::start_with(Scrape {
        targets: vec![bridge.admin_addr, orders.admin, web.admin],
        metrics_path: "/metrics".into(),
        labels: BTreeMap::from([("namespace".to_owned(), NAMESPACE.to_owned())]),
        rule_files: rule_files(),
    })
    .await
    .unwrap();

    assert_eventually!(within Duration::from_secs(60); {
        let o = orders.store.load();
        let w = web.store.load();
        let has = |s: &causeway_proxy::routing::Snapshot, host: &str, subset: &str| {
            s.clusters.values().any(|c| c.host == host && c.subset == subset && !c.endpoints.is_empty())
        };
        has(&o, DUBBO_HOST, "v1") && has(&o, DUBBO_HOST, "v2")
            && has(&o, crate::proxy_thrift::HOST, "v1") && has(&o, crate::proxy_thrift::HOST, "v2")
            && o.admission(DUBBO_HOST).is_some()
            && has(&w, GRPC_HOST, "v1") && has(&w, GRPC_HOST, "v2")
            && w.http_table("demo.web").is_some()
    }, "the proxies never received every service: {:?}\n{:?}", orders.store.load(), web.store.load());
    println!("mesh ready after {:?}", started.elapsed());

    // Traffic on every protocol at once.
    let dubbo_url = format!("dubbo://{}", orders.dubbo_addr().unwrap());
    let thrift = orders.addr(ListenProtocol::Thrift).unwrap();
    let grpc_target = web.addr(ListenProtocol::Grpc).unwrap().to_string();
    let http = web.addr(ListenProtocol::Http).unwrap();
    let dubbo_calls = async {
        let args = [
            "--url",
            &dubbo_url,
            "--method",
            "greet,slow",
            "--millis",
            "1",
            "--calls",
            "300",
        ];
        let run = run_consumer(&program, &args).await.unwrap();
        assert!(run.success, "the Dubbo consumer failed:\n{}", run.stderr);
    };
    let thrift_calls = async {
        let mut command =
            tokio::process::Command::from(python.command(&crate::proxy_thrift::script()));
        command.args([
            "client",
            &thrift.ip().to_string(),
            &thrift.port().to_string(),
            "300",
        ]);
        let output = command.output().await.unwrap();
        assert!(
            output.status.success(),
            "the Thrift client failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let grpc_calls = async {
        let batch = grpc_batch(&python, &grpc_target, 300, &[]).await;
        assert_eq!(batch.errors, 0, "{}", batch.last_error);
        // No route: answered by the proxy (UNIMPLEMENTED, response flag NR), a failure.
        let lost = grpc_batch(&python, &grpc_target, 5, &["--path=/other.Service/Call"]).await;
        assert_eq!(lost.errors, 5, "{lost:?}");
    };
    let http_calls = async {
        // One at a time: within demo.web's limit of one request in flight.
        for _ in 0..50 {
            let (status, _) = http_get(http, "demo.web", "/hello.txt").await;
            assert_eq!(status, 200);
        }
        // Small bursts at once until the circuit breaker refuses one (503, UO). Small, so they
        // stay within http.server's listen backlog (5): a larger burst can make connects time out
        // instead, which ejects the endpoint rather than filling the breaker.
        assert_eventually!(
            {
                let burst: Vec<_> = (0..4)
                    .map(|_| tokio::spawn(http_get(http, "demo.web", "/hello.txt")))
                    .collect();
                for call in burst {
                    let status = call.await.unwrap().0;
                    assert!(status == 200 || status == 503, "status {status}");
                }
                web.metrics
                    .encode()
                    .unwrap()
                    .contains("causeway_proxy_upstream_overflow_total{")
            },
            "no burst ever overflowed demo.web's circuit breaker"
        );
    };
    let garbage = async {
        let mut stream = tokio::net::TcpStream::connect(orders.dubbo_addr().unwrap())
            .await
            .unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\n\r\nnot dubbo at all")
            .await
            .unwrap();
    };
    tokio::join!(dubbo_calls, thrift_calls, grpc_calls, http_calls, garbage);
    println!("traffic done after {:?}", started.elapsed());

    // Every query with its expectation; the ones with data are polled together until each has
    // returned some, so a failure names every query still without data at once.
    let mut waiting = Vec::new();
    let mut empty = Vec::new();
    let mut total = 0;
    for file in dashboard_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for query in queries(&file, &load(&file)) {
            total += 1;
            let expr = promql::substitute_grafana_variables(&query.expr);
            let expected_empty = EXPECTED_EMPTY.iter().find(|(dashboard, title, _)| {
                *dashboard == name && query.place.contains(&format!("panel \"\"{title}\"\""))
            });
            match expected_empty {
                Some((_, _, why)) => empty.push((query.place, expr, *why)),
                None => waiting.push((query.place, expr)),
            }
        }
    }
    let deadline = tokio::time::Instant::now() + causeway_tests::eventually::patience();
    loop {
        let mut still = Vec::new();
        for (place, expr) in waiting {
            if !prometheus.query(&expr).await.is_ok_and(|r| !r.is_empty()) {
                still.push((place, expr));
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} queries without data:\n{}",
            waiting.len(),
            waiting
                .iter()
                .map(|(place, expr)| format!("{place}\n    {expr}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(causeway_tests::eventually::POLL_INTERVAL * 25).await;
    }
    // Checked once everything else has data, so the scrapes that would have shown them are in.
    for (place, expr, why) in &empty {
        let result = prometheus.query(expr).await;
        assert!(
            result.as_ref().is_ok_and(Vec::is_empty),
            "{place} is listed as empty ({why}) but returned {result:?}"
        );
    }
    println!(
        "{} of {total} queries returned data, {} are empty as listed, after {:?}",
        total - empty.len(),
        empty.len(),
        started.elapsed()
    );
    assert_eq!(
        empty.len(),
        EXPECTED_EMPTY.len(),
        "every listed query exists"
    );
    // The recording rules ran on this traffic: the SLO series the burn-rate alerts read exist for
    // every service that had requests (four here, plus the unrouted calls' `unknown`).
    assert_eventually!(
        prometheus
            .query("causeway:service_error_ratio:rate5m")
            .await
            .is_ok_and(|r| r.len() >= 4),
        "no recorded SLO series: {:?}",
        prometheus
            .query("causeway:service_error_ratio:rate5m")
            .await
    );
    // What the busy proxies export is the contract: every family they export is in it with the
    // same type and labels. (Families of events that did not happen here, such as fault
    // injection, have no series yet; the ones this traffic makes must all be there.)
    let contract = Contract::load();
    let mut seen = std::collections::BTreeSet::new();
    for text in [
        orders.metrics.encode().unwrap(),
        web.metrics.encode().unwrap(),
    ] {
        for (name, family) in exposition(&text) {
            let (kind, labels) = contract.metrics.get(&name).unwrap_or_else(|| {
                panic!("the proxy exports {name}, which docs/observability.md lacks")
            });
            assert_eq!(&family.kind, kind, "{name}: type");
            assert_eq!(&family.labels, labels, "{name}: labels");
            seen.insert(name);
        }
    }
    for name in [
        "istio_requests_total",
        "istio_request_duration_milliseconds",
        "causeway_proxy_upstream_requests_total",
        "causeway_proxy_class_requests_total",
        "causeway_proxy_retries_total",
        "causeway_proxy_outlier_ejections_total",
        "causeway_proxy_protocol_errors_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(seen.contains(name), "no proxy exported {name}: {seen:?}");
    }
    // Every scraped target carries the namespace label the dashboards filter on.
    let up = prometheus
        .query(&format!("up{{namespace=\"{NAMESPACE}\"}} == 1"))
        .await
        .unwrap();
    assert_eq!(up.len(), 3, "{up:?}");
    nacker.abort();
}
