//! The real Apache Dubbo Java sample through causeway-proxy: a Java consumer calls the proxy's
//! Dubbo listener directly (`--url dubbo://…`, no registry), and the proxy, in local-config mode,
//! routes to two real Java providers (v1 and v2, not registered anywhere): `slow` only to v2 (a
//! MetaRouter method route) and `greet` 80/20 over v1/v2. The providers name themselves in every
//! answer (`from v2 in <zone> on port …`), so the consumer's output shows where each call went.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use causeway_proxy::app;
use causeway_proxy::config::ProxyConfig;
use causeway_tests::java::JavaProgram;
use causeway_tests::logs;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;

use crate::bridge_dubbo_java::{ConsumerRun, JAVA_TIMEOUT, ready_line, run_consumer, sample};

const INTERFACE: &str = "io.causeway.demo.api.GreetingService";
const HOST: &str = "io.causeway.demo.api.greetingservice-1-0-0";
/// Calls per method: enough for the 80/20 split to land within ±5% (4 standard deviations).
const CALLS: usize = 1000;

/// A Java provider that is not registered: it is reached only through the proxy.
pub(crate) async fn provider(program: &JavaProgram, app_version: &str) -> (PeerProcess, u16) {
    let port = free_port().unwrap();
    let dir = PeerProcess::temp_dir("dubbo-provider").unwrap();
    let mut command = program.command("io.causeway.demo.Provider");
    command
        .args(["--port", &port.to_string()])
        .args(["--version", "1.0.0", "--app-version", app_version])
        .arg("--home")
        .arg(dir.path());
    let mut process = PeerProcess::spawn("dubbo-provider", command, dir).unwrap();
    let log = process.dir().join("dubbo-provider.log");
    process
        .wait_ready(JAVA_TIMEOUT, || ready_line(log.clone(), port))
        .await
        .unwrap();
    (process, port)
}

fn config(v1: u16, v2: u16) -> String {
    format!(
        r#"admin_listen: 127.0.0.1:0
listen: [{{protocol: dubbo, address: 127.0.0.1:0}}]
workload: causeway-demo-consumer
services:
- host: {HOST}
  port: 20880
  dubbo: {{interface: {INTERFACE}, version: 1.0.0, methods: [greet, place, slow]}}
  endpoints:
  - {{address: 127.0.0.1, port: {v1}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, port: {v2}, labels: {{version: v2}}}}
rules: |
  apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {{name: greeter}}
  spec:
    host: {HOST}
    subsets:
    - {{name: v1, labels: {{version: v1}}}}
    - {{name: v2, labels: {{version: v2}}}}
  ---
  apiVersion: metaprotocol.aeraki.io/v1alpha1
  kind: MetaRouter
  metadata: {{name: greeter}}
  spec:
    hosts: [{HOST}]
    routes:
    - name: slow-to-v2
      match: {{attributes: {{method: {{exact: slow}}}}}}
      route: [{{destination: {{host: {HOST}, subset: v2}}}}]
    - name: canary
      route:
      - {{destination: {{host: {HOST}, subset: v1}}, weight: 80}}
      - {{destination: {{host: {HOST}, subset: v2}}, weight: 20}}
"#
    )
}

