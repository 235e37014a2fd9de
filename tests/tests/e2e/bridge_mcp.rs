//! The bridge's MCP-over-xDS output against an independent consumer: `tests/go/mcp-client`, a Go
//! program built on Istio's own generated types (`istio.io/api`) and go-control-plane's ADS
//! client, subscribes the way istiod does with an `xds://` config source (SotW, wildcard, ACK)
//! and decodes every resource as `istio.mcp.v1alpha1.Resource` → `ServiceEntry`. Services come
//! from a watched registry file; edits to it must arrive as updates on the same stream.

use std::process::Stdio;
use std::time::Duration;

use causeway_bridge::app::{self, RunningBridge};
use causeway_bridge::config::BridgeConfig;
use causeway_tests::go::GoProgram;
use causeway_tests::paths::workspace_root;
use causeway_tests::{assert_eventually, logs};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::mesh::bridge_config;

const SERVICE_ENTRY: &str = "networking.istio.io/v1alpha3/ServiceEntry";
const VIRTUAL_SERVICE: &str = "networking.istio.io/v1alpha3/VirtualService";
const ORDER: &str = "default/causeway-com-acme-order-orderservice-1-2-0";
const BILLING: &str = "default/causeway-billing";

fn registry_file(with_v2: bool, with_billing: bool) -> String {
    let mut yaml = "\
services:
  - interface: com.acme.order.OrderService
    version: 1.2.0
    methods: [create, cancel]
    endpoints:
      - address: 10.0.0.1
        port: 20880
        labels: {aeraki_meta_app_version: v1, region: r1, zone: z1}
        weight: 100
"
    .to_owned();
    if with_v2 {
        yaml.push_str(
            "      - address: 10.0.0.2
        port: 20880
        labels: {aeraki_meta_app_version: v2, region: r1, zone: z2}
        weight: 50
",
        );
    }
    if with_billing {
        yaml.push_str(
            "  - name: billing
    protocol: http
    endpoints:
      - address: 10.0.1.1
        port: 8080
",
        );
    }
    yaml
}

async fn start_bridge(registry: &std::path::Path) -> RunningBridge {
    let config = BridgeConfig {
        // A service removed from the file goes at once instead of draining for 30 s.
        drop_to_zero_grace_ms: 0,
        ..bridge_config(
            vec![format!("file://{}?name=static", registry.display())],
            None,
        )
    };
    app::start(config).await.unwrap()
}

/// One decoded ServiceEntry response, as the Go client prints it.
#[derive(Debug, Clone, Deserialize)]
struct Response {
    type_url: String,
    version_info: String,
    resources: Vec<Resource>,
}

#[derive(Debug, Clone, Deserialize)]
struct Resource {
    name: String,
    version: String,
    labels: std::collections::BTreeMap<String, String>,
    annotations: std::collections::BTreeMap<String, String>,
    create_time: Option<String>,
    /// The ServiceEntry in protobuf JSON (camelCase field names, enum names).
    spec: Value,
}

impl Response {
    fn get(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    fn names(&self) -> Vec<&str> {
        self.resources.iter().map(|r| r.name.as_str()).collect()
    }
}

fn endpoint_addresses(resource: &Resource) -> Vec<&str> {
    resource.spec["endpoints"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["address"].as_str()).collect())
        .unwrap_or_default()
}

/// The Go client, with its stdout read line by line.
struct McpClient {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    /// The latest ServiceEntry response.
    latest: Option<Response>,
    /// How many ServiceEntry responses arrived.
    responses: usize,
    /// Other config types the bridge answered (istiod asks for every type it knows and is not
    /// ready until each is answered, even with nothing).
    answered: std::collections::BTreeSet<String>,
}

