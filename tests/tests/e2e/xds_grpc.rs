//! The bridge's xDS server against independent clients: Python `grpcio`'s own xDS resolver and
//! balancers (proxyless gRPC) calling real gRPC servers known to the bridge through ZooKeeper, and
//! `xds-protos` (the Envoy protos as the gRPC project generates them) decoding every resource.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use causeway_bridge::app::{self, RunningBridge};
use causeway_bridge::registry::dubbo_url::url_encode;
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use causeway_tests::python::PythonEnv;
use causeway_tests::zookeeper::ZooKeeperServer;
use causeway_tests::{assert_eventually, logs};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use zookeeper_client as zk;

use crate::mesh::bridge_config;

pub(crate) const IFACE: &str = "demo.Greeter";
pub(crate) const HOST: &str = "demo.greeter";

/// A Python gRPC server answering with `reply` (its version, or a name telling servers apart).
/// Servers of one service share a port on different loopback addresses, as providers on
/// different hosts do (the service port is the most common endpoint port).
pub(crate) async fn greeter(python: &PythonEnv, ip: &str, port: u16, reply: &str) -> PeerProcess {
    let name = format!("greeter-{reply}-{port}");
    let mut command = python.command(&workspace_root().join("tests/python/grpc_greeter.py"));
    command.arg(ip).arg(port.to_string()).arg(reply);
    let mut process =
        PeerProcess::spawn(&name, command, PeerProcess::temp_dir(&name).unwrap()).unwrap();
    let log = process.dir().join(format!("{name}.log"));
    process
        .wait_ready(Duration::from_secs(60), || {
            let ready = std::fs::read_to_string(&log).is_ok_and(|t| t.contains("READY"));
            async move {
                anyhow::ensure!(ready, "not ready");
                Ok(())
            }
        })
        .await
        .unwrap();
    process
}

pub(crate) fn provider_path(ip: &str, port: u16, version: &str, zone: &str) -> String {
    let url = format!(
        "grpc://{ip}:{port}/{IFACE}?interface={IFACE}&methods=SayHello\
         &aeraki_meta_app_version={version}&region=r1&zone={zone}"
    );
    format!("/dubbo/{IFACE}/providers/{}", url_encode(&url))
}

pub(crate) async fn register(client: &zk::Client, path: &str) {
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    // Every ancestor of the provider node, outermost first.
    let parents = path.match_indices('/').skip(1).map(|(at, _)| &path[..at]);
    for dir in parents {
        match client.create(dir, b"", &persistent).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(error) => panic!("{dir}: {error}"),
        }
    }
    client
        .create(
            path,
            b"",
            &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
}

pub(crate) async fn start_bridge(zk: &ZooKeeperServer, rules: Option<&Path>) -> RunningBridge {
    let config = bridge_config(
        vec![format!("zookeeper://{}?name=zk", zk.connect_string())],
        rules.map(Path::to_owned),
    );
    app::start(config).await.unwrap()
}

/// Whether the bridge serves `listener` yet (what a client would get right now).
async fn serves_listener(bridge: &RunningBridge, listener: &str) -> bool {
    let url = format!("http://{}/debug/config_dump", bridge.admin_addr);
    let Ok(response) = reqwest::get(url).await else {
        return false;
    };
    let dump: serde_json::Value = response.json().await.unwrap_or_default();
    dump["resources"]["type.googleapis.com/envoy.config.listener.v3.Listener"]
        .get(listener)
        .is_some()
}

#[derive(Debug, Deserialize)]
struct Batch {
    counts: BTreeMap<String, u32>,
    errors: u32,
    last_error: String,
}

/// The long-lived Python xDS client; each batch runs on the same channel.
struct XdsClient {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    _dir: tempfile::TempDir,
}

