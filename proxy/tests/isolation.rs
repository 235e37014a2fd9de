//! Admission end to end, in-process: Rust Dubbo callers → causeway-proxy (local config with
//! TrafficIsolation and MetaRouter `localRateLimit` rules) → Rust Dubbo providers. A batch flood is
//! shed with "overloaded" while user calls keep their capacity, batch goes only to its dedicated
//! subset, the host's capacity is kept for users by shed order, the token bucket limits, and every
//! decision shows in the contract metrics and `istio_requests_total`'s `response_flags`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use causeway_protocols::dubbo::Status;
use futures::future::join_all;
use support::*;

fn config(services: &str, rules: &str) -> String {
    format!(
        "admin_listen: 127.0.0.1:0\nlisten: [{{protocol: dubbo, address: 127.0.0.1:0}}]\nreload_interval_ms: 50\nworkload: test-consumer\nservices:\n{services}rules: |\n{}",
        rules
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    )
}

const ISOLATION: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter}
spec:
  host: demo.greeter
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: CAPACITY}}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: batchjob, labels: {version: v2}}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: greeter}
spec:
  hosts: [demo.greeter]
  routes:
  - route: [{destination: {host: demo.greeter, subset: v1}}]
---
apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {name: greeter}
spec:
  host: demo.greeter
  classes:
  - name: batch
    match: {attributes: {batch: {exact: 'true'}}}
    maxConcurrency: BATCH
    subset: batchjob
    shedOrder: 0
  - name: user
    maxConcurrency: 8
    shedOrder: 10
  defaultClass: user
";

