//! Thrift resilience through causeway-proxy in local-config mode, with Apache Thrift Python
//! servers (`tests/python/thrift_calc.py`: `TThreadedServer`, framed + binary, multiplexed
//! `Calculator`) and Apache Thrift Python clients calling the proxy's Thrift listener:
//!
//! - mirroring: a MetaRouter `mirror` with `mirrorPercentage` copies about that share of the calls
//!   to the mirror server (which counts what it received) while every caller gets the primary's
//!   answer; a mirror that is down changes nothing for the callers.
//! - circuit breaker: a cluster with `http2MaxRequests: 1` and a slow server answers the calls
//!   beyond the first at once with a `TApplicationException` and counts the overflow.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use causeway_proxy::app::RunningProxy;
use causeway_proxy::config::ListenProtocol;
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use causeway_tests::python::PythonEnv;
use causeway_tests::{assert_eventually, logs};
use serde::Deserialize;

use crate::proxy_resilience::start_proxy;
use crate::proxy_resilience_dubbo::metric;

fn script() -> std::path::PathBuf {
    workspace_root().join("tests/python/thrift_calc.py")
}

/// A Python Thrift server on `127.0.0.1:port`, answering with `tag`.
async fn server(python: &PythonEnv, port: u16, tag: &str) -> PeerProcess {
    let name = format!("thrift-calc-{tag}");
    let mut command = python.command(&script());
    command.args(["server", "127.0.0.1", &port.to_string(), tag]);
    let mut process =
        PeerProcess::spawn(&name, command, PeerProcess::temp_dir(&name).unwrap()).unwrap();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    process
        .wait_ready(Duration::from_secs(60), || async move {
            tokio::net::TcpStream::connect(address).await?;
            Ok(())
        })
        .await
        .unwrap();
    process
}

#[derive(Debug, Deserialize)]
struct Exception {
    r#type: i32,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Run {
    replies: BTreeMap<String, usize>,
    exceptions: Vec<Exception>,
}

/// `calls` calls of `method(a, 2)` through `proxy` over `threads` connections.
async fn run(
    python: &PythonEnv,
    proxy: SocketAddr,
    method: &str,
    calls: usize,
    a: u32,
    threads: usize,
) -> Run {
    let mut command = tokio::process::Command::from(python.command(&script()));
    command.args([
        "run",
        &proxy.ip().to_string(),
        &proxy.port().to_string(),
        method,
        &calls.to_string(),
        &a.to_string(),
        "2",
        &threads.to_string(),
    ]);
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "the client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// How many calls the server on `port` has received (asked directly, not through the proxy).
async fn served(python: &PythonEnv, port: u16) -> usize {
    let mut command = tokio::process::Command::from(python.command(&script()));
    command.args(["served", "127.0.0.1", &port.to_string()]);
    let output = command.output().await.unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

const MIRRORED_CALLS: usize = 400;

#[tokio::test(flavor = "multi_thread")]
async fn thrift_mirror_gets_its_share_and_never_touches_the_callers() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let (primary_port, mirror_port, dead_port) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let (_primary, _mirror) = tokio::join!(
        server(&python, primary_port, "primary"),
        server(&python, mirror_port, "mirror"),
    );
    let config = format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: thrift, address: 127.0.0.1:0}}]
workload: calculator-client
services:
- host: calculator
  port: 9090
  protocol: thrift
  thrift: {{service: Calculator, methods: [add, multiply]}}
  endpoints:
  - {{address: 127.0.0.1, port: {primary_port}, labels: {{version: primary}}}}
  - {{address: 127.0.0.1, port: {mirror_port}, labels: {{version: mirror}}}}
  - {{address: 127.0.0.3, port: {dead_port}, labels: {{version: dead}}}}
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: calculator}}
  spec:
    host: calculator
    subsets:
    - {{name: primary, labels: {{version: primary}}}}
    - {{name: mirror, labels: {{version: mirror}}}}
    - {{name: dead, labels: {{version: dead}}}}
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {{name: calculator}}
  spec:
    hosts: [calculator]
    routes:
    - name: multiply-mirrored-to-a-dead-server
      match: {{attributes: {{method: {{exact: multiply}}}}}}
      route: [{{destination: {{host: calculator, subset: primary}}}}]
      mirror: {{host: calculator, subset: dead}}
    - name: half-mirrored
      route: [{{destination: {{host: calculator, subset: primary}}}}]
      mirror: {{host: calculator, subset: mirror}}
      mirrorPercentage: {{value: 50}}
