//! The bridge against a real ZooKeeper: providers written exactly as Dubbo writes them (URL-encoded
//! ephemeral znodes) and Spring Cloud Zookeeper instances become services and ServiceEntries;
//! removals, garbage, outages and session expiry behave as DESIGN.md §3 promises.

use std::sync::Arc;
use std::time::Duration;

use causeway_bridge::app::{self, RunningBridge};
use causeway_bridge::config::{BridgeConfig, ServiceEntryOutput};
use causeway_bridge::model::snapshot::Snapshot;
use causeway_bridge::registry::dubbo_url::url_encode;
use causeway_tests::zookeeper::ZooKeeperServer;
use causeway_tests::{assert_eventually, logs};
use zookeeper_client as zk;

use crate::mesh::bridge_config;

const IFACE: &str = "com.acme.order.OrderService";
const HOST: &str = "com.acme.order.orderservice-1-0-0";

fn provider_url(ip: &str, version_label: &str) -> String {
    format!(
        "dubbo://{ip}:20880/{IFACE}?anyhost=true&application=order-provider&dubbo=2.0.2\
         &dynamic=true&interface={IFACE}&methods=create,cancel&pid=4242&side=provider\
         &timestamp=1700000000000&version=1.0.0&aeraki_meta_app_version={version_label}\
         &zone=zone-a&region=region-1"
    )
}

fn provider_path(url: &str) -> String {
    format!("/dubbo/{IFACE}/providers/{}", url_encode(url))
}

async fn connect(server: &ZooKeeperServer) -> zk::Client {
    zk::Client::connect(&server.connect_string()).await.unwrap()
}

/// Creates the persistent parents Dubbo creates, then the provider node.
async fn register(client: &zk::Client, url: &str, mode: zk::CreateMode) -> String {
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for dir in [
        "/dubbo".to_owned(),
        format!("/dubbo/{IFACE}"),
        format!("/dubbo/{IFACE}/providers"),
    ] {
        match client.create(&dir, b"", &persistent).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(error) => panic!("create {dir}: {error}"),
        }
    }
    let path = provider_path(url);
    // Java's Curator stores the creating host's IP as node data; the bridge must ignore it.
    client
        .create(&path, b"10.0.0.99", &mode.with_acls(zk::Acls::anyone_all()))
        .await
        .unwrap();
    path
}

async fn start_bridge(server: &ZooKeeperServer, dir: &std::path::Path) -> RunningBridge {
    let config = BridgeConfig {
        serviceentry: ServiceEntryOutput {
            dir: Some(dir.to_owned()),
            stdout: false,
        },
        drop_to_zero_grace_ms: 300,
        ..bridge_config(
            vec![format!(
                "zookeeper://{}?name=zk-test&session_timeout_ms=2000",
                server.connect_string()
            )],
            None,
        )
    };
    app::start(config).await.unwrap()
}

fn current(bridge: &RunningBridge) -> Arc<Snapshot> {
    bridge.snapshots.borrow().clone()
}

fn addresses(snapshot: &Snapshot, host: &str) -> Vec<String> {
    snapshot
        .services
        .get(host)
        .map(|s| s.endpoints.iter().map(|e| e.address.clone()).collect())
        .unwrap_or_default()
}