impl XdsClient {
    async fn start(python: &PythonEnv, bridge: &RunningBridge, target: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = dir.path().join("bootstrap.json");
        let config = serde_json::json!({
            "xds_servers": [{
                "server_uri": bridge.xds_addr.to_string(),
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"]
            }],
            "node": {"id": "python-grpc-client", "locality": {"region": "r1", "zone": "z1"}}
        });
        std::fs::write(&bootstrap, config.to_string()).unwrap();
        let mut child = tokio::process::Command::new(python.python())
            .arg(workspace_root().join("tests/python/xds_client.py"))
            .arg(format!("xds:///{target}"))
            .env("GRPC_XDS_BOOTSTRAP", &bootstrap)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            _child: child,
            stdin,
            lines,
            _dir: dir,
        }
    }

    async fn batch(&mut self, calls: u32) -> Batch {
        self.stdin
            .write_all(format!("{calls}\n").as_bytes())
            .await
            .unwrap();
        let line = tokio::time::timeout(Duration::from_secs(120), self.lines.next_line())
            .await
            .expect("batch finished in time")
            .unwrap()
            .expect("client still running");
        serde_json::from_str(&line).unwrap()
    }
}

/// One gRPC service on one port, as providers on different hosts: v1 at 127.0.0.1 and two v2
/// servers at 127.0.0.2 and 127.0.0.3 (replying "v2a" and "v2b" so tests can tell them apart),
/// all registered in ZooKeeper; the 127.0.0.3 one is there to be removed.
struct Estate {
    port: u16,
    removable_path: String,
    _kept: Vec<PeerProcess>,
    removable_server: Option<PeerProcess>,
}

impl Estate {
    async fn start(python: &PythonEnv, client: &zk::Client) -> Self {
        let port = free_port().unwrap();
        let kept = vec![
            greeter(python, "127.0.0.1", port, "v1").await,
            greeter(python, "127.0.0.2", port, "v2a").await,
        ];
        let removable_server = greeter(python, "127.0.0.3", port, "v2b").await;
        register(client, &provider_path("127.0.0.1", port, "v1", "z1")).await;
        register(client, &provider_path("127.0.0.2", port, "v2", "z1")).await;
        let removable_path = provider_path("127.0.0.3", port, "v2", "z1");
        register(client, &removable_path).await;
        Self {
            port,
            removable_path,
            _kept: kept,
            removable_server: Some(removable_server),
        }
    }

