//! gRPC and HTTP resilience through causeway-proxy (issue 7), configured from VirtualService,
//! DestinationRule, TrafficIsolation and MetaRouter rules in local mode (and once through the
//! bridge's RDS, the providers in its file registry), with real peers: Python
//! `grpcio` servers and `http.server` providers that answer, fail or stall on purpose
//! (`tests/python/flaky_server.py`, which also counts what reached them), the real `grpcio`
//! client and plain HTTP/1.1 requests. Each scenario asserts what callers and providers saw and
//! the proxy's metric for the decision.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use causeway_proxy::app::{self, RunningProxy};
use causeway_proxy::config::{ListenProtocol, ProxyConfig};
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use causeway_tests::python::PythonEnv;
use causeway_tests::{assert_eventually, logs};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::mesh::{bridge_config, xds_proxy_config};
use crate::proxy_grpc::{Batch, grpc_batch};

/// A provider started by `flaky_server.py`: `kind` `grpc` or `http`, `mode` `ok`, `fail` or
/// `slow:MS`; it answers `name`.
pub(crate) async fn flaky(
    python: &PythonEnv,
    kind: &str,
    name: &str,
    mode: &str,
) -> (PeerProcess, u16) {
    let port = free_port().unwrap();
    (
        flaky_at(python, kind, "127.0.0.1", port, name, mode).await,
        port,
    )
}

