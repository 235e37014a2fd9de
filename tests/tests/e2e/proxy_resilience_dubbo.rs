//! Dubbo resilience through causeway-proxy in local-config mode, called by the real Apache Dubbo
//! Java consumer (`demo/java/dubbo-sample`, `--url` straight at the proxy's Dubbo listener):
//!
//! - mirroring: the primary is a real Java provider; the mirror is the Rust benchmark provider
//!   (`causeway_tests::dubbo_bench::provider`), which counts what reaches it. About the route's
//!   `mirrorPercentage` of the calls is copied there while every call is answered by the primary;
//!   a mirror nobody listens on changes nothing for the consumer.
//! - circuit breaker: with `http2MaxRequests: 1` and a Java provider's `slow` call holding the
//!   cluster's only slot, the consumer's next calls are refused at once with status 100
//!   SERVER_THREADPOOL_EXHAUSTED, which the Java consumer decodes, and counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use causeway_proxy::app::RunningProxy;
use causeway_tests::dubbo_bench::{Template, provider};
use causeway_tests::ports::free_port;
use causeway_tests::{assert_eventually, logs};

use crate::bridge_dubbo_java::{run_consumer, sample};
use crate::proxy_dubbo_java::provider as java_provider;
use crate::proxy_resilience::start_proxy;

const INTERFACE: &str = "io.causeway.demo.api.GreetingService";
const HOST: &str = "greeter";
const MIRRORED_CALLS: usize = 400;

/// The Rust benchmark provider on a free port, counting the requests it receives.
async fn counting_provider() -> (u16, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicU64::new(0));
    let response = Arc::new(Template::response(64).unwrap());
    tokio::spawn(provider::serve_counted(listener, response, served.clone()));
    (port, served)
}

/// The sum of a metric's samples whose line holds every one of `parts`.
pub(crate) fn metric(proxy: &RunningProxy, name: &str, parts: &[&str]) -> f64 {
    let text = proxy.metrics.encode().unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn proxy_url(proxy: &RunningProxy) -> String {
    let addr: SocketAddr = proxy.dubbo_addr().unwrap();
    format!("dubbo://127.0.0.1:{}", addr.port())
}

#[tokio::test(flavor = "multi_thread")]
async fn dubbo_mirror_gets_its_share_and_never_touches_the_java_consumer() {
    logs::init();
    let program = sample().await.unwrap();
    let (_primary, primary_port) = java_provider(&program, "primary").await;
    let (mirror_port, mirror_served) = counting_provider().await;
    let dead_port = free_port().unwrap();
    let config = format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: dubbo, address: 127.0.0.1:0}}]
workload: greeter-consumer
services:
- host: {HOST}
  port: 20880
  dubbo: {{interface: {INTERFACE}, version: 1.0.0, methods: [greet, slow]}}
  endpoints:
  - {{address: 127.0.0.1, port: {primary_port}, labels: {{version: primary}}}}
  - {{address: 127.0.0.1, port: {mirror_port}, labels: {{version: mirror}}}}
  - {{address: 127.0.0.3, port: {dead_port}, labels: {{version: dead}}}}
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: greeter}}
  spec:
    host: {HOST}
    subsets:
    - {{name: primary, labels: {{version: primary}}}}
    - {{name: mirror, labels: {{version: mirror}}}}
    - {{name: dead, labels: {{version: dead}}}}
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {{name: greeter}}
  spec:
    hosts: [{HOST}]
    routes:
    - name: slow-mirrored-to-a-dead-provider
      match: {{attributes: {{method: {{exact: slow}}}}}}
      route: [{{destination: {{host: {HOST}, subset: primary}}}}]
      requestMirrorPolicies:
      - {{destination: {{host: {HOST}, subset: dead}}}}
    - name: half-mirrored
      route: [{{destination: {{host: {HOST}, subset: primary}}}}]
      mirror: {{host: {HOST}, subset: mirror}}
      mirrorPercentage: {{value: 50}}
