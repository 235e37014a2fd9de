//! The binary's `--threads`: one thread runs a single-threaded runtime, more a multi-threaded
//! one; either way the proxy serves (a Dubbo call answered end to end, and the admin server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use causeway_protocols::dubbo::Status;
use support::{Client, Provider, http_get, service_yaml};

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The proxy binary, stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `/ready` on `admin`.
async fn ready(admin: SocketAddr, proxy: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(admin),
        )
        .await
        {
            drop(stream);
            if http_get(admin, "/ready").await.0 == 200 {
                return;
            }
        }
        assert!(
            proxy.0.try_wait().unwrap().is_none(),
            "the proxy exited before it was ready"
        );
        assert!(Instant::now() < deadline, "the proxy never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn serves_a_call_with(threads: &str) {
    let provider = Provider::start("p1").await;
    let dir = tempfile::tempdir().unwrap();
    let (dubbo, admin) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    let path = dir.path().join("proxy.yaml");
    std::fs::write(
        &path,
        format!(
            "admin_listen: {admin}\nlisten: [{{protocol: dubbo, address: {dubbo}}}]\nlocality: eu/eu-a\nservices:\n{}",
            service_yaml(&[(&provider, "v1", "eu/eu-a")])
        ),
    )
    .unwrap();
    let mut proxy = Running(
        Command::new(env!("CARGO_BIN_EXE_causeway-proxy"))
            .args(["--threads", threads, "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    ready(admin, &mut proxy).await;
    let client = Client::connect(dubbo).await;
    for _ in 0..20 {
        let answer = client.call("greet", &[]).await;
        assert_eq!(answer.status, Status::OK, "{answer:?}");
        assert_eq!(answer.value.as_deref(), Some("p1:greet"));
    }
    let (status, metrics) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("istio_requests_total{"),
        "the calls are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thread_serves_calls() {
    serves_a_call_with("1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_threads_serve_calls() {
    serves_a_call_with("3").await;
}

#[test]
fn zero_threads_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_causeway-proxy"))
        .args(["--threads", "0", "--validate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--threads"), "{stderr}");
}