impl McpClient {
    fn start(bridge: &RunningBridge) -> Self {
        let program = GoProgram::build(&workspace_root().join("tests/go/mcp-client")).unwrap();
        let mut child = tokio::process::Command::from(program.command())
            .arg(bridge.xds_addr.to_string())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            lines,
            latest: None,
            responses: 0,
            answered: std::collections::BTreeSet::new(),
        }
    }

    /// Reads whatever responses arrive within a short wait; true if the latest one satisfies
    /// `wanted`. Fails at once if the client died (it exits on anything it cannot decode).
    async fn poll(&mut self, wanted: impl Fn(&Response) -> bool) -> bool {
        while let Ok(line) =
            tokio::time::timeout(Duration::from_millis(200), self.lines.next_line()).await
        {
            let Some(line) = line.unwrap() else {
                let status = self.child.wait().await.unwrap();
                panic!("mcp-client exited ({status}); its stderr is in the test output");
            };
            let response: Response = serde_json::from_str(&line).unwrap();
            if response.type_url == SERVICE_ENTRY {
                self.latest = Some(response);
                self.responses += 1;
            } else {
                self.answered.insert(response.type_url);
            }
        }
        self.latest.as_ref().is_some_and(wanted)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn istio_types_decode_service_entries_and_follow_registry_edits() {
    logs::init();
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.yaml");
    std::fs::write(&registry, registry_file(true, true)).unwrap();
    let bridge = start_bridge(&registry).await;
    let mut client = McpClient::start(&bridge);

    let complete = |r: &Response| {
        r.get(ORDER)
            .is_some_and(|o| endpoint_addresses(o).len() == 2)
            && r.get(BILLING).is_some()
    };
    assert_eventually!(
        client.poll(complete).await,
        "both ServiceEntries never arrived: {:?}",
        client.latest
    );
    let first = client.latest.clone().unwrap();
    assert_eq!(first.names(), [BILLING, ORDER]);
    assert_eventually!(
        client.poll(|_| true).await && client.answered.contains(VIRTUAL_SERVICE),
        "a type with no resources was never answered"
    );

    let order = first.get(ORDER).unwrap();
    assert_eq!(
        order.labels["app.kubernetes.io/managed-by"],
        "causeway-bridge"
    );
    assert_eq!(
        order.annotations["causeway.io/interface"],
        "com.acme.order.OrderService"
    );
    assert_eq!(order.annotations["causeway.io/dubbo-version"], "1.2.0");
    assert_eq!(order.annotations["causeway.io/methods"], "cancel,create");
    assert_eq!(order.annotations["causeway.io/registries"], "static");
    assert_eq!(order.create_time.as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(order.version.len(), 16);
    let spec = &order.spec;
    assert_eq!(
        spec["hosts"],
        serde_json::json!(["com.acme.order.orderservice-1-2-0"])
    );
    assert_eq!(spec["location"], "MESH_INTERNAL");
    assert_eq!(spec["resolution"], "STATIC");
    assert_eq!(
        spec["ports"],
        serde_json::json!([{"number": 20880, "protocol": "TCP", "name": "tcp-metaprotocol-dubbo"}])
    );
    let v1 = &spec["endpoints"][0];
    assert_eq!(v1["address"], "10.0.0.1");
    assert_eq!(
        v1["ports"],
        serde_json::json!({"tcp-metaprotocol-dubbo": 20880})
    );
    assert_eq!(v1["locality"], "r1/z1");
    assert_eq!(v1["weight"], 100);
    assert_eq!(v1["labels"]["version"], "v1");
    assert_eq!(v1["labels"]["registry"], "static");
    let v2 = &spec["endpoints"][1];
    assert_eq!(v2["address"], "10.0.0.2");
    assert_eq!(v2["locality"], "r1/z2");
    assert_eq!(v2["weight"], 50);
    assert_eq!(v2["labels"]["version"], "v2");

    let billing = first.get(BILLING).unwrap();
    assert_eq!(billing.spec["hosts"], serde_json::json!(["billing"]));
    assert_eq!(
        billing.spec["ports"],
        serde_json::json!([{"number": 8080, "protocol": "HTTP", "name": "http"}])
    );
    assert_eq!(billing.annotations["causeway.io/service"], "billing");

    // An endpoint removal and a service removal arrive on the same stream as one new state.
    let seen = client.responses;
    std::fs::write(&registry, registry_file(false, false)).unwrap();
    let shrunk =
        |r: &Response| r.names() == [ORDER] && endpoint_addresses(&r.resources[0]) == ["10.0.0.1"];
    assert_eventually!(
        client.poll(shrunk).await,
        "the removals never arrived: {:?}",
        client.latest
    );
    let second = client.latest.clone().unwrap();
    assert!(client.responses > seen);
    assert_ne!(second.version_info, first.version_info);
    assert_ne!(second.resources[0].version, order.version);

    // A provider coming back restores the first content exactly: same bytes, same versions.
    std::fs::write(&registry, registry_file(true, true)).unwrap();
    assert_eventually!(
        client.poll(complete).await,
        "the restored providers never arrived: {:?}",
        client.latest
    );
    let third = client.latest.clone().unwrap();
    assert_eq!(third.version_info, first.version_info);
    assert_eq!(third.get(ORDER).unwrap().version, order.version);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_bridges_publish_the_same_versions() {
    logs::init();
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.yaml");
    std::fs::write(&registry, registry_file(true, true)).unwrap();
    let mut versions = Vec::new();
    for _ in 0..2 {
        let bridge = start_bridge(&registry).await;
        let mut client = McpClient::start(&bridge);
        assert_eventually!(
            client.poll(|r| r.resources.len() == 2).await,
            "no ServiceEntries: {:?}",
            client.latest
        );
        let latest = client.latest.unwrap();
        let per_resource: Vec<(String, String)> = latest
            .resources
            .into_iter()
            .map(|r| (r.name, r.version))
            .collect();
        versions.push((latest.version_info, per_resource));
    }
    assert_eq!(versions[0], versions[1]);
}