"#
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let address = proxy.addr(ListenProtocol::Thrift).unwrap();

    let outcome = run(&python, address, "add", MIRRORED_CALLS, 1, 4).await;
    assert!(outcome.exceptions.is_empty(), "{outcome:?}");
    assert_eq!(
        outcome.replies.get("primary").copied(),
        Some(MIRRORED_CALLS),
        "every caller gets the primary's answer: {outcome:?}"
    );
    // Copies are fire-and-forget: they may still be arriving when the callers are done.
    let mirrored = |proxy: &RunningProxy| {
        metric(
            proxy,
            "causeway_proxy_mirrored_requests_total",
            &[
                "destination_service=\"calculator\"",
                "request_protocol=\"thrift\"",
            ],
        ) as usize
    };
    let copies = mirrored(&proxy);
    assert_eventually!(
        served(&python, mirror_port).await == copies,
        "the mirror did not receive the {copies} copies the proxy counted"
    );
    // 50% of 400: within 4 standard deviations (±40).
    assert!(
        copies.abs_diff(MIRRORED_CALLS / 2) <= 40,
        "{copies} copies for {MIRRORED_CALLS} calls at 50%"
    );
    assert_eq!(
        served(&python, primary_port).await,
        MIRRORED_CALLS,
        "the primary sees each call once"
    );

    // A mirror nobody listens on: the callers see nothing of it.
    let started = Instant::now();
    let outcome = run(&python, address, "multiply", 200, 3, 4).await;
    let took = started.elapsed();
    assert!(outcome.exceptions.is_empty(), "{outcome:?}");
    assert_eq!(outcome.replies.get("primary").copied(), Some(200));
    println!(
        "thrift mirror: {copies} of {MIRRORED_CALLS} copied at 50%; 200 calls with a dead mirror in {took:?}"
    );
    let tried = mirrored(&proxy) - copies;
    let dropped = metric(
        &proxy,
        "causeway_proxy_mirror_dropped_total",
        &["request_protocol=\"thrift\""],
    ) as usize;
    // The first copies find the connection refused and eject the dead endpoint; while it is
    // ejected there is nowhere to copy to, which counts as dropped.
    assert!(tried >= 1, "no copy was tried");
    assert_eq!(tried + dropped, 200, "tried {tried}, dropped {dropped}");
    let errors = metric(
        &proxy,
        "istio_requests_total",
        &["request_protocol=\"thrift\"", "response_code=\"1\""],
    );
    assert_eq!(errors, 0.0, "no caller saw an error");
}

#[tokio::test(flavor = "multi_thread")]
async fn thrift_breaker_overflow_is_an_immediate_application_exception() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let port = free_port().unwrap();
    let _server = server(&python, port, "slow").await;
    let config = format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: thrift, address: 127.0.0.1:0}}]
workload: calculator-client
services:
- host: calculator
  port: 9090
  protocol: thrift
  thrift: {{service: Calculator, methods: [add, slow]}}
  endpoints:
  - {{address: 127.0.0.1, port: {port}}}
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: calculator}}
  spec:
    host: calculator
    trafficPolicy:
      connectionPool:
        http: {{http2MaxRequests: 1}}
"#
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let address = proxy.addr(ListenProtocol::Thrift).unwrap();

    // One slow call takes the cluster's only request slot...
    let slow = {
        let python = python.clone();
        tokio::spawn(async move { run(&python, address, "slow", 1, 3000, 1).await })
    };
    assert_eventually!(
        metric(&proxy, "causeway_proxy_upstream_requests_in_flight", &[]) == 1.0,
        "the slow call never reached the server"
    );
    // ...so every other call is refused at once, in Apache Thrift's own exception.
    let started = Instant::now();
    let refused = run(&python, address, "add", 3, 1, 1).await;
    let took = started.elapsed();
    assert!(refused.replies.is_empty(), "{refused:?}");
    assert_eq!(refused.exceptions.len(), 3, "{refused:?}");
    for exception in &refused.exceptions {
        assert_eq!(exception.r#type, 6, "INTERNAL_ERROR: {refused:?}");
        assert!(exception.message.contains("request limit"), "{refused:?}");
    }
    // The refusals did not wait for the slow call (3 s) to finish.
    assert!(took < Duration::from_millis(2500), "refusals took {took:?}");
    let overflow = metric(
        &proxy,
        "causeway_proxy_upstream_overflow_total",
        &["cluster=\"outbound|9090||calculator\""],
    );
    assert_eq!(overflow, 3.0);
    let uo = metric(
        &proxy,
        "istio_requests_total",
        &["response_flags=\"UO\"", "response_code=\"1\""],
    );
    assert_eq!(uo, 3.0);
    let slow = slow.await.unwrap();
    assert_eq!(slow.replies.get("slow").copied(), Some(1), "{slow:?}");
    println!("thrift breaker: 3 overflows answered in {took:?} while a 3 s call held the slot");
}