async fn admin_get(bridge: &RunningBridge, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{}{path}", bridge.admin_addr))
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn dubbo_and_spring_cloud_providers_become_service_entries() {
    logs::init();
    let server = ZooKeeperServer::start().await.unwrap();
    let client = connect(&server).await;
    let v1 = register(
        &client,
        &provider_url("10.1.0.1", "v1"),
        zk::CreateMode::Ephemeral,
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let bridge = start_bridge(&server, out.path()).await;

    assert_eventually!(
        addresses(&current(&bridge), HOST) == ["10.1.0.1"],
        "v1 listed"
    );
    let snapshot = current(&bridge);
    let service = &snapshot.services[HOST];
    assert_eq!(service.dubbo.as_ref().unwrap().interface, IFACE);
    let endpoint = &service.endpoints[0];
    assert_eq!(endpoint.port, 20880);
    assert_eq!(endpoint.labels["version"], "v1");
    assert_eq!(endpoint.labels["registry"], "zk-test");
    assert!(!endpoint.labels.contains_key("pid") && !endpoint.labels.contains_key("timestamp"));
    assert_eq!(endpoint.locality.as_deref(), Some("region-1/zone-a"));
    assert_eq!(
        service.methods.iter().collect::<Vec<_>>(),
        ["cancel", "create"]
    );

    // A second provider is watched in, not polled in.
    register(
        &client,
        &provider_url("10.1.0.2", "v2"),
        zk::CreateMode::Ephemeral,
    )
    .await;
    assert_eventually!(addresses(&current(&bridge), HOST).len() == 2, "v2 added");

    // Spring Cloud Zookeeper instance.
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.create("/services", b"", &persistent).await.unwrap();
    client
        .create("/services/billing", b"", &persistent)
        .await
        .unwrap();
    let instance = br#"{"name":"billing","id":"b1","address":"10.2.0.1","port":8080,"sslPort":null,
        "payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
        "id":"b1","name":"billing","metadata":{"version":"v3"}},"registrationTimeUTC":1,
        "serviceType":"DYNAMIC","uriSpec":null}"#;
    client
        .create(
            "/services/billing/b1",
            instance,
            &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    assert_eventually!(
        addresses(&current(&bridge), "billing") == ["10.2.0.1"],
        "spring cloud instance"
    );

    // Garbage next to good providers is skipped and counted; nothing else is disturbed.
    client
        .create(
            &format!("/dubbo/{IFACE}/providers/dubbo%3A%2F%2Fno-port%2Fx"),
            b"",
            &persistent,
        )
        .await
        .unwrap();
    client
        .create(
            &format!("/dubbo/{IFACE}/providers/%ZZbroken%3A%2F%2F"),
            b"",
            &persistent,
        )
        .await
        .unwrap();
    assert_eventually!(
        current(&bridge).registries["zk-test"].malformed >= 2,
        "garbage counted"
    );
    assert_eq!(addresses(&current(&bridge), HOST).len(), 2);
    let (_, metrics) = admin_get(&bridge, "/metrics").await;
    assert!(
        metrics.contains(
            "causeway_bridge_registry_events_total{registry=\"zk-test\",kind=\"malformed\"}"
        ),
        "{metrics}"
    );

    // Removal of one provider shows at once.
    client.delete(&v1, None).await.unwrap();
    assert_eventually!(
        addresses(&current(&bridge), HOST) == ["10.1.0.2"],
        "v1 removed"
    );

    // ServiceEntry files follow the snapshot.
    let file = out
        .path()
        .join(format!("default.causeway-{}.yaml", HOST.replace('.', "-")));
    assert_eventually!(
        std::fs::read_to_string(&file)
            .is_ok_and(|t| t.contains("10.1.0.2") && !t.contains("10.1.0.1")),
        "ServiceEntry file updated"
    );
    let (status, ready) = admin_get(&bridge, "/ready").await;
    assert_eq!((status, ready.as_str()), (200, "ready\n"));
    let (_, debug) = admin_get(&bridge, "/debug/services").await;
    let json: serde_json::Value = serde_json::from_str(&debug).unwrap();
    assert_eq!(json["services"][HOST]["dubbo"]["interface"], IFACE);
}

/// A bridge watching `server`, which holds one persistent provider at 10.1.0.1. Persistent
/// (dynamic=false, admin-managed) providers survive a server restart, so outage tests can tell a
/// kept endpoint from a re-listed one.
async fn bridge_with_persistent_provider(
    server: &ZooKeeperServer,
) -> (RunningBridge, tempfile::TempDir) {
    let client = connect(server).await;
    register(
        &client,
        &provider_url("10.1.0.1", "v1"),
        zk::CreateMode::Persistent,
    )
    .await;
    drop(client);
    let out = tempfile::tempdir().unwrap();
    let bridge = start_bridge(server, out.path()).await;
    assert_eventually!(addresses(&current(&bridge), HOST) == ["10.1.0.1"]);
    (bridge, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_keeps_endpoints_and_a_restart_reconverges() {
    logs::init();
    let mut server = ZooKeeperServer::start().await.unwrap();
    let (bridge, _out) = bridge_with_persistent_provider(&server).await;

    server.stop().unwrap();
    assert_eventually!(
        !current(&bridge).registries["zk-test"].up,
        "registry marked down"
    );
    let snapshot = current(&bridge);
    assert_eq!(
        addresses(&snapshot, HOST),
        ["10.1.0.1"],
        "endpoint kept while down"
    );
    assert!(snapshot.services[HOST].stale_registries.contains("zk-test"));
    let (_, metrics) = admin_get(&bridge, "/metrics").await;
    assert!(
        metrics.contains("causeway_bridge_registry_stale{registry=\"zk-test\"} 1"),
        "{metrics}"
    );

    server.restart().await.unwrap();
    assert_eventually!(
        current(&bridge).registries["zk-test"].up,
        "registry up again"
    );
    let client = connect(&server).await;
    register(
        &client,
        &provider_url("10.1.0.3", "v1"),
        zk::CreateMode::Persistent,
    )
    .await;
    assert_eventually!(
        addresses(&current(&bridge), HOST) == ["10.1.0.1", "10.1.0.3"],
        "change after restart seen"
    );
    assert!(current(&bridge).services[HOST].stale_registries.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn session_expiry_opens_a_new_session_and_resyncs() {
    logs::init();
    let mut server = ZooKeeperServer::start().await.unwrap();
    let (bridge, _out) = bridge_with_persistent_provider(&server).await;

    // Down for longer than the 2 s session timeout: the restarted server expires the session.
    server.stop().unwrap();
    assert_eventually!(!current(&bridge).registries["zk-test"].up);
    let outage_started = tokio::time::Instant::now();
    assert_eventually!(
        outage_started.elapsed() > Duration::from_secs(3),
        "outage lasts"
    );
    server.restart().await.unwrap();
    let client = connect(&server).await;
    register(
        &client,
        &provider_url("10.1.0.4", "v1"),
        zk::CreateMode::Persistent,
    )
    .await;
    assert_eventually!(
        current(&bridge).registries["zk-test"].up
            && addresses(&current(&bridge), HOST) == ["10.1.0.1", "10.1.0.4"],
        "new session resynced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_root_and_filters_are_honoured() {
    logs::init();
    let server = ZooKeeperServer::start().await.unwrap();
    let client = connect(&server).await;
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for dir in [
        "/prod",
        "/prod/a.Keep",
        "/prod/a.Keep/providers",
        "/prod/b.Drop",
        "/prod/b.Drop/providers",
    ] {
        client.create(dir, b"", &persistent).await.unwrap();
    }
    for iface in ["a.Keep", "b.Drop"] {
        let url = format!("dubbo://10.3.0.1:20880/{iface}?interface={iface}");
        client
            .create(
                &format!("/prod/{iface}/providers/{}", url_encode(&url)),
                b"",
                &persistent,
            )
            .await
            .unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let mut config = BridgeConfig {
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        xds_listen: "127.0.0.1:0".parse().unwrap(),
        registries: vec![format!(
            "zookeeper://{}/prod?name=zk",
            server.connect_string()
        )],
        ..BridgeConfig::default()
    };
    config.filter.services.deny = vec!["b.*".into()];
    config.serviceentry.dir = Some(out.path().to_owned());
    let bridge = app::start(config).await.unwrap();
    assert_eventually!(
        current(&bridge).services.contains_key("a.keep"),
        "custom root read"
    );
    assert!(
        !current(&bridge).services.contains_key("b.drop"),
        "denied service kept out"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dubbo3_application_instances_resolve_through_remote_metadata() {
    logs::init();
    let server = ZooKeeperServer::start().await.unwrap();
    let client = connect(&server).await;
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for dir in [
        "/dubbo",
        "/dubbo/metadata",
        "/dubbo/metadata/shop",
        "/services",
        "/services/shop",
    ] {
        client.create(dir, b"", &persistent).await.unwrap();
    }
    let metadata = br#"{"app":"shop","revision":"r1","services":{
        "com.acme.Cart:1.0.0:dubbo":{"name":"com.acme.Cart","version":"1.0.0","protocol":"dubbo","path":"com.acme.Cart","params":{"methods":"add,remove","side":"provider"}}}}"#;
    client
        .create("/dubbo/metadata/shop/r1", metadata, &persistent)
        .await
        .unwrap();
    let instance = |ip: &str| {
        format!(
            r#"{{"name":"shop","id":"{ip}:20880","address":"{ip}","port":20880,"sslPort":null,
            "payload":{{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","id":"{ip}:20880","name":"shop",
            "metadata":{{"dubbo.metadata.revision":"r1","dubbo.metadata.storage-type":"remote",
            "dubbo.endpoints":"[{{\"port\":20880,\"protocol\":\"dubbo\"}}]","zone":"zone-b"}}}},
            "registrationTimeUTC":1,"serviceType":"DYNAMIC","uriSpec":null}}"#
        )
    };
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    client
        .create(
            "/services/shop/10.5.0.1:20880",
            instance("10.5.0.1").as_bytes(),
            &ephemeral,
        )
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let bridge = start_bridge(&server, out.path()).await;
    let host = "com.acme.cart-1-0-0";
    assert_eventually!(
        addresses(&current(&bridge), host) == ["10.5.0.1"],
        "listed instance"
    );
    let service = current(&bridge).services[host].clone();
    assert_eq!(service.endpoints[0].labels["application"], "shop");
    assert_eq!(
        service.endpoints[0].locality, None,
        "zone alone is not a locality"
    );
    assert!(service.methods.contains("add"));

    client
        .create(
            "/services/shop/10.5.0.2:20880",
            instance("10.5.0.2").as_bytes(),
            &ephemeral,
        )
        .await
        .unwrap();
    assert_eventually!(
        addresses(&current(&bridge), host).len() == 2,
        "watched instance"
    );
    client
        .delete("/services/shop/10.5.0.1:20880", None)
        .await
        .unwrap();
    assert_eventually!(
        addresses(&current(&bridge), host) == ["10.5.0.2"],
        "instance removed"
    );
}
