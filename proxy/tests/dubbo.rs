//! The Dubbo data plane end to end, in-process: Rust Dubbo callers → causeway-proxy (local
//! config, port 0) → Rust Dubbo providers. Routing by method and attachment, an 80/20 split,
//! locality failover, READONLY draining, local heartbeats, errors as Dubbo responses, a config
//! change under load, and the request metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use causeway_protocols::dubbo::{Header, Serialization, Status, heartbeat_request};
use futures::{SinkExt as _, StreamExt as _};
use support::*;
use tokio::net::TcpStream;

const ROUTES: &str = r#"
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: greeter}
  spec:
    host: demo.greeter
    subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {name: greeter}
  spec:
    hosts: [demo.greeter]
    routes:
    - name: place-to-v2
      match: {attributes: {method: {exact: place}}}
      route: [{destination: {host: demo.greeter, subset: v2}}]
    - name: canary
      match: {attributes: {canary: {exact: "true"}}}
      route: [{destination: {host: demo.greeter, subset: v2}}]
      requestMutation: [{key: routed-by, value: causeway}]
    - name: split
      route:
      - {destination: {host: demo.greeter, subset: v1}, weight: 80}
      - {destination: {host: demo.greeter, subset: v2}, weight: 20}
"#;

fn config(services: &str, rules: &str) -> String {
    format!(
        "admin_listen: 127.0.0.1:0\nlisten: [{{protocol: dubbo, address: 127.0.0.1:0}}]\nlocality: eu/eu-a\nreload_interval_ms: 50\nworkload: test-consumer\nservices:\n{services}{rules}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_method_and_attachment_and_splits_80_20() {
    let v1 = Provider::start("v1").await;
    let v2 = Provider::start("v2").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &service_yaml(&[(&v1, "v1", "eu/eu-a"), (&v2, "v2", "eu/eu-a")]),
        ROUTES,
    );
    let (proxy, _) = start_proxy(dir.path(), &yaml).await;
    let client = Client::connect(proxy.dubbo_addr().unwrap()).await;

    // Method routing: every `place` goes to v2.
    for _ in 0..20 {
        let a = client.call("place", &[]).await;
        assert_eq!(a.status, Status::OK, "{a:?}");
        assert_eq!(a.value.as_deref(), Some("v2:place"));
    }
    // Attachment routing, with the route's request mutation applied on the way.
    let a = client.call("greet", &[("canary", "true")]).await;
    assert_eq!(a.tag(), Some("v2"));
    assert_eq!(
        v2.last_attachments
            .lock()
            .unwrap()
            .get("routed-by")
            .map(String::as_str),
        Some("causeway")
    );
    assert_eq!(
        v2.last_attachments
            .lock()
            .unwrap()
            .get("canary")
            .map(String::as_str),
        Some("true")
    );

    // The 80/20 split over 2,000 calls, pipelined 20 at a time.
    let n = 2000;
    let mut counts: HashMap<String, usize> = HashMap::new();
    let started = Instant::now();
    for _ in 0..n / 20 {
        let calls: Vec<_> = (0..20).map(|_| client.call("greet", &[])).collect();
        for a in futures::future::join_all(calls).await {
            assert_eq!(a.status, Status::OK, "{a:?}");
            *counts.entry(a.tag().unwrap().to_owned()).or_default() += 1;
        }
    }
    let elapsed = started.elapsed();
    let v1_share = counts["v1"] as f64 / n as f64;
    println!("split over {n} calls: {counts:?} (v1 {v1_share:.3}) in {elapsed:?}");
    assert!(
        (v1_share - 0.8).abs() <= 0.05,
        "v1 share {v1_share}: {counts:?}"
    );

    // The metrics match the calls.
    let (status, text) = http_get(proxy.admin, "/metrics").await;
    assert_eq!(status, 200);
    let greet_v1 = metric(
        &text,
        "istio_requests_total",
        &[
            "destination_version=\"v1\"",
            "request_method=\"greet\"",
            "response_code=\"20\"",
        ],
    );
    let greet_v2 = metric(
        &text,
        "istio_requests_total",
        &[
            "destination_version=\"v2\"",
            "request_method=\"greet\"",
            "response_code=\"20\"",
        ],
    );
    let place = metric(
        &text,
        "istio_requests_total",
        &["destination_version=\"v2\"", "request_method=\"place\""],
    );
    assert_eq!(greet_v1 as usize, counts["v1"], "{text}");
    assert_eq!(greet_v2 as usize, counts["v2"] + 1, "the canary call too");
    assert_eq!(place, 20.0);
    for label in [
        "reporter=\"source\"",
        "source_workload=\"test-consumer\"",
        "destination_service=\"demo.greeter\"",
        "destination_workload=\"greeter\"",
        "request_protocol=\"dubbo\"",
        "response_flags=\"-\"",
        "destination_interface=\"demo.Greeter\"",
    ] {
        assert!(text.contains(label), "{label} missing:\n{text}");
    }
    let durations = metric(
        &text,
        "istio_request_duration_milliseconds_count",
        &["request_method=\"greet\""],
    );
    assert_eq!(durations as usize, n + 1);
    assert!(
        text.contains("istio_request_bytes_bucket") && text.contains("istio_response_bytes_sum")
    );
    assert!(
        !text.contains("127.0.0.1"),
        "no endpoint address in any label"
    );

    // The admin pages.
    assert_eq!(http_get(proxy.admin, "/ready").await.0, 200);
    let (status, dump) = http_get(proxy.admin, "/config_dump").await;
    assert_eq!(status, 200);
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert!(
        dump["clusters"]["outbound|20880|v2|demo.greeter"].is_object(),
        "{dump}"
    );
    assert_eq!(
        dump["dubbo"]["demo.Greeter"][0]["routes"][2]["name"],
        "split"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_locality_when_local_providers_stop() {
    let local_a = Provider::start("local-a").await;
    let local_b = Provider::start("local-b").await;
    let remote = Provider::start("remote").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &service_yaml(&[
            (&local_a, "v1", "eu/eu-a"),
            (&local_b, "v1", "eu/eu-a"),
            (&remote, "v1", "us/us-a"),
        ]),
        "",
    );
    let (proxy, _) = start_proxy(dir.path(), &yaml).await;
    let client = Client::connect(proxy.dubbo_addr().unwrap()).await;
    let mut tags: HashMap<String, usize> = HashMap::new();
    for _ in 0..200 {
        let a = client.call("greet", &[]).await;
        *tags.entry(a.tag().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(
        tags.get("remote"),
        None,
        "the local zone takes everything: {tags:?}"
    );
    assert_eq!(
        tags.get("local-a").unwrap_or(&0) + tags.get("local-b").unwrap_or(&0),
        200
    );

    local_a.stop();
    local_b.stop();
    // Let the proxy see the connections close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    for i in 0..200 {
        let a = client.call("greet", &[]).await;
        assert_eq!(a.status, Status::OK, "call {i} after the stop: {a:?}");
        assert_eq!(a.tag(), Some("remote"));
    }
    println!(
        "200 calls after the local zone stopped, all served remotely, in {:?}",
        started.elapsed()
    );
    let (_, text) = http_get(proxy.admin, "/metrics").await;
    assert!(
        metric(&text, "causeway_proxy_upstream_connect_failures_total", &[]) >= 2.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readonly_provider_is_drained() {
    let a = Provider::start("a").await;
    let b = Provider::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &service_yaml(&[(&a, "v1", "eu/eu-a"), (&b, "v1", "eu/eu-a")]),
        "",
    );
    let (proxy, _) = start_proxy(dir.path(), &yaml).await;
    let client = Client::connect(proxy.dubbo_addr().unwrap()).await;
    for _ in 0..50 {
        client.call("greet", &[]).await;
    }
    assert!(a.requests.load(Ordering::SeqCst) > 0 && b.requests.load(Ordering::SeqCst) > 0);
    a.send_readonly();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = a.requests.load(Ordering::SeqCst);
    for _ in 0..100 {
        assert_eq!(client.call("greet", &[]).await.tag(), Some("b"));
    }
    assert_eq!(a.requests.load(Ordering::SeqCst), before);
    let (_, text) = http_get(proxy.admin, "/metrics").await;
    assert_eq!(
        metric(&text, "causeway_proxy_upstream_readonly_events_total", &[]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_answered_locally() {
    let p = Provider::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let (proxy, _) = start_proxy(dir.path(), &config(&service_yaml(&[(&p, "v1", "")]), "")).await;
    let client = Client::connect(proxy.dubbo_addr().unwrap()).await;
    client.call("greet", &[]).await;
    let reply = client
        .exchange(heartbeat_request(4242, Serialization::HESSIAN2).unwrap())
        .await
        .unwrap();
    let header = reply.header();
    assert_eq!(header.request_id, 4242);
    assert!(header.is_response() && header.is_event());
    assert_eq!(header.status, Status::OK);
    assert_eq!(reply.body(), [0x4E]);
    assert_eq!(p.heartbeats.load(Ordering::SeqCst), 0, "never forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_dubbo_responses() {
    let p = Provider::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    // `demo.Down` has one endpoint that nobody listens on.
    let down = "- host: demo.down\n  port: 20880\n  dubbo: {interface: demo.Down}\n  endpoints: [{address: 127.0.0.1, port: 1}]\n";
    let only_greet = "rules: |\n  apiVersion: metaprotocol.aeraki.io/v1alpha1\n  kind: MetaRouter\n  metadata: {name: r}\n  spec:\n    hosts: [demo.greeter]\n    routes: [{match: {attributes: {method: {exact: greet}}}, route: [{destination: {host: demo.greeter}}]}]\n";
    let services = format!("{}{down}", service_yaml(&[(&p, "v1", "")]));
    let (proxy, _) = start_proxy(dir.path(), &config(&services, only_greet)).await;
    let addr = proxy.dubbo_addr().unwrap();
    let client = Client::connect(addr).await;

    let a = client.call_interface("demo.Unknown", None, "greet").await;
    assert_eq!(a.status, Status::SERVICE_NOT_FOUND, "{a:?}");
    assert!(
        a.message
            .unwrap()
            .contains("no route for interface demo.Unknown")
    );
    let a = client.call("place", &[]).await;
    assert_eq!(
        a.status,
        Status::SERVICE_NOT_FOUND,
        "no route matches the method: {a:?}"
    );
    let a = client
        .call_interface("demo.Greeter", Some("9.9.9"), "greet")
        .await;
    assert_eq!(a.status, Status::SERVICE_NOT_FOUND, "wrong version: {a:?}");
    let a = client.call_interface("demo.Down", None, "greet").await;
    assert_eq!(a.status, Status::SERVICE_ERROR, "{a:?}");
    assert!(
        a.message.as_deref().unwrap().contains("could be reached"),
        "{a:?}"
    );
    // Ejected now: answered at once as no healthy provider.
    let a = client.call_interface("demo.Down", None, "greet").await;
    assert_eq!(a.status, Status::SERVICE_ERROR, "{a:?}");

    // A body that is not Hessian: BAD_REQUEST with the caller's id, connection kept.
    let mut header = Header::request(77, Serialization::HESSIAN2, true);
    header.body_len = 3;
    let mut frame = header.encode().to_vec();
    frame.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
    let mut conn = framed(TcpStream::connect(addr).await.unwrap());
    conn.get_mut().try_write(&frame).unwrap();
    let reply = conn.next().await.unwrap().unwrap();
    assert_eq!(reply.request_id(), 77);
    assert_eq!(reply.header().status, Status::BAD_REQUEST);
    // Same connection, a fastjson2 body: BAD_REQUEST too (the proxy cannot route it).
    let mut header = Header::request(78, Serialization::FASTJSON2, true);
    header.body_len = 1;
    let mut frame = header.encode().to_vec();
    frame.push(0);
    conn.get_mut().try_write(&frame).unwrap();
    let reply = conn.next().await.unwrap().unwrap();
    assert_eq!(
        (reply.request_id(), reply.header().status),
        (78, Status::BAD_REQUEST)
    );
    // And it still routes good requests.
    let good = client.request(79, "greet", &[]);
    conn.send(good).await.unwrap();
    let reply = conn.next().await.unwrap().unwrap();
    assert_eq!(
        (reply.request_id(), reply.header().status),
        (79, Status::OK)
    );

    // Not Dubbo at all: only that connection is closed; the listener lives on.
    let out = raw_exchange(addr, b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(out.is_empty(), "closed without an answer: {out:?}");
    assert_eq!(client.call("greet", &[]).await.status, Status::OK);

    let (_, text) = http_get(proxy.admin, "/metrics").await;
    assert_eq!(
        metric(
            &text,
            "istio_requests_total",
            &["response_code=\"60\"", "response_flags=\"NR\""]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "istio_requests_total", &["response_code=\"70\""]),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "istio_requests_total",
            &["response_code=\"40\"", "response_flags=\"DPE\""]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "causeway_proxy_protocol_errors_total",
            &["kind=\"bad_frame\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "causeway_proxy_protocol_errors_total",
            &["kind=\"unsupported_serialization\""]
        ),
        1.0
    );
    assert!(
        text.contains("destination_interface=\"unknown\""),
        "unknown interfaces fold into one value"
    );
    assert!(!text.contains("demo.Unknown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_under_load_fails_no_request() {
    let v1 = Provider::start_with_delay("v1", Duration::from_millis(2)).await;
    let v2 = Provider::start_with_delay("v2", Duration::from_millis(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let all_v1 = config(
        &service_yaml(&[(&v1, "v1", "eu/eu-a"), (&v2, "v2", "eu/eu-a")]),
        &ROUTES
            .replace("weight: 80", "weight: 100")
            .replace("weight: 20", "weight: 0"),
    );
    let (proxy, path) = start_proxy(dir.path(), &all_v1).await;
    let addr = proxy.dubbo_addr().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let v2_seen = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, failures, v2_seen, total) = (
            stop.clone(),
            failures.clone(),
            v2_seen.clone(),
            total.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = Client::connect(addr).await;
            while !stop.load(Ordering::SeqCst) {
                let calls: Vec<_> = (0..8).map(|_| client.call("greet", &[])).collect();
                for a in futures::future::join_all(calls).await {
                    total.fetch_add(1, Ordering::SeqCst);
                    if a.status != Status::OK {
                        failures.fetch_add(1, Ordering::SeqCst);
                    } else if a.tag() == Some("v2") {
                        v2_seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(v2_seen.load(Ordering::SeqCst), 0);
    let version_before = proxy.store.load().version.clone();
    // Shift everything to v2 and add a third endpoint, while requests are in flight.
    let v3 = Provider::start_with_delay("v2b", Duration::from_millis(2)).await;
    let all_v2 = config(
        &service_yaml(&[
            (&v1, "v1", "eu/eu-a"),
            (&v2, "v2", "eu/eu-a"),
            (&v3, "v2", "eu/eu-a"),
        ]),
        &ROUTES
            .replace("weight: 80", "weight: 0")
            .replace("weight: 20", "weight: 100"),
    );
    std::fs::write(&path, all_v2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.store.load().version == version_before {
        assert!(Instant::now() < deadline, "the change was not picked up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let switched = total.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // An invalid edit is rejected and the routes in force stay.
    std::fs::write(&path, "services: [{host: broken}]\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let total = total.load(Ordering::SeqCst);
    println!(
        "config change under load: {total} calls ({switched} before the switch), {} failed, {} served by v2",
        failures.load(Ordering::SeqCst),
        v2_seen.load(Ordering::SeqCst)
    );
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert!(v2_seen.load(Ordering::SeqCst) > 0);
    assert!(
        v3.requests.load(Ordering::SeqCst) > 0,
        "the new endpoint takes traffic"
    );
    let client = Client::connect(addr).await;
    assert_eq!(client.call("greet", &[]).await.status, Status::OK);
    let (_, text) = http_get(proxy.admin, "/metrics").await;
    assert_eq!(
        metric(
            &text,
            "causeway_proxy_config_reloads_total",
            &["result=\"rejected\""]
        ),
        1.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "causeway_proxy_config_reloads_total",
            &["result=\"accepted\""]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carries_traceparent_and_b3_to_the_provider_with_the_proxys_span_as_parent() {
    let provider = Provider::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&service_yaml(&[(&provider, "v1", "eu/eu-a")]), "");
    let (proxy, _) = start_proxy(dir.path(), &yaml).await;
    let client = Client::connect(proxy.dubbo_addr().unwrap()).await;
    let seen = |key: &str| provider.last_attachments.lock().unwrap().get(key).cloned();

    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let b3 = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1";
    let a = client
        .call("greet", &[("traceparent", caller), ("b3", b3)])
        .await;
    assert_eq!(a.status, Status::OK, "{a:?}");
    let got = seen("traceparent").unwrap();
    let fields: Vec<&str> = got.split('-').collect();
    assert_eq!(fields.len(), 4, "{got}");
    assert_eq!(fields[0], "00");
    assert_eq!(fields[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
    assert_ne!(
        fields[2], "00f067aa0ba902b7",
        "the proxy's span is the parent"
    );
    assert_eq!(fields[3], "01", "sampled kept");
    // B3 moves one hop too, with the same proxy span, the caller's span as its parent.
    assert_eq!(
        seen("b3").unwrap(),
        format!(
            "4bf92f3577b34da6a3ce929d0e0e4736-{}-1-00f067aa0ba902b7",
            fields[2]
        )
    );

    // Each request is its own hop: a new proxy span every time.
    let first_span = fields[2].to_owned();
    client.call("greet", &[("traceparent", caller)]).await;
    let again = seen("traceparent").unwrap();
    assert!(again.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(!again.contains(&first_span), "{again}");

    // An untraced call stays untraced (and takes the fast path).
    client.call("greet", &[("other", "x")]).await;
    assert_eq!(seen("traceparent"), None);
    assert_eq!(seen("other").as_deref(), Some("x"));
}