"#
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let url = proxy_url(&proxy);
    let calls = MIRRORED_CALLS.to_string();
    let run = run_consumer(&program, &["--url", &url, "--calls", &calls])
        .await
        .unwrap();
    assert!(run.success, "the consumer failed:\n{}", run.stderr);
    assert_eq!(run.lines.len(), MIRRORED_CALLS);
    for line in &run.lines {
        assert_eq!(line["ok"], true, "{line}");
        let result = line["result"].as_str().unwrap();
        assert!(result.contains("from primary"), "{result}");
    }
    let mirrored = |proxy: &RunningProxy| {
        metric(
            proxy,
            "causeway_proxy_mirrored_requests_total",
            &[
                &format!("destination_service=\"{HOST}\""),
                "request_protocol=\"dubbo\"",
            ],
        ) as u64
    };
    let copies = mirrored(&proxy);
    assert_eventually!(
        mirror_served.load(Ordering::Relaxed) == copies,
        "the mirror received {} of the {copies} copies the proxy counted",
        mirror_served.load(Ordering::Relaxed)
    );
    // 50% of 400: within 4 standard deviations (±40).
    assert!(
        copies.abs_diff(MIRRORED_CALLS as u64 / 2) <= 40,
        "{copies} copies for {MIRRORED_CALLS} calls at 50%"
    );
    // The copies' answers were read and discarded, not taken for strays.
    assert_eq!(
        metric(
            &proxy,
            "causeway_proxy_protocol_errors_total",
            &["kind=\"unknown_response\""]
        ),
        0.0
    );

    // A mirror nobody listens on: the consumer sees nothing of it.
    let started = Instant::now();
    let run = run_consumer(
        &program,
        &[
            "--url", &url, "--method", "slow", "--millis", "0", "--calls", "100",
        ],
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(run.success, "the consumer failed:\n{}", run.stderr);
    assert!(run.lines.iter().all(|l| l["ok"] == true));
    let tried = mirrored(&proxy) - copies;
    let dropped = metric(
        &proxy,
        "causeway_proxy_mirror_dropped_total",
        &["request_protocol=\"dubbo\""],
    ) as u64;
    assert!(tried >= 1, "no copy was tried");
    assert_eq!(tried + dropped, 100, "tried {tried}, dropped {dropped}");
    println!(
        "dubbo mirror: {copies} of {MIRRORED_CALLS} copied at 50%; 100 calls with a dead mirror in {took:?} (JVM start included)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dubbo_breaker_overflow_is_threadpool_exhausted_for_the_java_consumer() {
    logs::init();
    let program = sample().await.unwrap();
    let (_provider, port) = java_provider(&program, "v1").await;
    let config = format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: dubbo, address: 127.0.0.1:0}}]
workload: greeter-consumer
services:
- host: {HOST}
  port: 20880
  dubbo: {{interface: {INTERFACE}, version: 1.0.0, methods: [greet, slow]}}
  endpoints:
  - {{address: 127.0.0.1, port: {port}, labels: {{version: v1}}}}
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: greeter}}
  spec:
    host: {HOST}
    trafficPolicy:
      connectionPool:
        http: {{http2MaxRequests: 1}}
"#
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let url = proxy_url(&proxy);
    // One slow call holds the cluster's only request slot...
    let slow = {
        let program = program.clone();
        let url = url.clone();
        tokio::spawn(async move {
            run_consumer(
                &program,
                &[
                    "--url",
                    &url,
                    "--method",
                    "slow",
                    "--millis",
                    "20000",
                    "--timeout",
                    "30000",
                ],
            )
            .await
            .unwrap()
        })
    };
    assert_eventually!(
        metric(&proxy, "causeway_proxy_upstream_requests_in_flight", &[]) == 1.0,
        "the slow call never reached the provider"
    );
    // ...so the other consumer's calls are refused at once.
    let run = run_consumer(&program, &["--url", &url, "--calls", "3"])
        .await
        .unwrap();
    assert!(!run.success);
    assert_eq!(run.lines.len(), 3, "{:?}", run.lines);
    for line in &run.lines {
        assert_eq!(line["ok"], false, "{line}");
        let message = line["message"].as_str().unwrap_or_default();
        assert!(message.contains("request limit"), "{line}");
        // Refused without waiting for the slow call (20 s).
        let micros = line["micros"].as_u64().unwrap();
        assert!(micros < 5_000_000, "{line}");
    }
    assert_eq!(
        metric(
            &proxy,
            "istio_requests_total",
            &["response_code=\"100\"", "response_flags=\"UO\""]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &proxy,
            "causeway_proxy_upstream_overflow_total",
            &[&format!("cluster=\"outbound|20880||{HOST}\"")]
        ),
        3.0
    );
    let micros: Vec<u64> = run
        .lines
        .iter()
        .filter_map(|l| l["micros"].as_u64())
        .collect();
    println!("dubbo breaker: 3 refusals, consumer-side µs {micros:?}");
    slow.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn dubbo_faults_and_per_try_timeout_retries_for_the_java_consumer() {
    logs::init();
    let program = sample().await.unwrap();
    let (_provider, java_port) = java_provider(&program, "v1").await;
    // A provider that reads requests and never answers.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_port = stuck.local_addr().unwrap().port();
    let stuck_served = Arc::new(AtomicU64::new(0));
    tokio::spawn(provider::serve_silent(stuck, stuck_served.clone()));
    let config = format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: dubbo, address: 127.0.0.1:0}}]
workload: greeter-consumer
services:
- host: {HOST}
  port: 20880
  dubbo: {{interface: {INTERFACE}, version: 1.0.0, methods: [greet, slow]}}
  endpoints:
  - {{address: 127.0.0.1, port: {java_port}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, port: {stuck_port}, labels: {{version: stuck}}}}
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: greeter}}
  spec:
    host: {HOST}
    subsets:
    - {{name: v1, labels: {{version: v1}}}}
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {{name: greeter}}
  spec:
    hosts: [{HOST}]
    routes:
    - name: slow-half-aborted
      match: {{attributes: {{method: {{exact: slow}}}}}}
      route: [{{destination: {{host: {HOST}, subset: v1}}}}]
      fault: {{abort: {{percentage: {{value: 50}}, dubboStatus: SERVER_ERROR}}}}
    - name: greet-with-per-try-timeouts
      route: [{{destination: {{host: {HOST}}}}}]
      timeout: 8s
      retries: {{attempts: 2, perTryTimeout: 1s, retryOn: timeout}}
