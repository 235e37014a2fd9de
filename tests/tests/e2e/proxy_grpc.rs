//! gRPC and HTTP through causeway-proxy in xDS mode, with real peers on both sides: two Python
//! `grpcio` servers (v1, v2) and a Python `http.server` register in a real ZooKeeper; the bridge
//! (in-process) serves them with a DestinationRule and a VirtualService (a header match to v2,
//! else 80/20) over LDS/RDS/CDS/EDS; the proxy takes everything from the bridge; the real
//! `grpcio` client calls the proxy's gRPC port and a plain HTTP/1.1 client its HTTP port. The
//! proxy's metrics must match the calls.

use std::collections::BTreeMap;
use std::time::Duration;

use causeway_bridge::registry::dubbo_url::url_encode;
use causeway_proxy::app as proxy_app;
use causeway_proxy::config::ListenProtocol;
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use causeway_tests::python::PythonEnv;
use causeway_tests::zookeeper::ZooKeeperServer;
use causeway_tests::{assert_eventually, logs};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use zookeeper_client as zk;

use crate::mesh::xds_proxy_config;
use crate::xds_grpc::{HOST, greeter, provider_path, register, start_bridge};

/// Calls in the split batch: ±5 % is about four standard deviations at 80/20.
const CALLS: u32 = 2000;

fn rules() -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter}}
spec:
  host: {HOST}
  subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: greeter}}
