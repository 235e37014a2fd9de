//! Resilience end to end, in-process, with real Rust peers: outlier detection ejecting a sick
//! provider and returning it, retries, fault injection and mirroring — each asserting what the
//! caller observes and the metric that records the decision.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use causeway_protocols::dubbo::Status;
use support::*;

fn config(services: &str, rules: &str) -> String {
    format!(
        "admin_listen: 127.0.0.1:0\nlisten: [{{protocol: dubbo, address: 127.0.0.1:0}}]\nreload_interval_ms: 50\nworkload: test-consumer\nservices:\n{services}{rules}"
    )
}

const OUTLIER_RULES: &str = r#"
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: greeter}
  spec:
    host: demo.greeter
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 3, interval: 100ms, baseEjectionTime: 1s, maxEjectionPercent: 50}
"#;

async fn metrics_text(proxy: &causeway_proxy::app::RunningProxy) -> String {
    http_get(proxy.admin, "/metrics").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubbo_server_errors_eject_the_provider_until_its_time_is_up() {
    let a = Provider::start("a").await;
    let b = Provider::start("b").await;
    let c = Provider::start("c").await;
    b.failing.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &service_yaml(&[(&a, "v1", ""), (&b, "v1", ""), (&c, "v1", "")]),
        OUTLIER_RULES,
    );
    let (proxy, _) = start_proxy(dir.path(), &yaml).await;
    let client = Client::connect(proxy.dubbo_addr().unwrap()).await;

    let mut answers: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        let answer = client.call("greet", &[]).await;
        let key = if answer.status == Status::OK {
            answer.tag().unwrap().to_owned()
        } else {
            format!("status {}", answer.status.0)
        };
        *answers.entry(key).or_default() += 1;
    }
    // Exactly three SERVER_ERRORs reach the caller (no retries for answered requests), then
    // the sick provider takes nothing more.
    assert_eq!(answers.get("status 80"), Some(&3), "{answers:?}");
    assert_eq!(b.requests.load(Ordering::SeqCst), 3);
    assert_eq!(answers.get("a").unwrap() + answers.get("c").unwrap(), 297);

    let ejections = |text: &str| {
        metric(
            text,
            "causeway_proxy_outlier_ejections_total",
            &[
                "destination_service=\"demo.greeter\"",
                "reason=\"consecutive_errors\"",
            ],
        )
    };
    let ejected = |text: &str| {
        metric(
            text,
            "causeway_proxy_outlier_ejected_endpoints",
            &["cluster=\"outbound|20880||demo.greeter\""],
        )
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let text = metrics_text(&proxy).await;
    assert_eq!(ejections(&text), 1.0, "{text}");
    assert_eq!(ejected(&text), 1.0, "{text}");

    // Healed: after the base ejection time it is back in rotation, and the gauge says so.
    b.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = b.requests.load(Ordering::SeqCst);
    for _ in 0..60 {
        assert_eq!(client.call("greet", &[]).await.status, Status::OK);
    }
    assert!(b.requests.load(Ordering::SeqCst) > before + 5, "b is back");
    let text = metrics_text(&proxy).await;
    assert_eq!(ejected(&text), 0.0, "{text}");
    assert_eq!(ejections(&text), 1.0);
}