/// [`flaky`] on a given address: providers of one service port on several loopback addresses,
/// as on several hosts.
async fn flaky_at(
    python: &PythonEnv,
    kind: &str,
    ip: &str,
    port: u16,
    name: &str,
    mode: &str,
) -> PeerProcess {
    let label = format!("{kind}-{name}-{port}");
    let mut command = python.command(&workspace_root().join("tests/python/flaky_server.py"));
    command.args([kind, ip, &port.to_string(), name, mode]);
    let mut process =
        PeerProcess::spawn(&label, command, PeerProcess::temp_dir(&label).unwrap()).unwrap();
    let log = process.dir().join(format!("{label}.log"));
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

/// What a provider saw.
#[derive(Debug, Default, Deserialize)]
struct Seen {
    requests: u32,
    authorities: Vec<String>,
    bodies: Vec<String>,
}

/// Asks a gRPC provider on 127.0.0.1 directly (not through the proxy) what it saw.
async fn grpc_seen(python: &PythonEnv, port: u16) -> Seen {
    grpc_seen_at(python, &format!("127.0.0.1:{port}")).await
}

/// [`grpc_seen`] for a provider at `address`.
async fn grpc_seen_at(python: &PythonEnv, address: &str) -> Seen {
    let batch = grpc_batch(python, address, 1, &["--path=/demo.Greeter/Count"]).await;
    assert_eq!(batch.errors, 0, "{}", batch.last_error);
    let json = batch.counts.keys().next().unwrap();
    serde_json::from_str(json).unwrap()
}

/// One HTTP/1.1 request on its own connection: (status, body). A request unanswered for 30 s
/// fails the test (rather than hanging it).
async fn http_call(
    to: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(to).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        text
    };
    let text = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer in 30 s to {method} {path} for {host} at {to}"));
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Asks an HTTP provider directly what it saw.
async fn http_seen(port: u16) -> Seen {
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    let (status, body) = http_call(to, "count", "GET", "/__count", "").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The sum of a metric's samples whose line contains every one of `parts`.
pub(crate) fn sample(text: &str, name: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A proxy in local mode on `config`, written to a temp dir kept alive with it.
pub(crate) async fn start_proxy(config: &str) -> (RunningProxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, config).unwrap();
    let proxy = app::start(ProxyConfig::load(&path).unwrap(), Some(path))
        .await
        .unwrap();
    (proxy, dir)
}

/// A round-robin DestinationRule for `host`, so a failing endpoint gets its share of first
/// attempts whatever its latency.
fn round_robin(host: &str) -> String {
    format!(
        "  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: {host}}}
  spec:
    host: {host}
    trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}
  ---
"
    )
}

pub(crate) fn grpc_service(host: &str, ports: &[u16]) -> String {
    let endpoints: Vec<String> = ports
        .iter()
        .map(|p| format!("{{address: 127.0.0.1, port: {p}}}"))
        .collect();
    format!(
        "- {{host: {host}, port: 50051, protocol: grpc, methods: [SayHello], endpoints: [{}]}}\n",
        endpoints.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_retries_per_try_timeouts_and_the_retry_budget() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let ((_bad, bad), (_good, good), (_slow, slow), (_stuck, stuck)) = tokio::join!(
        flaky(&python, "grpc", "bad", "fail"),
        flaky(&python, "grpc", "good", "ok"),
        flaky(&python, "grpc", "slow", "slow:2000"),
        flaky(&python, "grpc", "stuck", "slow:1000"),
    );
    let mut services = String::new();
    services += &grpc_service("retry.greeter", &[bad, good]);
    services += &grpc_service("plain.greeter", &[bad, good]);
    services += &grpc_service("exhaust.greeter", &[bad]);
    services += &grpc_service("timeout.greeter", &[slow, good]);
    services += &grpc_service("budget.greeter", &[stuck]);
    let mut rules = String::new();
    for host in [
        "retry.greeter",
        "plain.greeter",
        "exhaust.greeter",
        "timeout.greeter",
    ] {
        rules += &round_robin(host);
    }
    let route = |host: &str, extra: &str| {
        format!(
            "  apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {{name: {host}}}
  spec:
    hosts: [{host}]
    http:
    - route: [{{destination: {{host: {host}}}}}]
      {extra}
  ---
"
        )
    };
    rules += &route(
        "retry.greeter",
        "retries: {attempts: 2, retryOn: \"unavailable,cancelled,resource-exhausted\"}",
    );
    rules += &route("plain.greeter", "retries: {attempts: 0}");
    rules += &route(
        "exhaust.greeter",
        "retries: {attempts: 2, retryOn: unavailable}",
    );
    rules += &route(
        "timeout.greeter",
        "retries: {attempts: 2, perTryTimeout: 200ms, retryOn: \"deadline-exceeded,unavailable\"}\n      timeout: 5s",
    );
    rules += &route(
        "budget.greeter",
        "retries: {attempts: 3, perTryTimeout: 100ms, retryOn: deadline-exceeded}\n      timeout: 5s",
    );
    let rules = rules.trim_end().trim_end_matches("---").to_owned();
    let config = format!(
        "admin_listen: 127.0.0.1:0
listen: [{{protocol: grpc, address: 127.0.0.1:0}}]
workload: resilience-caller
services:
{services}rules: |
{rules}
"
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let target = proxy.addr(ListenProtocol::Grpc).unwrap().to_string();
    let call = |host: &'static str, calls: u32, parallel: bool| {
        let python = python.clone();
        let target = target.clone();
        async move {
            let authority = format!("--authority={host}");
            let mut args = vec![authority.as_str()];
            if parallel {
                args.push("--parallel");
            }
            grpc_batch(&python, &target, calls, &args).await
        }
    };
    let retries = |text: &str, host: &str, reason: &str| {
        sample(
            text,
            "causeway_proxy_retries_total",
            &[
                &format!("destination_service=\"{host}\""),
                &format!("reason=\"{reason}\""),
            ],
        )
    };

    // UNAVAILABLE from one provider: every call succeeds through the other, and each of the bad
    // provider's answers was followed by exactly one counted retry.
    let batch: Batch = call("retry.greeter", 20, false).await;
    assert_eq!(batch.errors, 0, "{batch:?}");
    assert_eq!(batch.counts.get("good"), Some(&20), "{batch:?}");
    let bad_seen = grpc_seen(&python, bad).await.requests;
    assert!(
        bad_seen >= 5,
        "round robin sent the bad provider {bad_seen} of 20"
    );
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        retries(&text, "retry.greeter", "retriable_status"),
        f64::from(bad_seen),
        "{text}"
    );

    // The same providers without retries: the bad provider's UNAVAILABLE reaches the caller.
    let before = grpc_seen(&python, bad).await.requests;
    let plain = call("plain.greeter", 20, false).await;
    let failed = grpc_seen(&python, bad).await.requests - before;
    assert!(failed >= 5, "{plain:?}");
    assert_eq!(plain.codes.get("UNAVAILABLE"), Some(&failed), "{plain:?}");
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            "causeway_proxy_retries_total",
            &["destination_service=\"plain.greeter\""]
        ),
        0.0,
        "{text}"
    );

    // Only a failing provider: three attempts (two retries), then its answer with flag URX.
    let before = grpc_seen(&python, bad).await.requests;
    let exhausted = call("exhaust.greeter", 5, false).await;
    assert_eq!(
        exhausted.codes.get("UNAVAILABLE"),
        Some(&5),
        "{exhausted:?}"
    );
    assert_eq!(grpc_seen(&python, bad).await.requests - before, 15);
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        retries(&text, "exhaust.greeter", "retriable_status"),
        10.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "istio_requests_total",
            &[
                "destination_service=\"exhaust.greeter\"",
                "grpc_response_status=\"14\"",
                "response_flags=\"URX\""
            ]
        ),
        5.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "causeway_proxy_retries_refused_total",
            &["destination_service=\"exhaust.greeter\""]
        ),
        5.0,
        "the attempt limit refused one more retry per call: {text}"
    );

    // A provider slower than the per-try timeout: the attempt is abandoned after 200 ms and the
    // other provider answers, long before the slow one would have.
    let started = Instant::now();
    let timed = call("timeout.greeter", 10, false).await;
    let elapsed = started.elapsed();
    assert_eq!(timed.counts.get("good"), Some(&10), "{timed:?}");
    let slow_seen = grpc_seen(&python, slow).await.requests;
    assert!(
        slow_seen >= 3,
        "round robin sent the slow provider {slow_seen} of 10"
    );
    assert!(
        elapsed < Duration::from_secs(8),
        "10 calls took {elapsed:?}: the slow provider (2 s) was waited for"
    );
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        retries(&text, "timeout.greeter", "timeout"),
        f64::from(slow_seen),
        "{text}"
    );
    println!("per-try timeout: 10 calls in {elapsed:?}, {slow_seen} retried after 200 ms");

    // 40 calls at once to a provider that never answers within the per-try timeout: the budget
    // lets a fifth of the active requests (at least 3) retry, so load is far from the 4x that
    // `attempts: 3` alone would allow, and the refusals are counted.
    let flood = call("budget.greeter", 40, true).await;
    assert_eq!(flood.codes.get("DEADLINE_EXCEEDED"), Some(&40), "{flood:?}");
    let stuck_seen = grpc_seen(&python, stuck).await.requests;
    let text = proxy.metrics.encode().unwrap();
    let refused = sample(
        &text,
        "causeway_proxy_retries_refused_total",
        &["destination_service=\"budget.greeter\""],
    );
    let admitted = retries(&text, "budget.greeter", "timeout");
    println!(
        "retry budget: 40 calls, {stuck_seen} attempts, {admitted} retries, {refused} refused"
    );
    assert!(stuck_seen < 80, "{stuck_seen} attempts for 40 calls");
    assert_eq!(f64::from(stuck_seen), 40.0 + admitted, "{text}");
    assert!(refused >= 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "istio_requests_total",
            &[
                "destination_service=\"budget.greeter\"",
                "grpc_response_status=\"4\"",
                "response_flags=\"UT\""
            ]
        ),
        40.0,
        "{text}"
    );
}