    /// Stops the removable server (after its registration is gone).
    fn stop_removable(&mut self) {
        self.removable_server = None;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_xds_client_follows_registry_changes() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let zk = ZooKeeperServer::start().await.unwrap();
    let client = zk::Client::connect(&zk.connect_string()).await.unwrap();
    let mut estate = Estate::start(&python, &client).await;
    let (port, removable) = (estate.port, estate.removable_path.clone());
    let bridge = start_bridge(&zk, None).await;
    assert_eventually!(
        bridge
            .snapshots
            .borrow()
            .services
            .get(HOST)
            .is_some_and(|s| s.endpoints.len() == 3)
    );

    let mut grpc = XdsClient::start(&python, &bridge, &format!("{HOST}:{port}")).await;
    let batch = grpc.batch(300).await;
    assert_eq!(batch.errors, 0, "{}", batch.last_error);
    // Round robin over three endpoints: each gets about a third.
    for server in ["v1", "v2a", "v2b"] {
        let n = batch.counts.get(server).copied().unwrap_or(0);
        assert!((80..=120).contains(&n), "{server}: {batch:?}");
    }

    // Endpoint removal reaches the client without a restart; then the server can go.
    client.delete(&removable, None).await.unwrap();
    let mut last: Option<Batch>;
    assert_eventually!(
        {
            let batch = grpc.batch(60).await;
            let done = batch.errors == 0 && !batch.counts.contains_key("v2b");
            last = Some(batch);
            done
        },
        "removal never reached the client: {last:?}"
    );
    estate.stop_removable();
    let batch = grpc.batch(100).await;
    assert_eq!(batch.errors, 0, "{}", batch.last_error);
    assert!(!batch.counts.contains_key("v2b"), "{batch:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_resource_type_decodes_with_xds_protos() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let zk = ZooKeeperServer::start().await.unwrap();
    let client = zk::Client::connect(&zk.connect_string()).await.unwrap();
    let rules = mixed_estate(&client).await;
    let bridge = start_bridge(&zk, Some(rules.path())).await;
    assert_eventually!(bridge.snapshots.borrow().services.len() == 3);
    let cluster = format!("outbound|50051||{HOST}");
    let listener = format!("{HOST}:50051");
    let output = python
        .command(&workspace_root().join("tests/python/xds_decode.py"))
        .arg(bridge.xds_addr.to_string())
        .arg("decoder")
        .arg("type.googleapis.com/envoy.config.listener.v3.Listener")
        .arg(format!(
            "type.googleapis.com/envoy.config.route.v3.RouteConfiguration={listener}"
        ))
        .arg("type.googleapis.com/envoy.config.cluster.v3.Cluster")
        .arg(format!(
            "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment={cluster}"
        ))
        .arg(format!("{DUBBO_ROUTE}=demo.orders:20880"))
        .arg(format!("{THRIFT_ROUTE}=calculator:9090"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        decoded["type.googleapis.com/envoy.config.listener.v3.Listener"]["names"][0],
        listener
    );
    assert_eq!(
        decoded["type.googleapis.com/envoy.config.route.v3.RouteConfiguration"]["names"][0],
        listener
    );
    // The whole host and two subsets for each of the three services.
    assert_eq!(
        decoded["type.googleapis.com/envoy.config.cluster.v3.Cluster"]["count"],
        9
    );
    let dubbo = decoded[DUBBO_ROUTE]["messages"][0].as_str().unwrap();
    assert!(
        dubbo.contains("interface: \"demo.Orders\"")
            && dubbo.contains("exact: \"place\"")
            && dubbo.contains("causeway.io/meta_route"),
        "{dubbo}"
    );
    let thrift = decoded[THRIFT_ROUTE]["messages"][0].as_str().unwrap();
    assert!(
        thrift.contains("method_name: \"add\"") && thrift.contains("request_mirror_policies"),
        "{thrift}"
    );
    let cla = &decoded["type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"];
    assert_eq!(cla["names"][0], cluster);
    let text = cla["messages"][0].as_str().unwrap();
    assert!(
        text.contains("region: \"r1\"") && text.contains("port_value: 50051"),
        "{text}"
    );
}

/// gRPC, Dubbo and Thrift providers in ZooKeeper, and the rules file for them.
async fn mixed_estate(client: &zk::Client) -> tempfile::NamedTempFile {
    register(client, &provider_path("10.0.0.1", 50051, "v1", "z1")).await;
    register(client, &provider_path("10.0.0.2", 50051, "v2", "z2")).await;
    for (interface, url) in [
        (
            "demo.Orders",
            "dubbo://10.0.0.3:20880/demo.Orders?interface=demo.Orders&methods=place&aeraki_meta_app_version=v1",
        ),
        (
            "Calculator",
            "thrift://10.0.0.4:9090/Calculator?interface=Calculator&aeraki_meta_app_version=v1",
        ),
    ] {
        register(
            client,
            &format!("/dubbo/{interface}/providers/{}", url_encode(url)),
        )
        .await;
    }
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), META_RULES).unwrap();
    rules
}

/// Resource names and versions per type, as `/debug/config_dump` shows them.
async fn served_versions(bridge: &RunningBridge) -> serde_json::Value {
    let url = format!("http://{}/debug/config_dump", bridge.admin_addr);
    let dump: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    dump["resources"].clone()
}

/// Replicas are stateless: two bridges fed the same registry and rules serve byte-identical
/// resources (equal content hashes) of every type, so proxies can fail over between them.
#[tokio::test]
async fn two_bridges_with_the_same_inputs_serve_identical_resources() {
    logs::init();
    let zk = ZooKeeperServer::start().await.unwrap();
    let client = zk::Client::connect(&zk.connect_string()).await.unwrap();
    let rules = mixed_estate(&client).await;
    let first = start_bridge(&zk, Some(rules.path())).await;
    let second = start_bridge(&zk, Some(rules.path())).await;
    // Both must have the estate and the rules (the rules watcher runs on its own schedule).
    assert_eventually!(
        served_versions(&first).await[DUBBO_ROUTE]
            .as_object()
            .is_some_and(|routes| !routes.is_empty())
            && served_versions(&first).await == served_versions(&second).await
    );
    let served = served_versions(&first).await;
    for type_url in [
        "type.googleapis.com/envoy.config.listener.v3.Listener",
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
        DUBBO_ROUTE,
        THRIFT_ROUTE,
        "networking.istio.io/v1alpha3/ServiceEntry",
    ] {
        let resources = served[type_url].as_object().unwrap();
        assert!(!resources.is_empty(), "{type_url} served");
    }
    assert_eq!(first.snapshots.borrow().services.len(), 3);
    assert_eq!(
        first.snapshots.borrow().version,
        second.snapshots.borrow().version
    );
}

const DUBBO_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.RouteConfiguration";
const THRIFT_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.RouteConfiguration";

/// Subsets for every service and MetaRouters for the Dubbo and Thrift ones, so each served type
/// carries its rule-derived fields (subset policies, method matches, extras, mirrors).
const META_RULES: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all}
spec:
  host: '*'
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutiveGatewayErrors: 2, interval: 1s}
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: orders}
spec:
  hosts: [demo.orders]
  routes:
    - match: {attributes: {method: {exact: place}}}
      route: [{destination: {host: demo.orders, subset: v1}}]
      requestMutation: [{key: env, value: test}]
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: calculator}
spec:
  hosts: [calculator]
  routes:
    - match: {attributes: {method: {exact: add}}}
      route: [{destination: {host: calculator, subset: v1}}]
      mirror: {host: calculator, subset: v2}