/// Per method, which provider version answered (`Hello, causeway (from v2 in <zone> on port 1234)`); every
/// call must have succeeded.
pub(crate) fn answers_by_method_and_version(run: &ConsumerRun) -> HashMap<(String, String), usize> {
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    for line in &run.lines {
        assert_eq!(line["ok"], true, "{line}");
        let method = line["method"].as_str().unwrap().to_owned();
        let result = line["result"].as_str().unwrap();
        let version = result
            .split("(from ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap()
            .to_owned();
        *counts.entry((method, version)).or_default() += 1;
    }
    counts
}

/// Two Java providers (v1, v2) behind a proxy in local mode with the rules above.
struct Setup {
    program: JavaProgram,
    proxy: app::RunningProxy,
    addr: SocketAddr,
    _providers: [PeerProcess; 2],
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let program = sample().await.unwrap();
    let ((v1, v1_port), (v2, v2_port)) =
        tokio::join!(provider(&program, "v1"), provider(&program, "v2"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, config(v1_port, v2_port)).unwrap();
    let proxy = app::start(ProxyConfig::load(&path).unwrap(), Some(path))
        .await
        .unwrap();
    let addr: SocketAddr = proxy.dubbo_addr().unwrap();
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    Setup {
        program,
        proxy,
        addr,
        _providers: [v1, v2],
        _dir: dir,
    }
}

/// The proxy's `istio_requests_total` summed over the series whose labels contain `parts`.
fn requests(proxy: &app::RunningProxy, parts: &[&str]) -> usize {
    let text = proxy.metrics.encode().unwrap();
    text.lines()
        .filter(|l| l.starts_with("istio_requests_total") && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

#[tokio::test(flavor = "multi_thread")]
async fn java_consumer_through_the_proxy_to_java_providers_v1_v2() {
    logs::init();
    // Bound whole: destructuring with `..` would drop (kill) the providers right away.
    let setup = setup().await;
    let (program, proxy, addr) = (&setup.program, &setup.proxy, setup.addr);

    let url = format!("dubbo://127.0.0.1:{}", addr.port());
    let calls = CALLS.to_string();
    let run = run_consumer(
        program,
        &[
            "--url",
            &url,
            "--method",
            "greet,slow",
            "--millis",
            "0",
            "--calls",
            &calls,
        ],
    )
    .await
    .unwrap();
    assert!(run.success, "the consumer failed:\n{}", run.stderr);

    let counts = answers_by_method_and_version(&run);
    let count = |m: &str, v: &str| {
        counts
            .get(&(m.to_owned(), v.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    println!("per method and version: {counts:?}");
    assert_eq!(
        count("slow", "v2"),
        CALLS,
        "every slow call goes to v2: {counts:?}"
    );
    assert_eq!(count("slow", "v1"), 0);
    let v1_share = count("greet", "v1") as f64 / CALLS as f64;
    assert_eq!(count("greet", "v1") + count("greet", "v2"), CALLS);
    assert!(
        (v1_share - 0.8).abs() <= 0.05,
        "greet v1 share {v1_share}: {counts:?}"
    );

    // The proxy's metrics agree with what the consumer saw.
    assert_eq!(
        requests(
            proxy,
            &[
                "request_method=\"greet\"",
                "destination_version=\"v1\"",
                "response_code=\"20\""
            ]
        ),
        count("greet", "v1"),
        "{}",
        proxy.metrics.encode().unwrap()
    );
    assert_eq!(
        requests(
            proxy,
            &["request_method=\"slow\"", "destination_version=\"v2\""]
        ),
        CALLS
    );
}

/// What `tests/python/dubbo/dubbo_client.py` prints.
#[derive(Debug, serde::Deserialize)]
struct PythonRun {
    counts: HashMap<String, usize>,
    failed: usize,
    first_error: Option<String>,
}

/// A second client written by others: dubbo-python (the Python 3 port of Apache
/// dubbo-python2, with its own Hessian 2 encoder) through the proxy to the same Java providers.
#[tokio::test(flavor = "multi_thread")]
async fn python_dubbo_client_through_the_proxy_to_java_providers_v1_v2() {
    logs::init();
    let root = causeway_tests::paths::workspace_root().join("tests/python/dubbo");
    let python =
        causeway_tests::python::PythonEnv::from_requirements(&root.join("requirements.txt"))
            .unwrap();
    let setup = setup().await;
    let (proxy, addr) = (&setup.proxy, setup.addr);
    let output = tokio::process::Command::from(python.command(&root.join("dubbo_client.py")))
        .arg(addr.to_string())
        .arg(CALLS.to_string())
        .arg("greet,slow")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: PythonRun = serde_json::from_str(stdout.trim()).unwrap();
    println!("dubbo-python through the proxy: {run:?}");
    assert_eq!(run.failed, 0, "first failure: {:?}", run.first_error);
    let count = |key: &str| run.counts.get(key).copied().unwrap_or(0);
    assert_eq!(
        count("slow v2"),
        CALLS,
        "every slow call goes to v2: {run:?}"
    );
    assert_eq!(count("greet v1") + count("greet v2"), CALLS, "{run:?}");
    let v1_share = count("greet v1") as f64 / CALLS as f64;
    assert!((v1_share - 0.8).abs() <= 0.05, "greet v1 share {v1_share}");
    assert_eq!(
        requests(proxy, &["request_method=\"greet\"", "response_code=\"20\""]),
        CALLS
    );
    assert_eq!(
        requests(
            proxy,
            &["request_method=\"slow\"", "destination_version=\"v2\""]
        ),
        CALLS
    );
}