#[tokio::test(flavor = "multi_thread")]
async fn thrift_faults_and_retries_on_exceptions_from_the_route() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let (good_port, broken_port) = (free_port().unwrap(), free_port().unwrap());
    let (_good, _broken) = tokio::join!(
        server(&python, good_port, "good"),
        server(&python, broken_port, "broken"),
    );
    let config = format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: thrift, address: 127.0.0.1:0}}]
workload: calculator-client
services:
- host: calculator
  port: 9090
  protocol: thrift
  thrift: {{service: Calculator, methods: [add, multiply, slow]}}
  endpoints:
  - {{address: 127.0.0.1, port: {good_port}, labels: {{version: good}}}}
  - {{address: 127.0.0.1, port: {broken_port}, labels: {{version: broken}}}}
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: calculator}}
  spec:
    host: calculator
    subsets:
    - {{name: good, labels: {{version: good}}}}
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {{name: calculator}}
  spec:
    hosts: [calculator]
    routes:
    - name: multiply-half-aborted
      match: {{attributes: {{method: {{exact: multiply}}}}}}
      route: [{{destination: {{host: calculator, subset: good}}}}]
      fault: {{abort: {{percentage: {{value: 50}}, thriftException: UNKNOWN_METHOD}}}}
    - name: slow-delayed
      match: {{attributes: {{method: {{exact: slow}}}}}}
      route: [{{destination: {{host: calculator, subset: good}}}}]
      fault: {{delay: {{percentage: {{value: 100}}, fixedDelay: 150ms}}}}
    - name: add-retried-on-exceptions
      route: [{{destination: {{host: calculator}}}}]
      retries: {{attempts: 2, retryOn: exception}}
"#
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let address = proxy.addr(ListenProtocol::Thrift).unwrap();
    let service = "destination_service=\"calculator\"";

    // Abort: about half the calls get the configured TApplicationException, decoded by Apache
    // Thrift's own client; none of them reached the server.
    let aborted = run(&python, address, "multiply", 200, 3, 4).await;
    let exceptions = aborted.exceptions.len();
    assert!(
        exceptions.abs_diff(100) <= 40,
        "{exceptions} of 200 aborted at 50%"
    );
    assert!(
        aborted.exceptions.iter().all(|e| e.r#type == 1),
        "{aborted:?}"
    );
    assert_eq!(aborted.replies.get("good").copied(), Some(200 - exceptions));
    assert_eq!(
        metric(&proxy, "causeway_proxy_faults_aborted_total", &[service]) as usize,
        exceptions
    );
    assert_eq!(
        metric(&proxy, "istio_requests_total", &["response_flags=\"FI\""]) as usize,
        exceptions
    );
    assert_eq!(served(&python, good_port).await, 200 - exceptions);

    // Delay: every call waits 150 ms first.
    let started = Instant::now();
    let delayed = run(&python, address, "slow", 4, 0, 1).await;
    let took = started.elapsed();
    assert_eq!(delayed.replies.get("good").copied(), Some(4), "{delayed:?}");
    assert!(
        took >= Duration::from_millis(600),
        "4 delayed calls in {took:?}"
    );
    assert_eq!(
        metric(&proxy, "causeway_proxy_faults_delayed_total", &[service]),
        4.0
    );

    // Retries: calls that hit the broken server are answered by the good one. Two callers at
    // a time stay within the retry budget's floor (3 retries in flight), so none is refused.
    let retried = run(&python, address, "add", 100, 1, 2).await;
    assert!(retried.exceptions.is_empty(), "{retried:?}");
    assert_eq!(retried.replies.get("good").copied(), Some(100));
    let broken = served(&python, broken_port).await;
    let retries = metric(
        &proxy,
        "causeway_proxy_retries_total",
        &[service, "reason=\"retriable_status\""],
    ) as usize;
    assert!(broken >= 1, "the broken server was never tried");
    assert_eq!(
        retries, broken,
        "one retry per call the broken server failed"
    );
    println!(
        "thrift faults: {exceptions}/200 aborted at 50%, 4 calls delayed 150 ms in {took:?}; \
         {retries} retries after the broken server's exceptions, 100/100 answered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn thrift_per_try_timeout_retries_two_way_calls_and_never_one_way_ones() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let (good_port, stuck_port) = (free_port().unwrap(), free_port().unwrap());
    let (_good, _stuck) = tokio::join!(
        server(&python, good_port, "good"),
        server(&python, stuck_port, "stuck"),
    );
    let config = format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: thrift, address: 127.0.0.1:0}}]