";

fn canary_rules(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter, namespace: default}}
spec:
  host: {HOST}
  subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: greeter, namespace: default}}
spec:
  hosts: [{HOST}]
  http:
    - route:
        - {{destination: {{host: {HOST}, subset: v1}}, weight: {v1}}}
        - {{destination: {{host: {HOST}, subset: v2}}, weight: {v2}}}
"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_xds_client_follows_virtual_service_weights_without_restart() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let zk = ZooKeeperServer::start().await.unwrap();
    let client = zk::Client::connect(&zk.connect_string()).await.unwrap();
    let mut estate = Estate::start(&python, &client).await;
    let (port, removable) = (estate.port, estate.removable_path.clone());
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, canary_rules(80, 20)).unwrap();
    let bridge = start_bridge(&zk, Some(&rules)).await;
    assert_eventually!(
        bridge
            .snapshots
            .borrow()
            .services
            .get(HOST)
            .is_some_and(|s| s.endpoints.len() == 3)
    );
    let target = format!("{HOST}:{port}");
    assert_eventually!(serves_listener(&bridge, &target).await);
    let mut grpc = XdsClient::start(&python, &bridge, &target).await;

    // 80/20 by subset weight, though v2 has twice v1's endpoints: within ±5 % over 2,000 calls.
    let batch = grpc.batch(2000).await;
    assert_eq!(batch.errors, 0, "{}", batch.last_error);
    let v1 = f64::from(batch.counts.get("v1").copied().unwrap_or(0));
    let share = v1 / 2000.0;
    tracing::info!(share, ?batch.counts, "v1 share with an 80/20 VirtualService");
    assert!(
        (0.75..=0.85).contains(&share),
        "v1 share {share}: {batch:?}"
    );

    // 0/100 reaches the same channel.
    std::fs::write(&rules, canary_rules(0, 100)).unwrap();
    let mut last: Option<Batch>;
    assert_eventually!(
        {
            let batch = grpc.batch(50).await;
            let done = batch.errors == 0 && !batch.counts.contains_key("v1");
            last = Some(batch);
            done
        },
        "0/100 never reached the client: {last:?}"
    );

    // An endpoint removal, then its server going away: no failed call.
    client.delete(&removable, None).await.unwrap();
    assert_eventually!(
        bridge
            .snapshots
            .borrow()
            .services
            .get(HOST)
            .is_some_and(|s| s.endpoints.len() == 2)
    );
    let batch = grpc.batch(50).await;
    assert_eq!(batch.errors, 0, "{}", batch.last_error);
    estate.stop_removable();
    let batch = grpc.batch(200).await;
    assert_eq!(batch.errors, 0, "{}", batch.last_error);
    assert_eq!(batch.counts.get("v2a"), Some(&200), "{batch:?}");
}