fn http_service(host: &str, ports: &[u16]) -> String {
    let endpoints: Vec<String> = ports
        .iter()
        .map(|p| format!("{{address: 127.0.0.1, port: {p}}}"))
        .collect();
    format!(
        "- {{host: {host}, port: 8080, protocol: http, endpoints: [{}]}}\n",
        endpoints.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn http_5xx_retries_and_mirrors_that_never_slow_the_primary() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let ((_bad, bad), (_good, good), (_mirror, mirror), (_slow, slow)) = tokio::join!(
        flaky(&python, "http", "bad", "fail"),
        flaky(&python, "http", "good", "ok"),
        flaky(&python, "http", "mirror", "ok"),
        flaky(&python, "http", "slow-mirror", "slow:3000"),
    );
    // Nothing listens there: a mirror that is down.
    let down = free_port().unwrap();
    let mut services = String::new();
    services += &http_service("web.flaky", &[bad, good]);
    services += &http_service("web.mirror", &[mirror]);
    services += &http_service("web.toslow", &[good]);
    services += &http_service("web.slowmirror", &[slow]);
    services += &http_service("web.todown", &[good]);
    services += &http_service("web.downmirror", &[down]);
    let mut rules = round_robin("web.flaky");
    let route = |host: &str, extra: &str| {
        format!(
            "  apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {{name: {host}}}
  spec:
    hosts: [{host}]
    http:
    - route: [{{destination: {{host: {host}}}}}]
      {extra}
  ---
"
        )
    };
    rules += &route(
        "web.flaky",
        "retries: {attempts: 2, retryOn: 5xx}\n      mirror: {host: web.mirror}\n      mirrorPercentage: {value: 50}",
    );
    rules += &route("web.toslow", "mirror: {host: web.slowmirror}");
    rules += &route("web.todown", "mirror: {host: web.downmirror}");
    let rules = rules.trim_end().trim_end_matches("---").to_owned();
    let config = format!(
        "admin_listen: 127.0.0.1:0
listen: [{{protocol: http, address: 127.0.0.1:0}}]
workload: resilience-caller
services:
{services}rules: |
{rules}
"
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let http = proxy.addr(ListenProtocol::Http).unwrap();

    // 503 from one provider: every POST is answered by the other, its body replayed.
    const CALLS: u32 = 200;
    for i in 0..CALLS {
        let (status, body) = http_call(
            http,
            "web.flaky",
            "POST",
            "/orders",
            &format!("payload-{i}"),
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "good"), "call {i}");
    }
    let bad_seen = http_seen(bad).await;
    let good_seen = http_seen(good).await;
    assert!(bad_seen.requests >= 50, "{bad_seen:?}");
    assert_eq!(good_seen.requests, CALLS, "{good_seen:?}");
    // The retried bodies are the callers' bodies.
    assert!(
        good_seen.bodies.iter().all(|b| b.starts_with("payload-")),
        "{good_seen:?}"
    );
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            "causeway_proxy_retries_total",
            &[
                "destination_service=\"web.flaky\"",
                "request_protocol=\"http\"",
                "reason=\"retriable_status\""
            ]
        ),
        f64::from(bad_seen.requests),
        "{text}"
    );

    // Half of the requests were copied to the mirror, with the `-shadow` authority and the body.
    assert_eventually!(
        {
            let text = proxy.metrics.encode().unwrap();
            let mirrored = sample(
                &text,
                "causeway_proxy_mirrored_requests_total",
                &["destination_service=\"web.flaky\""],
            );
            mirrored > 0.0 && f64::from(http_seen(mirror).await.requests) == mirrored
        },
        "the mirror never saw what the proxy counted as mirrored"
    );
    let mirror_seen = http_seen(mirror).await;
    println!(
        "mirror at 50 %: {} of {CALLS} requests copied",
        mirror_seen.requests
    );
    assert!(
        (60..=140).contains(&mirror_seen.requests),
        "{} of {CALLS} mirrored at 50 %",
        mirror_seen.requests
    );
    assert!(
        mirror_seen
            .authorities
            .iter()
            .all(|a| a == "web.flaky-shadow"),
        "{mirror_seen:?}"
    );
    assert!(
        mirror_seen.bodies.iter().all(|b| b.starts_with("payload-")),
        "{mirror_seen:?}"
    );

    // A mirror that takes 3 s, or is down, costs the primary nothing.
    for host in ["web.toslow", "web.todown"] {
        for i in 0..20 {
            let started = Instant::now();
            let (status, body) = http_call(http, host, "POST", "/", "x").await;
            let took = started.elapsed();
            assert_eq!((status, body.as_str()), (200, "good"), "{host} call {i}");
            assert!(
                took < Duration::from_secs(1),
                "{host} call {i} took {took:?}"
            );
        }
    }
    assert_eventually!(
        http_seen(slow).await.requests == 20,
        "the slow mirror did not get its 20 copies"
    );
    // 80 requests at once, more copies than may be in flight (64) while the slow mirror holds
    // each for 3 s: the excess is dropped and counted, never queued behind the primary.
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..80 {
        burst.spawn(http_call(http, "web.toslow", "GET", "/", ""));
    }
    while let Some(answer) = burst.join_next().await {
        assert_eq!(answer.unwrap().0, 200);
    }
    assert_eventually!(within Duration::from_secs(30);
        {
            let text = proxy.metrics.encode().unwrap();
            let service = ["destination_service=\"web.toslow\""];
            let mirrored = sample(&text, "causeway_proxy_mirrored_requests_total", &service);
            let dropped = sample(&text, "causeway_proxy_mirror_dropped_total", &service);
            dropped >= 1.0 && mirrored + dropped == 100.0
                && f64::from(http_seen(slow).await.requests) == mirrored
        },
        "mirrored + dropped copies of web.toslow never added up to 100: {}",
        proxy.metrics.encode().unwrap()
    );
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            "istio_requests_total",
            &[
                "destination_service=\"web.todown\"",
                "response_code=\"200\""
            ]
        ),
        20.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_class_shed_with_resource_exhausted_while_users_pass_and_http_rate_limit() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let ((_grpc, grpc), (_web, web)) = tokio::join!(
        flaky(&python, "grpc", "busy", "slow:1500"),
        flaky(&python, "http", "web", "ok"),
    );
    let mut services = grpc_service("iso.greeter", &[grpc]);
    services += &http_service("web.limited", &[web]);
    let config = format!(
        "admin_listen: 127.0.0.1:0
listen: [{{protocol: grpc, address: 127.0.0.1:0}}, {{protocol: http, address: 127.0.0.1:0}}]
workload: resilience-caller
services:
{services}rules: |
  apiVersion: causeway.io/v1alpha1
  kind: TrafficIsolation
  metadata: {{name: iso}}
  spec:
    host: iso.greeter
    classes:
    - name: batch
      match:
        headers:
          x-caller-app: {{prefix: report-}}
      maxConcurrency: 2
      shedOrder: 0
    - name: user
      maxConcurrency: 50
      shedOrder: 10
    defaultClass: user
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {{name: limited}}
  spec:
    hosts: [web.limited]
    localRateLimit:
      tokenBucket: {{maxTokens: 3, tokensPerFill: 1, fillInterval: 1h}}
"
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let target = proxy.addr(ListenProtocol::Grpc).unwrap().to_string();

    // Ten batch calls and ten user calls at once, each held 1.5 s by the provider: the batch
    // class gets its two slots and the rest is shed at once; users are untouched.
    let (batch, users) = tokio::join!(
        grpc_batch(
            &python,
            &target,
            10,
            &[
                "--authority=iso.greeter",
                "--parallel",
                "x-caller-app=report-nightly"
            ]
        ),
        grpc_batch(
            &python,
            &target,
            10,
            &[
                "--authority=iso.greeter",
                "--parallel",
                "x-caller-app=shop-web"
            ]
        ),
    );
    println!(
        "isolation: batch {:?}, users {:?}",
        batch.codes, users.codes
    );
    assert_eq!(users.counts.get("busy"), Some(&10), "{users:?}");
    let shed = batch.codes.get("RESOURCE_EXHAUSTED").copied().unwrap_or(0);
    assert!(shed >= 1, "{batch:?}");
    assert_eq!(
        batch.codes.get("OK").copied().unwrap_or(0) + shed,
        10,
        "{batch:?}"
    );
    assert!(batch.last_error.contains("batch"), "{batch:?}");
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            "causeway_proxy_shed_total",
            &[
                "destination_service=\"iso.greeter\"",
                "traffic_class=\"batch\"",
                "reason=\"concurrency_limit\""
            ]
        ),
        f64::from(shed),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "causeway_proxy_class_requests_total",
            &[
                "destination_service=\"iso.greeter\"",
                "traffic_class=\"user\""
            ]
        ),
        10.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "istio_requests_total",
            &[
                "destination_service=\"iso.greeter\"",
                "grpc_response_status=\"8\"",
                "response_flags=\"UO\""
            ]
        ),
        f64::from(shed),
        "{text}"
    );
    assert_eventually!(
        {
            let text = proxy.metrics.encode().unwrap();
            sample(
                &text,
                "causeway_proxy_class_in_flight",
                &["destination_service=\"iso.greeter\""],
            ) == 0.0
        },
        "class slots were not released"
    );

    // The host's local rate limit over HTTP: three tokens, then 429 with flag RL.
    let http = proxy.addr(ListenProtocol::Http).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(http_call(http, "web.limited", "GET", "/", "").await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(http_seen(web).await.requests, 3);
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            "istio_requests_total",
            &[
                "destination_service=\"web.limited\"",
                "response_code=\"429\"",
                "response_flags=\"RL\""
            ]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "causeway_proxy_shed_total",
            &[
                "destination_service=\"web.limited\"",
                "reason=\"rate_limit\""
            ]
        ),
        2.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_retries_and_mirror_configured_through_the_bridge() {
    use crate::xds_grpc::HOST;

    logs::init();
    let python = PythonEnv::shared().unwrap();
    // One service port on three loopback addresses (different ports would be different service
    // ports, each with its own route table and clusters).
    let port = free_port().unwrap();
    let (_bad, _good, _shadow) = tokio::join!(
        flaky_at(&python, "grpc", "127.0.0.1", port, "bad", "fail"),
        flaky_at(&python, "grpc", "127.0.0.2", port, "good", "ok"),
        flaky_at(&python, "grpc", "127.0.0.3", port, "shadow", "ok"),
    );
    let (bad, shadow) = (format!("127.0.0.1:{port}"), format!("127.0.0.3:{port}"));
    // The bridge's file registry: the three providers as a gRPC service, v1 (bad, good) and v3.
    let endpoint = |ip: &str, version: &str| {
        format!(
            "      - {{address: {ip}, port: {port}, labels: {{aeraki_meta_app_version: {version}, region: r1, zone: z1}}}}\n"
        )
    };
    let registry = format!(
        "services:\n  - interface: demo.Greeter\n    protocol: grpc\n    methods: [SayHello]\n    endpoints:\n{}{}{}",
        endpoint("127.0.0.1", "v1"),
        endpoint("127.0.0.2", "v1"),
        endpoint("127.0.0.3", "v3"),
    );
    let rules = format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter}}