workload: calculator-client
services:
- host: calculator
  port: 9090
  protocol: thrift
  thrift: {{service: Calculator, methods: [add]}}
  endpoints:
  - {{address: 127.0.0.1, port: {good_port}}}
  - {{address: 127.0.0.1, port: {stuck_port}}}
rules: |
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {{name: calculator}}
  spec:
    hosts: [calculator]
    routes:
    - route: [{{destination: {{host: calculator}}}}]
      timeout: 4s
      retries: {{attempts: 1, perTryTimeout: 300ms, retryOn: timeout}}
"#
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let address = proxy.addr(ListenProtocol::Thrift).unwrap();
    let timeouts = |proxy: &RunningProxy| {
        metric(
            proxy,
            "causeway_proxy_retries_total",
            &["reason=\"timeout\"", "request_protocol=\"thrift\""],
        ) as usize
    };

    let started = Instant::now();
    let outcome = run(&python, address, "add", 10, 1, 2).await;
    let took = started.elapsed();
    assert!(outcome.exceptions.is_empty(), "{outcome:?}");
    assert_eq!(outcome.replies.get("good").copied(), Some(10));
    let stuck = served(&python, stuck_port).await;
    assert!(stuck >= 1, "the stuck server was never tried");
    assert_eq!(
        timeouts(&proxy),
        stuck,
        "one retry per call the stuck server held"
    );
    // A stuck try costs its 300 ms, not the server's 5 s.
    assert!(took < Duration::from_secs(5), "10 calls took {took:?}");

    // One-way calls: sent once each, whichever server they reach, never retried.
    let before = served(&python, good_port).await + served(&python, stuck_port).await;
    let retries_before = timeouts(&proxy);
    let mut command = tokio::process::Command::from(python.command(&script()));
    command.args([
        "oneway",
        &address.ip().to_string(),
        &address.port().to_string(),
        "20",
    ]);
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eventually!(
        served(&python, good_port).await + served(&python, stuck_port).await == before + 20,
        "the servers did not receive the 20 one-way calls exactly once"
    );
    assert_eq!(
        timeouts(&proxy),
        retries_before,
        "a one-way call was retried"
    );
    println!("thrift per-try timeout: {stuck} stuck tries retried; 10 calls in {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn thrift_breaker_connection_limit_refuses_a_second_connection() {
    logs::init();
    let python = PythonEnv::shared().unwrap();
    let port = free_port().unwrap();
    let _server = server(&python, port, "slow").await;
    let config = format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: thrift, address: 127.0.0.1:0}}]
workload: calculator-client
services:
- host: calculator
  port: 9090
  protocol: thrift
  thrift: {{service: Calculator, methods: [add, slow]}}
  endpoints:
  - {{address: 127.0.0.1, port: {port}}}
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: calculator}}
  spec:
    host: calculator
    trafficPolicy:
      connectionPool:
        tcp: {{maxConnections: 1}}
"#
    );
    let (proxy, _dir) = start_proxy(&config).await;
    let address = proxy.addr(ListenProtocol::Thrift).unwrap();
    // One call at a time per Thrift connection: a slow call holds the only connection...
    let slow = {
        let python = python.clone();
        tokio::spawn(async move { run(&python, address, "slow", 1, 2000, 1).await })
    };
    assert_eventually!(
        metric(&proxy, "causeway_proxy_upstream_requests_in_flight", &[]) == 1.0,
        "the slow call never reached the server"
    );
    // ...so a concurrent call, which needs a second one, is refused at once.
    let refused = run(&python, address, "add", 1, 1, 1).await;
    assert_eq!(refused.exceptions.len(), 1, "{refused:?}");
    assert!(
        refused.exceptions[0].message.contains("connection limit"),
        "{refused:?}"
    );
    // Once the slow call is done, its connection is reused: calls go through again.
    let slow = slow.await.unwrap();
    assert_eq!(slow.replies.get("slow").copied(), Some(1), "{slow:?}");
    let after = run(&python, address, "add", 3, 1, 1).await;
    assert_eq!(after.replies.get("slow").copied(), Some(3), "{after:?}");
    assert_eq!(
        metric(&proxy, "causeway_proxy_upstream_overflow_total", &[]),
        1.0
    );
}