"#
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let url = proxy_url(&proxy);

    // Abort: the Java consumer decodes the injected status and its message.
    let run = run_consumer(
        &program,
        &[
            "--url", &url, "--method", "slow", "--millis", "0", "--calls", "100",
        ],
    )
    .await
    .unwrap();
    assert_eq!(run.lines.len(), 100, "{}", run.stderr);
    let failed: Vec<_> = run.lines.iter().filter(|l| l["ok"] == false).collect();
    assert!(
        failed.len().abs_diff(50) <= 30,
        "{} of 100 aborted at 50%",
        failed.len()
    );
    for line in &failed {
        let message = line["message"].as_str().unwrap_or_default();
        assert!(message.contains("fault injected"), "{line}");
    }
    let aborted = metric(
        &proxy,
        "causeway_proxy_faults_aborted_total",
        &["request_protocol=\"dubbo\""],
    ) as usize;
    assert_eq!(aborted, failed.len());
    assert_eq!(
        metric(
            &proxy,
            "istio_requests_total",
            &["response_code=\"80\"", "response_flags=\"FI\""]
        ) as usize,
        failed.len()
    );

    // Per-try timeout: a try that reaches the stuck provider is abandoned after 1 s (roomy: the
    // Java provider must never need that long, even on a loaded machine) and the call retried
    // on the Java provider.
    let started = Instant::now();
    let run = run_consumer(
        &program,
        &["--url", &url, "--calls", "30", "--timeout", "10000"],
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(run.success, "the consumer failed:\n{}", run.stderr);
    assert!(
        run.lines
            .iter()
            .all(|l| l["result"].as_str().unwrap_or_default().contains("from v1"))
    );
    let stuck = stuck_served.load(Ordering::Relaxed) as usize;
    let retries = metric(
        &proxy,
        "causeway_proxy_retries_total",
        &["reason=\"timeout\"", "request_protocol=\"dubbo\""],
    ) as usize;
    assert!(stuck >= 1, "the stuck provider was never tried");
    assert_eq!(retries, stuck, "one retry per try the stuck provider held");
    println!(
        "dubbo: {} of 100 aborted at 50% (status 80 decoded by Java); {retries} per-try timeouts retried, 30 calls in {took:?} (JVM start included)",
        failed.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dubbo_threadpool_exhausted_answers_are_retried_on_another_provider() {
    logs::init();
    let program = sample().await.unwrap();
    let (_provider, java_port) = java_provider(&program, "v1").await;
    // A provider whose thread pool is always full (status 100 to every request).
    let exhausted = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exhausted_port = exhausted.local_addr().unwrap().port();
    let exhausted_served = Arc::new(AtomicU64::new(0));
    tokio::spawn(provider::serve_exhausted(
        exhausted,
        exhausted_served.clone(),
    ));
    let config = format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: dubbo, address: 127.0.0.1:0}}]
workload: greeter-consumer
services:
- host: {HOST}
  port: 20880
  dubbo: {{interface: {INTERFACE}, version: 1.0.0, methods: [greet, slow]}}
  endpoints:
  - {{address: 127.0.0.1, port: {java_port}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, port: {exhausted_port}, labels: {{version: busy}}}}
rules: |
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {{name: greeter}}
  spec:
    hosts: [{HOST}]
    routes:
    - route: [{{destination: {{host: {HOST}}}}}]
      retries: {{attempts: 2, retryOn: threadpool-exhausted}}
"#
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let url = proxy_url(&proxy);
    let run = run_consumer(&program, &["--url", &url, "--calls", "60"])
        .await
        .unwrap();
    assert!(run.success, "the consumer failed:\n{}", run.stderr);
    assert!(
        run.lines
            .iter()
            .all(|l| l["result"].as_str().unwrap_or_default().contains("from v1"))
    );
    let exhausted = exhausted_served.load(Ordering::Relaxed) as usize;
    let retries = metric(
        &proxy,
        "causeway_proxy_retries_total",
        &["reason=\"retriable_status\"", "request_protocol=\"dubbo\""],
    ) as usize;
    assert!(exhausted >= 1, "the exhausted provider was never tried");
    assert_eq!(retries, exhausted, "one retry per status-100 answer");
    // The caller saw only successes: the status-100 tries are not in its request metrics.
    assert_eq!(
        metric(&proxy, "istio_requests_total", &["response_code=\"100\""]),
        0.0
    );
    println!("dubbo retry-on threadpool-exhausted: {retries} retried, 60/60 answered by v1");
}