spec:
  hosts: [{HOST}]
  http:
    - name: canary
      match: [{{headers: {{x-canary: {{exact: \"true\"}}}}}}]
      route: [{{destination: {{host: {HOST}, subset: v2}}}}]
    - name: split
      route:
        - {{destination: {{host: {HOST}, subset: v1}}, weight: 80}}
        - {{destination: {{host: {HOST}, subset: v2}}, weight: 20}}
"
    )
}

/// What the Python grpcio client saw.
#[derive(Debug, Deserialize)]
pub(crate) struct Batch {
    /// Replies by content.
    pub(crate) counts: BTreeMap<String, u32>,
    /// Calls by status code name (`OK`, `UNAVAILABLE`, ...).
    pub(crate) codes: BTreeMap<String, u32>,
    /// Failed calls.
    pub(crate) errors: u32,
    /// The last failure, `CODE: details`.
    pub(crate) last_error: String,
}

/// Runs the Python grpcio client once: `calls` calls with `args` (see grpc_client.py).
pub(crate) async fn grpc_batch(
    python: &PythonEnv,
    target: &str,
    calls: u32,
    args: &[&str],
) -> Batch {
    let output = tokio::process::Command::new(python.python())
        .arg(workspace_root().join("tests/python/grpc_client.py"))
        .arg(target)
        .arg(calls.to_string())
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Python's `http.server` serving a directory with `hello.txt`.
pub(crate) async fn http_server(python: &PythonEnv, port: u16) -> (PeerProcess, tempfile::TempDir) {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("hello.txt"), "hello from http.server").unwrap();
    let mut command = std::process::Command::new(python.python());
    command
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(files.path());
    let mut process = PeerProcess::spawn(
        "http-server",
        command,
        PeerProcess::temp_dir("http-server").unwrap(),
    )
    .unwrap();
    process
        .wait_ready(Duration::from_secs(30), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            Ok(())
        })
        .await
        .unwrap();
    (process, files)
}

/// One HTTP/1.1 GET through the proxy with `Host: host`; (status, body).
pub(crate) async fn http_get(proxy: std::net::SocketAddr, host: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn metric(text: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("istio_requests_total") && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcio_and_http_clients_through_an_xds_configured_proxy() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let zookeeper = ZooKeeperServer::start().await.unwrap();
    let client = zk::Client::connect(&zookeeper.connect_string())
        .await
        .unwrap();
    let port = free_port().unwrap();
    let _servers = [
        greeter(&python, "127.0.0.1", port, "v1").await,
        greeter(&python, "127.0.0.2", port, "v2").await,
    ];
    register(&client, &provider_path("127.0.0.1", port, "v1", "z1")).await;
    register(&client, &provider_path("127.0.0.2", port, "v2", "z1")).await;
    let web_port = free_port().unwrap();
    let (_web, _files) = http_server(&python, web_port).await;
    let web_url = format!(
        "http://127.0.0.1:{web_port}/demo.Web?interface=demo.Web&aeraki_meta_app_version=v1&region=r1&zone=z1"
    );
    register(
        &client,
        &format!("/dubbo/demo.Web/providers/{}", url_encode(&web_url)),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yaml");
    std::fs::write(&rules_path, rules()).unwrap();
    let bridge = start_bridge(&zookeeper, Some(&rules_path)).await;
    let proxy = proxy_app::start(
        xds_proxy_config(
            bridge.xds_addr,
            &[ListenProtocol::Grpc, ListenProtocol::Http],
            "r1/z1",
            "grpc-caller",
            "grpc-caller-1",
        ),
        None,
    )
    .await
    .unwrap();
    // Listeners, routes, clusters and endpoints of both services arrived over xDS.
    assert_eventually!(within Duration::from_secs(30); {
        let snapshot = proxy.store.load();
        let endpoints = |subset: &str| {
            snapshot
                .clusters
                .values()
                .filter(|c| c.host == HOST && c.subset == subset)
                .map(|c| c.endpoints.len())
                .sum::<usize>()
        };
        snapshot.http_table(HOST).is_some_and(|t| t.routes.len() == 2)
            && snapshot.http_table("demo.web").is_some()
            && endpoints("v1") == 1
            && endpoints("v2") == 1
    }, "the proxy never received the gRPC routes and endpoints: {:?}", proxy.store.load());

    let target = proxy.addr(ListenProtocol::Grpc).unwrap().to_string();
    // The channel's authority is the proxy's own address: routed by the service in the path.
    let batch = grpc_batch(&python, &target, CALLS, &[]).await;
    assert_eq!(batch.errors, 0, "{}", batch.last_error);
    let v1 = batch.counts.get("v1").copied().unwrap_or(0);
    let share = f64::from(v1) / f64::from(CALLS);
    println!("80/20 through the proxy: {:?}", batch.counts);
    assert!((share - 0.8).abs() <= 0.05, "v1 share {share}: {batch:?}");

    // The header match, with the service's own authority this time.
    let authority = format!("--authority={HOST}:{port}");
    let canary = grpc_batch(&python, &target, 100, &[&authority, "x-canary=true"]).await;
    assert_eq!(canary.errors, 0, "{}", canary.last_error);
    assert_eq!(canary.counts.get("v2"), Some(&100), "{canary:?}");

    // No route: a clear UNIMPLEMENTED from the proxy, not a reset.
    let lost = grpc_batch(&python, &target, 3, &["--path=/other.Service/Call"]).await;
    assert_eq!(lost.codes.get("UNIMPLEMENTED"), Some(&3), "{lost:?}");
    assert!(lost.last_error.contains("no route"), "{lost:?}");

    // Plain HTTP/1.1 by Host header to the http.server provider; an unknown host gets 404.
    let http = proxy.addr(ListenProtocol::Http).unwrap();
    for _ in 0..10 {
        let (status, body) = http_get(http, "demo.web", "/hello.txt").await;
        assert_eq!((status, body.as_str()), (200, "hello from http.server"));
    }
    let (status, body) = http_get(http, "nowhere.example", "/").await;
    assert_eq!(status, 404, "{body}");

    let text = proxy.metrics.encode().unwrap();
    let grpc_ok = |version: &str| {
        metric(
            &text,
            &[
                "request_protocol=\"grpc\"",
                "destination_service=\"demo.greeter\"",
                &format!("destination_version=\"{version}\""),
                "response_code=\"200\"",
                "grpc_response_status=\"0\"",
                "request_method=\"SayHello\"",
            ],
        )
    };
    assert_eq!(grpc_ok("v1"), f64::from(v1), "{text}");
    assert_eq!(grpc_ok("v2"), f64::from(CALLS - v1 + 100), "{text}");
    assert_eq!(
        metric(
            &text,
            &["grpc_response_status=\"12\"", "response_flags=\"NR\""]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &[
                "request_protocol=\"http\"",
                "destination_service=\"demo.web\"",
                "response_code=\"200\"",
                "request_method=\"GET\"",
            ]
        ),
        10.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &["request_protocol=\"http\"", "response_code=\"404\""]
        ),
        1.0,
        "{text}"
    );
}