fn isolation_rules(capacity: u32, batch: u32) -> String {
    ISOLATION
        .replace("CAPACITY", &capacity.to_string())
        .replace("BATCH", &batch.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_flood_is_shed_while_users_keep_their_capacity() {
    let slow = Duration::from_millis(300);
    let user_provider = Provider::start_with_delay("v1", slow).await;
    let batch_provider = Provider::start_with_delay("v2", slow).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &service_yaml(&[
            (&user_provider, "v1", "eu/eu-a"),
            (&batch_provider, "v2", "eu/eu-a"),
        ]),
        &isolation_rules(1000, 4),
    );
    let (proxy, _) = start_proxy(dir.path(), &yaml).await;
    let client = Client::connect(proxy.dubbo_addr().unwrap()).await;

    // 20 batch calls and 8 user calls at once: batch gets its 4 slots, users all of theirs.
    let batch = join_all((0..20).map(|_| {
        let client = client.clone();
        async move { client.call("greet", &[("batch", "true")]).await }
    }));
    let users = join_all((0..8).map(|_| {
        let client = client.clone();
        async move { client.call("greet", &[]).await }
    }));
    let (batch, users) = tokio::join!(batch, users);

    for answer in &users {
        assert_eq!(answer.status, Status::OK, "{answer:?}");
        assert_eq!(answer.tag(), Some("v1"), "users follow the route");
    }
    let served: Vec<_> = batch.iter().filter(|a| a.status == Status::OK).collect();
    let shed: Vec<_> = batch.iter().filter(|a| a.status != Status::OK).collect();
    assert_eq!(served.len(), 4, "{batch:?}");
    assert!(
        served.iter().all(|a| a.tag() == Some("v2")),
        "batch goes only to its dedicated subset: {served:?}"
    );
    for answer in &shed {
        assert_eq!(answer.status, Status::SERVER_THREADPOOL_EXHAUSTED);
        let message = answer.message.as_deref().unwrap_or_default();
        assert!(
            message.contains("overloaded") && message.contains("batch"),
            "{message}"
        );
    }
    assert_eq!(
        batch_provider
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        4
    );

    let (_, text) = http_get(proxy.admin, "/metrics").await;
    let class = |name: &str, class: &str, extra: &[&str]| {
        let mut parts = vec!["destination_service=\"demo.greeter\""];
        let label = format!("traffic_class=\"{class}\"");
        parts.push(&label);
        parts.extend_from_slice(extra);
        metric(&text, name, &parts)
    };
    assert_eq!(
        class("causeway_proxy_class_requests_total", "batch", &[]),
        20.0
    );
    assert_eq!(
        class("causeway_proxy_class_requests_total", "user", &[]),
        8.0
    );
    assert_eq!(
        class(
            "causeway_proxy_shed_total",
            "batch",
            &["reason=\"concurrency_limit\""]
        ),
        16.0
    );
    assert_eq!(class("causeway_proxy_shed_total", "user", &[]), 0.0);
    assert_eq!(class("causeway_proxy_class_in_flight", "batch", &[]), 0.0);
    assert_eq!(class("causeway_proxy_class_in_flight", "user", &[]), 0.0);
    assert_eq!(
        metric(
            &text,
            "istio_requests_total",
            &["response_flags=\"UO\"", "response_code=\"100\""]
        ),
        16.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_host_keeps_the_users_reserved_share_and_sheds_batch_first() {
    let slow = Duration::from_millis(300);
    let user_provider = Provider::start_with_delay("v1", slow).await;
    let batch_provider = Provider::start_with_delay("v2", slow).await;
    let dir = tempfile::tempdir().unwrap();
    // The host takes 10 at once; users reserve 8, so batch (budget 10) may use only 2.
    let yaml = config(
        &service_yaml(&[
            (&user_provider, "v1", "eu/eu-a"),
            (&batch_provider, "v2", "eu/eu-a"),
        ]),
        &isolation_rules(10, 10),
    );
    let (proxy, _) = start_proxy(dir.path(), &yaml).await;
    let client = Client::connect(proxy.dubbo_addr().unwrap()).await;
    let batch = join_all((0..10).map(|_| {
        let client = client.clone();
        async move { client.call("greet", &[("batch", "true")]).await }
    }));
    let users = async {
        // Users arrive while the batch calls are in flight.
        tokio::time::sleep(Duration::from_millis(50)).await;
        join_all((0..8).map(|_| {
            let client = client.clone();
            async move { client.call("greet", &[]).await }
        }))
        .await
    };
    let (batch, users) = tokio::join!(batch, users);
    assert!(users.iter().all(|a| a.status == Status::OK), "{users:?}");
    assert_eq!(batch.iter().filter(|a| a.status == Status::OK).count(), 2);
    let (_, text) = http_get(proxy.admin, "/metrics").await;
    assert_eq!(
        metric(
            &text,
            "causeway_proxy_shed_total",
            &["traffic_class=\"batch\"", "reason=\"overload\""]
        ),
        8.0
    );
}

const RATE_LIMIT: &str = "\
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: greeter}
spec:
  hosts: [demo.greeter]
  localRateLimit:
    tokenBucket: {maxTokens: 3, fillInterval: 1h}
    conditions:
    - match: {attributes: {tenant: {exact: acme}}}
      tokenBucket: {maxTokens: 1, fillInterval: 1h}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_rate_limit_refuses_calls_beyond_the_bucket() {
    let provider = Provider::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&service_yaml(&[(&provider, "v1", "eu/eu-a")]), RATE_LIMIT);
    let (proxy, _) = start_proxy(dir.path(), &yaml).await;
    let client = Client::connect(proxy.dubbo_addr().unwrap()).await;

    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(client.call("greet", &[]).await);
    }
    assert_eq!(
        statuses.iter().filter(|a| a.status == Status::OK).count(),
        3
    );
    let refused = statuses.last().unwrap();
    assert_eq!(refused.status, Status::SERVER_THREADPOOL_EXHAUSTED);
    assert!(
        refused
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("rate limited"),
        "{refused:?}"
    );
    // The tenant's own bucket: one call, whatever the default bucket holds.
    assert_eq!(
        client.call("greet", &[("tenant", "acme")]).await.status,
        Status::OK
    );
    assert_eq!(
        client.call("greet", &[("tenant", "acme")]).await.status,
        Status::SERVER_THREADPOOL_EXHAUSTED
    );

    let (_, text) = http_get(proxy.admin, "/metrics").await;
    assert_eq!(
        metric(
            &text,
            "causeway_proxy_shed_total",
            &["traffic_class=\"default\"", "reason=\"rate_limit\""]
        ),
        3.0
    );
    assert_eq!(
        metric(&text, "istio_requests_total", &["response_flags=\"RL\""]),
        3.0
    );
    assert_eq!(
        provider.requests.load(std::sync::atomic::Ordering::SeqCst),
        4
    );
}
