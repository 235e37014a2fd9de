//! Thrift through the whole path, configured by the control plane: two Apache Thrift Python servers
//! (v1, v2; `TThreadedServer`, framed + binary, `TMultiplexedProcessor`) register in a real
//! ZooKeeper as `thrift://…/Calculator`; the bridge discovers them and serves Thrift routes over
//! xDS from a MetaRouter (`multiply` → v2, `slow` aborted by the route's fault injection, the
//! rest 80/20); causeway-proxy runs in xDS mode with a
//! Thrift listener; an Apache Thrift Python client (`TMultiplexedProtocol`) calls through it. The
//! client checks every answer and seqid, and gets a `TApplicationException` for an unknown
//! service; the proxy's metrics match the calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use causeway_bridge::app as bridge_app;
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
use zookeeper_client as zk;

use crate::mesh::{bridge_config, xds_proxy_config};

pub(crate) const SERVICE: &str = "Calculator";
/// The host the bridge derives from `interface=Calculator`.
pub(crate) const HOST: &str = "calculator";
/// Calls per method: enough for the 80/20 split to land within ±5% (4 standard deviations).
const CALLS: usize = 1000;

const RULES: &str = "apiVersion: networking.istio.io/v1
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
  - name: multiply-to-v2
    match: {attributes: {method: {exact: multiply}}}
    route: [{destination: {host: calculator, subset: v2}}]
  - name: slow-always-aborted
    match: {attributes: {method: {exact: slow}}}
    route: [{destination: {host: calculator, subset: v1}}]
    fault: {abort: {percentage: {value: 100}, thriftException: WRONG_METHOD_NAME}}
  - name: split
    route:
    - {destination: {host: calculator, subset: v1}, weight: 80}
    - {destination: {host: calculator, subset: v2}, weight: 20}
";

pub(crate) fn script() -> std::path::PathBuf {
    workspace_root().join("tests/python/thrift_calc.py")
}

/// A Python Thrift server on `ip:port`, answering with `tag`.
pub(crate) async fn server(python: &PythonEnv, ip: &str, port: u16, tag: &str) -> PeerProcess {
    let name = format!("thrift-calc-{tag}");
    let mut command = python.command(&script());
    command.args(["server", ip, &port.to_string(), tag]);
    let mut process =
        PeerProcess::spawn(&name, command, PeerProcess::temp_dir(&name).unwrap()).unwrap();
    let address: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    process
        .wait_ready(Duration::from_secs(60), || async move {
            tokio::net::TcpStream::connect(address).await?;
            Ok(())
        })
        .await
        .unwrap();
    process
}

pub(crate) async fn register(client: &zk::Client, ip: &str, port: u16, version: &str) {
    let url = format!(
        "thrift://{ip}:{port}/{SERVICE}?interface={SERVICE}&methods=add,multiply\
         &aeraki_meta_app_version={version}"
    );
    let path = format!("/dubbo/{SERVICE}/providers/{}", url_encode(&url));
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for dir in path.match_indices('/').skip(1).map(|(at, _)| &path[..at]) {
        match client.create(dir, b"", &persistent).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(error) => panic!("{dir}: {error}"),
        }
    }
    client
        .create(
            &path,
            b"",
            &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
}

#[derive(Debug, Deserialize)]
struct Exception {
    r#type: i32,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Run {
    counts: BTreeMap<String, usize>,
    exceptions: Vec<Exception>,
}

