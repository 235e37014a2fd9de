//! Smoke tests of the harness itself: every peer starts, answers a real client, runs twice side by
//! side without clashes, and leaves nothing behind when its guard drops.

use std::net::SocketAddr;
use std::path::Path;

use causeway_tests::etcd::EtcdServer;
use causeway_tests::java::JavaProgram;
use causeway_tests::paths::workspace_root;
use causeway_tests::prometheus::PrometheusServer;
use causeway_tests::python::PythonEnv;
use causeway_tests::zookeeper::ZooKeeperServer;
use causeway_tests::{assert_eventually, logs};
use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zookeeper_client as zk;

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_answers_create_and_list_then_cleans_up() {
    logs::init();
    let server = ZooKeeperServer::start().await.unwrap();
    tracing::info!(
        startup_ms = server.startup_time().as_millis() as u64,
        "zookeeper"
    );
    let client = zk::Client::connect(&server.connect_string()).await.unwrap();
    client.create("/dubbo", b"", &persistent()).await.unwrap();
    for name in ["a", "b"] {
        client
            .create(&format!("/dubbo/{name}"), name.as_bytes(), &persistent())
            .await
            .unwrap();
    }
    let mut children = client.list_children("/dubbo").await.unwrap();
    children.sort();
    assert_eq!(children, ["a", "b"]);

    let dir = server.dir().to_owned();
    drop(client);
    drop(server);
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_zookeepers_run_side_by_side() {
    logs::init();
    let (one, two) = tokio::join!(ZooKeeperServer::start(), ZooKeeperServer::start());
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_ne!(one.addr(), two.addr());
    let c1 = zk::Client::connect(&one.connect_string()).await.unwrap();
    let c2 = zk::Client::connect(&two.connect_string()).await.unwrap();
    c1.create("/only-in-one", b"", &persistent()).await.unwrap();
    assert!(c2.check_stat("/only-in-one").await.unwrap().is_none());
    assert!(c1.check_stat("/only-in-one").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_restarts_on_the_same_port_with_its_data() {
    logs::init();
    let mut server = ZooKeeperServer::start().await.unwrap();
    let client = zk::Client::connect(&server.connect_string()).await.unwrap();
    client.create("/kept", b"x", &persistent()).await.unwrap();
    drop(client);
    server.stop().unwrap();
    assert!(zk::Client::connect(&server.connect_string()).await.is_err());
    server.restart().await.unwrap();
    let client = zk::Client::connect(&server.connect_string()).await.unwrap();
    assert_eq!(client.get_data("/kept").await.unwrap().0, b"x");
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_answers_put_get_and_watch() {
    logs::init();
    let server = EtcdServer::start().await.unwrap();
    tracing::info!(
        startup_ms = server.startup_time().as_millis() as u64,
        "etcd"
    );
    let mut client = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    let mut stream = client
        .watch("/dubbo/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    client.put("/dubbo/a", "1", None).await.unwrap();
    let got = client
        .get("/dubbo/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 1);
    assert_eq!(got.kvs()[0].value(), b"1");

    let event = loop {
        let response = stream.message().await.unwrap().expect("watch stream open");
        if let Some(event) = response.events().first() {
            break event.clone();
        }
    };
    assert_eq!(event.event_type(), EventType::Put);
    assert_eq!(event.kv().unwrap().key(), b"/dubbo/a");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_etcds_run_side_by_side_and_restart() {
    logs::init();
    let (one, two) = tokio::join!(EtcdServer::start(), EtcdServer::start());
    let (mut one, two) = (one.unwrap(), two.unwrap());
    let mut c1 = etcd_client::Client::connect([one.endpoint()], None)
        .await
        .unwrap();
    let mut c2 = etcd_client::Client::connect([two.endpoint()], None)
        .await
        .unwrap();
    c1.put("k", "one", None).await.unwrap();
    assert!(c2.get("k", None).await.unwrap().kvs().is_empty());

    one.restart().await.unwrap();
    let mut c1 = etcd_client::Client::connect([one.endpoint()], None)
        .await
        .unwrap();
    assert_eq!(c1.get("k", None).await.unwrap().kvs()[0].value(), b"one");
}

/// Serves a fixed OpenMetrics text on `/metrics` for Prometheus to scrape.
async fn serve_metrics(body: &'static str) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_given_target_and_answers_queries() {
    logs::init();
    let target_a = serve_metrics("# TYPE causeway_smoke_total counter\ncauseway_smoke_total 42\n")
        .await
        .unwrap();
    let target_b = serve_metrics("# TYPE causeway_smoke_total counter\ncauseway_smoke_total 7\n")
        .await
        .unwrap();
    let (targets_a, targets_b) = ([target_a], [target_b]);
    let (one, two) = tokio::join!(
        PrometheusServer::start(&targets_a, "/metrics"),
        PrometheusServer::start(&targets_b, "/metrics")
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    tracing::info!(
        startup_ms = one.startup_time().as_millis() as u64,
        "prometheus"
    );
    for (server, expected) in [(&one, 42.0), (&two, 7.0)] {
        assert_eventually!(
            server
                .query("causeway_smoke_total")
                .await
                .unwrap()
                .first()
                .map(|s| s.number())
                == Some(expected),
            "prometheus at {} never scraped its target",
            server.addr()
        );
    }
    let samples = one.query("causeway_smoke_total").await.unwrap();
    assert_eq!(samples[0].metric["instance"], target_a.to_string());
    assert!(
        one.query("sum(").await.is_err(),
        "bad PromQL must be an error"
    );

    let pid = one.pid();
    drop(one);
    assert!(!process_exists(pid), "prometheus {pid} still running");
}

#[tokio::test(flavor = "multi_thread")]
async fn java_program_writes_into_zookeeper() {
    logs::init();
    let server = ZooKeeperServer::start().await.unwrap();
    let program = JavaProgram::build(&workspace_root().join("tests/java/zk-smoke")).unwrap();
    let output = program
        .command("io.causeway.smoke.ZkSmoke")
        .args([&server.connect_string(), "/from-java", "hello from java"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let client = zk::Client::connect(&server.connect_string()).await.unwrap();
    assert_eq!(
        client.get_data("/from-java").await.unwrap().0,
        b"hello from java"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_program_writes_into_zookeeper() {
    logs::init();
    let server = ZooKeeperServer::start().await.unwrap();
    let python = PythonEnv::shared().unwrap();
    let output = python
        .command(&workspace_root().join("tests/python/zk_smoke.py"))
        .args([
            &server.connect_string(),
            "/from-python",
            "hello from python",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let client = zk::Client::connect(&server.connect_string()).await.unwrap();
    assert_eq!(
        client.get_data("/from-python").await.unwrap().0,
        b"hello from python"
    );
}
