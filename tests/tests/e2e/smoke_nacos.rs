//! Smoke tests of the Nacos peer: the official Java server starts, takes a registration over its
//! open API and lists it back, runs twice side by side without sharing ports or data, comes back
//! with its data after a crash or a graceful shutdown, and leaves nothing behind when dropped.

use std::collections::HashSet;
use std::path::Path;

use causeway_tests::nacos::{DEFAULT_GROUP, NacosServer};
use causeway_tests::{assert_eventually, logs};
use serde_json::Value;

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `(ip, port)` of every listed instance.
fn endpoints(hosts: &[Value]) -> Vec<(String, u64)> {
    hosts
        .iter()
        .map(|host| {
            (
                host["ip"].as_str().unwrap_or_default().to_owned(),
                host["port"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

async fn endpoints_of(server: &NacosServer, service: &str) -> Vec<(String, u64)> {
    match server.list_instances(service, DEFAULT_GROUP).await {
        Ok(hosts) => endpoints(&hosts),
        Err(error) => {
            tracing::warn!(%error, "list instances");
            Vec::new()
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nacos_registers_and_lists_an_instance_then_cleans_up() {
    logs::init();
    let server = NacosServer::start().await.unwrap();
    tracing::info!(
        startup_ms = server.startup_time().as_millis() as u64,
        http = %server.http_addr(),
        grpc = server.grpc_port(),
        "nacos"
    );
    assert_eq!(server.grpc_port(), server.http_addr().port() + 1000);
    assert_eq!(
        server.server_addr(),
        format!("127.0.0.1:{}", server.http_addr().port())
    );

    assert!(!server.health_checks_enabled().await.unwrap());

    // Loopback addresses only, so no probe or client ever aims off the machine.
    server
        .register_instance(
            "providers:com.example.DemoService::",
            DEFAULT_GROUP,
            None,
            "127.0.0.1",
            20880,
            &[("version", "1.0.0"), ("protocol", "dubbo")],
        )
        .await
        .unwrap();
    assert_eventually!(
        endpoints_of(&server, "providers:com.example.DemoService::")
            .await
            .len()
            == 1,
        "the registered instance is never listed"
    );
    let hosts = server
        .list_instances("providers:com.example.DemoService::", DEFAULT_GROUP)
        .await
        .unwrap();
    let host = &hosts[0];
    assert_eq!(host["ip"], "127.0.0.1");
    assert_eq!(host["port"], 20880);
    assert_eq!(host["ephemeral"], false);
    assert_eq!(host["healthy"], true);
    assert_eq!(host["metadata"]["version"], "1.0.0");
    assert_eq!(host["metadata"]["protocol"], "dubbo");

    // A namespace keeps its instances to itself.
    server.create_namespace("dev").await.unwrap();
    server
        .register_instance("orders", "", Some("dev"), "127.0.0.2", 8080, &[])
        .await
        .unwrap();
    assert_eventually!(
        server
            .list_instances_in("orders", DEFAULT_GROUP, Some("dev"))
            .await
            .map(|hosts| endpoints(&hosts) == [("127.0.0.2".to_owned(), 8080)])
            .unwrap_or(false),
        "the instance in namespace dev is never listed"
    );
    assert!(endpoints_of(&server, "orders").await.is_empty());

    server
        .deregister_instance("orders", "", Some("dev"), "127.0.0.2", 8080)
        .await
        .unwrap();
    assert_eventually!(
        server
            .list_instances_in("orders", DEFAULT_GROUP, Some("dev"))
            .await
            .map(|hosts| hosts.is_empty())
            .unwrap_or(false),
        "the deregistered instance is still listed"
    );

    let pid = server.pid().unwrap();
    let dir = server.dir().to_owned();
    assert!(process_exists(pid));
    drop(server);
    assert!(!process_exists(pid), "nacos process {pid} still running");
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nacos_servers_run_side_by_side() {
    logs::init();
    let (one, two) = tokio::join!(NacosServer::start(), NacosServer::start());
    let (one, two) = (one.unwrap(), two.unwrap());
    let ports = |server: &NacosServer| {
        let http = server.http_addr().port();
        [http - 1000, http, server.grpc_port(), http + 1001]
    };
    let all: HashSet<u16> = ports(&one).into_iter().chain(ports(&two)).collect();
    assert_eq!(
        all.len(),
        8,
        "port clash: {:?} / {:?}",
        ports(&one),
        ports(&two)
    );
    assert_ne!(one.dir(), two.dir());
    assert_ne!(one.pid(), two.pid());

    // The same service name on both, with different instances: each sees only its own.
    one.register_instance("shared", DEFAULT_GROUP, None, "127.0.0.1", 1001, &[])
        .await
        .unwrap();
    two.register_instance("shared", DEFAULT_GROUP, None, "127.0.0.1", 2002, &[])
        .await
        .unwrap();
    assert_eventually!(
        endpoints_of(&one, "shared").await == [("127.0.0.1".to_owned(), 1001)],
        "server one does not list exactly its own instance"
    );
    assert_eventually!(
        endpoints_of(&two, "shared").await == [("127.0.0.1".to_owned(), 2002)],
        "server two does not list exactly its own instance"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nacos_restarts_on_the_same_ports_with_its_data() {
    logs::init();
    let mut server = NacosServer::start().await.unwrap();
    let (http, grpc, dir) = (
        server.http_addr(),
        server.grpc_port(),
        server.dir().to_owned(),
    );
    server
        .register_instance(
            "kept",
            DEFAULT_GROUP,
            None,
            "127.0.0.1",
            7001,
            &[("v", "1")],
        )
        .await
        .unwrap();
    assert_eventually!(
        endpoints_of(&server, "kept").await.len() == 1,
        "the instance is never listed"
    );

    // A crash: persistent instances come back from the data directory.
    server.stop().unwrap();
    assert!(!server.is_running());
    assert!(server.list_instances("kept", DEFAULT_GROUP).await.is_err());
    server.restart().await.unwrap();
    tracing::info!(
        startup_ms = server.startup_time().as_millis() as u64,
        "nacos restarted after a crash"
    );
    assert_eq!(
        (server.http_addr(), server.grpc_port(), server.dir()),
        (http, grpc, dir.as_path())
    );
    assert_eventually!(
        endpoints_of(&server, "kept").await == [("127.0.0.1".to_owned(), 7001)],
        "the persistent instance is lost after a crash"
    );
    // The switch lives in memory only; the restart applied it again.
    assert!(!server.health_checks_enabled().await.unwrap());

    // A graceful shutdown, then the same again.
    server.shutdown().await.unwrap();
    assert!(!server.is_running());
    server.restart().await.unwrap();
    assert_eventually!(
        endpoints_of(&server, "kept").await == [("127.0.0.1".to_owned(), 7001)],
        "the persistent instance is lost after a shutdown"
    );
}