spec:
  host: {HOST}
  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}
  subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v3, labels: {{version: v3}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: greeter}}
spec:
  hosts: [{HOST}]
  http:
    - name: all
      route: [{{destination: {{host: {HOST}, subset: v1}}}}]
      retries: {{attempts: 2, perTryTimeout: 2s, retryOn: \"unavailable,resource-exhausted\"}}
      mirror: {{host: {HOST}, subset: v3}}
      mirrorPercentage: {{value: 100}}
"
    );
    let (_bridge, proxy, _dir) = start_bridge_and_proxy(&registry, &rules, "grpc-caller").await;
    assert_eventually!(within Duration::from_secs(30); {
        let snapshot = proxy.store.load();
        let endpoints = |subset: &str| {
            snapshot
                .clusters
                .values()
                .filter(|c| c.host == HOST && c.subset == subset)
                .map(|c| c.endpoints.len())
                .sum::<usize>()
        };
        snapshot
            .http_table(HOST)
            .is_some_and(|t| t.routes.iter().any(|r| r.retries.is_some() && !r.mirrors.is_empty()))
            && endpoints("v1") == 2
            && endpoints("v3") == 1
    }, "the proxy never received the retry and mirror policy over RDS: {:?}", proxy.store.load());

    let target = proxy.addr(ListenProtocol::Grpc).unwrap().to_string();
    let batch = grpc_batch(&python, &target, 20, &[]).await;
    assert_eq!(batch.counts.get("good"), Some(&20), "{batch:?}");
    let bad_seen = grpc_seen_at(&python, &bad).await.requests;
    let text = proxy.metrics.encode().unwrap();
    assert!(
        bad_seen >= 5,
        "round robin sent the bad provider {bad_seen} of 20: {text}\n{:?}",
        proxy.store.load()
    );
    assert_eq!(
        sample(
            &text,
            "causeway_proxy_retries_total",
            &[
                &format!("destination_service=\"{HOST}\""),
                "reason=\"retriable_status\""
            ]
        ),
        f64::from(bad_seen),
        "{text}"
    );
    // Every call was copied to v3 (grpcio does not show a server the authority; the HTTP test
    // checks the `-shadow` suffix), and the caller saw only the primary's answers.
    assert_eventually!(
        grpc_seen_at(&python, &shadow).await.requests == 20,
        "the mirror did not get its 20 copies"
    );
    let text = proxy.metrics.encode().unwrap();
    assert_eq!(
        sample(
            &text,
            "causeway_proxy_mirrored_requests_total",
            &[&format!("destination_service=\"{HOST}\"")]
        ),
        20.0,
        "{text}"
    );
}

/// The bridge serving `rules` for the services of a file registry holding `registry` (written to
/// a temp dir kept alive with it), and a proxy with one gRPC listener in xDS mode fed by it, in
/// locality `r1/z1` as `workload`.
pub(crate) async fn start_bridge_and_proxy(
    registry: &str,
    rules: &str,
    workload: &str,
) -> (
    causeway_bridge::app::RunningBridge,
    RunningProxy,
    tempfile::TempDir,
) {
    use causeway_bridge::app as bridge_app;

    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yaml");
    std::fs::write(&rules_path, rules).unwrap();
    let registry_path = dir.path().join("registry.yaml");
    std::fs::write(&registry_path, registry).unwrap();
    let bridge = bridge_app::start(bridge_config(
        vec![format!("file://{}?name=static", registry_path.display())],
        Some(rules_path),
    ))
    .await
    .unwrap();
    let proxy = app::start(
        xds_proxy_config(
            bridge.xds_addr,
            &[ListenProtocol::Grpc],
            "r1/z1",
            workload,
            &format!("{workload}-1"),
        ),
        None,
    )
    .await
    .unwrap();
    (bridge, proxy, dir)
}