#[tokio::test(flavor = "multi_thread")]
async fn python_thrift_client_through_an_xds_configured_proxy() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let zookeeper = ZooKeeperServer::start().await.unwrap();
    let zk_client = zk::Client::connect(&zookeeper.connect_string())
        .await
        .unwrap();
    // One service port on two loopback addresses, as providers on two hosts would have.
    let port = free_port().unwrap();
    let (v1, v2) = tokio::join!(
        server(&python, "127.0.0.1", port, "v1"),
        server(&python, "127.0.0.2", port, "v2"),
    );
    register(&zk_client, "127.0.0.1", port, "v1").await;
    register(&zk_client, "127.0.0.2", port, "v2").await;

    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yaml");
    std::fs::write(&rules_path, RULES).unwrap();
    let bridge = bridge_app::start(bridge_config(
        vec![format!("zookeeper://{}", zookeeper.connect_string())],
        Some(rules_path),
    ))
    .await
    .unwrap();
    let proxy = proxy_app::start(
        xds_proxy_config(
            bridge.xds_addr,
            &[ListenProtocol::Thrift],
            "",
            "calculator-client",
            "calculator-client-1",
        ),
        None,
    )
    .await
    .unwrap();
    assert_eventually!(within Duration::from_secs(30); {
        let snapshot = proxy.store.load();
        let ready = |subset: &str| {
            snapshot
                .clusters
                .values()
                .any(|c| c.host == HOST && c.subset == subset && !c.endpoints.is_empty())
        };
        snapshot
            .thrift
            .for_service(SERVICE)
            .is_some_and(|t| t.routes.len() == 3)
            && ready("v1")
            && ready("v2")
    }, "the proxy never received the Thrift routes and both servers: {:?}", proxy.store.load());

    let address = proxy.addr(ListenProtocol::Thrift).unwrap();
    let mut command = tokio::process::Command::from(python.command(&script()));
    command.args([
        "client",
        &address.ip().to_string(),
        &address.port().to_string(),
        &CALLS.to_string(),
    ]);
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "the client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: Run = serde_json::from_slice(&output.stdout).unwrap();
    println!("thrift through the proxy: {run:?}");
    let count = |key: &str| run.counts.get(key).copied().unwrap_or(0);
    assert_eq!(count("multiply/v2"), CALLS, "{run:?}");
    assert_eq!(count("add/v1") + count("add/v2"), CALLS, "{run:?}");
    let v1_share = count("add/v1") as f64 / CALLS as f64;
    assert!(
        (v1_share - 0.8).abs() <= 0.05,
        "add v1 share {v1_share}: {run:?}"
    );
    // The unknown service: UNKNOWN_METHOD (1), decoded by Apache Thrift's own client.
    assert_eq!(run.exceptions.len(), 1, "{run:?}");
    assert_eq!(run.exceptions[0].r#type, 1);
    assert!(run.exceptions[0].message.contains("Nope"), "{run:?}");

    let text = proxy.metrics.encode().unwrap();
    let requests = |parts: &[&str]| -> usize {
        text.lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .filter(|l| {
                l.contains("request_protocol=\"thrift\"") && parts.iter().all(|p| l.contains(p))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as usize
    };
    let ok = "response_code=\"0\"";
    let service = "destination_service=\"calculator\"";
    assert_eq!(
        requests(&[
            ok,
            service,
            "request_method=\"add\"",
            "destination_version=\"v1\""
        ]),
        count("add/v1"),
        "{text}"
    );
    assert_eq!(
        requests(&[
            ok,
            service,
            "request_method=\"add\"",
            "destination_version=\"v2\""
        ]),
        count("add/v2")
    );
    assert_eq!(
        requests(&[
            ok,
            service,
            "request_method=\"multiply\"",
            "destination_version=\"v2\""
        ]),
        CALLS
    );
    assert_eq!(
        requests(&["response_code=\"1\"", "response_flags=\"NR\""]),
        1
    );

    // The MetaRouter's fault extension, carried by the bridge in MetaRouteExtras: every `slow`
    // call is aborted with the configured exception type, before reaching a server.
    let mut command = tokio::process::Command::from(python.command(&script()));
    command.args([
        "run",
        &address.ip().to_string(),
        &address.port().to_string(),
        "slow",
        "5",
        "0",
        "2",
        "1",
    ]);
    let output = command.output().await.unwrap();
    assert!(output.status.success());
    let aborted: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let types: Vec<i64> = aborted["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_i64())
        .collect();
    assert_eq!(types, [3; 5], "{aborted}");
    let text = proxy.metrics.encode().unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("causeway_proxy_faults_aborted_total{")
                && l.contains("request_protocol=\"thrift\"")
                && l.ends_with(" 5")),
        "{text}"
    );
    drop((v1, v2));
}
