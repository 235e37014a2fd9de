//! The real Apache Dubbo Java sample (`demo/java/dubbo-sample`, Dubbo 3.3 with Hessian2) against
//! real registries: the bridge sees the Java provider in ZooKeeper with the labels and locality
//! operators already set, and drops it once its ephemeral node goes; registered application-level
//! only (`register-mode=instance`, metadata kept locally) it is resolved through its own
//! MetadataService; the provider registers in
//! Nacos under Dubbo's own service name; and the Java consumer calls the provider directly (through
//! a recording relay, as a proxy will sit later) and through the registry.
//!
//! The Java programs print `READY <port>` once exported and registered (provider) and one JSON
//! line per call (consumer); see demo/java/README.md.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use causeway_bridge::app::{self, RunningBridge};
use causeway_bridge::config::BridgeConfig;
use causeway_bridge::model::provider::Protocol;
use causeway_bridge::model::snapshot::Service;
use causeway_tests::java::JavaProgram;
use causeway_tests::nacos::{DEFAULT_GROUP, NacosServer};
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use causeway_tests::zookeeper::ZooKeeperServer;
use causeway_tests::{assert_eventually, logs};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::mesh::bridge_config;

const INTERFACE: &str = "io.causeway.demo.api.GreetingService";
const SERVICE_VERSION: &str = "1.0.0";
/// dubbo2istio's host for the interface at that version.
pub(crate) const HOST: &str = "io.causeway.demo.api.greetingservice-1-0-0";
/// Dubbo's Nacos service name: `providers:{interface}:{version}:{group}`, empty group kept.
const NACOS_SERVICE: &str = "providers:io.causeway.demo.api.GreetingService:1.0.0:";
/// Registered as `aeraki_meta_app_version`, which becomes the endpoint's `version` label.
const APP_VERSION: &str = "v1";
pub(crate) const REGION: &str = "eu-central-1";
const ZONE: &str = "eu-central-1a";
/// A Dubbo JVM takes 4–6 s alone on this 2-core machine and far longer next to compilers and
/// other tests' JVMs.
pub(crate) const JAVA_TIMEOUT: Duration = Duration::from_secs(120);
/// Dubbo's `methods` parameter for the interface.
const METHODS: [&str; 3] = ["greet", "place", "slow"];

/// Builds the sample (once per test process) off the async workers: Maven blocks for seconds.
pub(crate) async fn sample() -> anyhow::Result<JavaProgram> {
    let project = workspace_root().join("demo/java/dubbo-sample");
    tokio::task::spawn_blocking(move || JavaProgram::build(&project))
        .await
        .context("the Maven build task panicked")?
}

/// A running `io.causeway.demo.Provider`, killed (SIGKILL, as a crash) when dropped.
pub(crate) struct JavaProvider {
    process: PeerProcess,
    pub(crate) port: u16,
}

impl JavaProvider {
    /// Starts the provider against `registry` on a free port and waits for its `READY` line,
    /// which it prints only after the service is exported and registered.
    async fn start(program: &JavaProgram, registry: &str) -> anyhow::Result<Self> {
        Self::start_with(program, registry, &[]).await
    }

    /// [`JavaProvider::start`] with extra provider settings, e.g. `--register-mode instance`.
    async fn start_with(
        program: &JavaProgram,
        registry: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_as(program, registry, APP_VERSION, ZONE, extra).await
    }

    /// A provider registering as `app_version` (the mesh's `version` label) in `zone` of
    /// [`REGION`].
    pub(crate) async fn start_as(
        program: &JavaProgram,
        registry: &str,
        app_version: &str,
        zone: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = PeerProcess::temp_dir("dubbo-provider")?;
        let mut command = program.command("io.causeway.demo.Provider");
        command
            .args(["--registry", registry])
            .args(["--port", &port.to_string()])
            .args(["--version", SERVICE_VERSION])
            .args(["--app-version", app_version])
            .args(["--region", REGION, "--zone", zone])
            // Dubbo's and Nacos' caches and logs go to the guard's directory, not a shared ~.
            .arg("--home")
            .arg(dir.path())
            .args(extra);
        let mut process = PeerProcess::spawn("dubbo-provider", command, dir)?;
        let log = process.dir().join("dubbo-provider.log");
        let took = process
            .wait_ready(JAVA_TIMEOUT, || ready_line(log.clone(), port))
            .await?;
        tracing::info!(
            port,
            startup_ms = took.as_millis() as u64,
            "Java Dubbo provider ready"
        );
        Ok(Self { process, port })
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

/// Succeeds once the provider's log holds `READY <port>`.
pub(crate) async fn ready_line(log: PathBuf, port: u16) -> anyhow::Result<()> {
    let text = tokio::fs::read_to_string(&log)
        .await
        .with_context(|| format!("read {}", log.display()))?;
    let expected = format!("READY {port}");
    anyhow::ensure!(
        text.lines().any(|line| line.trim() == expected),
        "no `{expected}` line yet"
    );
    Ok(())
}

/// Starts the bridge in-process on `registry` with quick debouncing and a short drop-to-zero
/// grace, so a killed provider's disappearance shows within the test's patience.
async fn start_bridge(registry: String) -> anyhow::Result<RunningBridge> {
    app::start(BridgeConfig {
        drop_to_zero_grace_ms: 500,
        ..bridge_config(vec![registry], None)
    })
    .await
}

fn published(bridge: &RunningBridge) -> Option<Arc<Service>> {
    bridge.snapshots.borrow().services.get(HOST).cloned()
}

/// Checks that the bridge publishes the Java provider on `port` exactly as the registry entry
/// says; the error names the first mismatch, for the failure message.
fn provider_published(bridge: &RunningBridge, port: u16) -> Result<(), String> {
    let service = published(bridge).ok_or_else(|| format!("no service {HOST} yet"))?;
    let dubbo = service.dubbo.as_ref().ok_or("no Dubbo identity")?;
    if dubbo.interface != INTERFACE || dubbo.version.as_deref() != Some(SERVICE_VERSION) {
        return Err(format!("wrong Dubbo identity {dubbo:?}"));
    }
    let endpoint = service
        .endpoints
        .iter()
        .find(|e| e.port == port)
        .ok_or_else(|| format!("no endpoint on port {port}: {:?}", service.endpoints))?;
    if endpoint.address != "127.0.0.1" || !endpoint.healthy {
        return Err(format!("unexpected endpoint {endpoint:?}"));
    }
    let protocol = service
        .ports
        .iter()
        .find(|p| p.name == endpoint.port_name)
        .map(|p| p.protocol);
    if protocol != Some(Protocol::Dubbo) {
        return Err(format!(
            "endpoint port speaks {protocol:?}: {:?}",
            service.ports
        ));
    }
    if endpoint.labels.get("version").map(String::as_str) != Some(APP_VERSION) {
        return Err(format!("version label missing: {:?}", endpoint.labels));
    }
    let locality = format!("{REGION}/{ZONE}");
    if endpoint.locality.as_deref() != Some(locality.as_str()) {
        return Err(format!(
            "locality {:?}, expected {locality}",
            endpoint.locality
        ));
    }
    if !METHODS.iter().all(|m| service.methods.contains(*m)) {
        return Err(format!("methods {:?}", service.methods));
    }
    Ok(())
}

fn endpoint_listed(bridge: &RunningBridge, port: u16) -> bool {
    published(bridge).is_some_and(|s| s.endpoints.iter().any(|e| e.port == port))
}

/// The shared check of the two bridge tests: the provider appears, then a crash removes it.
async fn bridge_follows_provider(program: &JavaProgram, registry: String) -> anyhow::Result<()> {
    let bridge = start_bridge(registry.clone()).await?;
    let provider = JavaProvider::start(program, &registry).await?;
    let port = provider.port;
    let started = tokio::time::Instant::now();
    assert_eventually!(
        provider_published(&bridge, port).is_ok(),
        "the bridge never published the Java provider: {:?}",
        provider_published(&bridge, port)
    );
    tracing::info!(
        after_ready_ms = started.elapsed().as_millis() as u64,
        "the bridge published the Java provider"
    );

    // SIGKILL: the provider cannot deregister; only its registry session ending removes it.
    drop(provider);
    let killed = tokio::time::Instant::now();
    assert_eventually!(
        !endpoint_listed(&bridge, port),
        "the killed provider's endpoint is still published: {:?}",
        published(&bridge)
    );
    tracing::info!(
        after_kill_ms = killed.elapsed().as_millis() as u64,
        "the bridge dropped the killed Java provider"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_bridge_publishes_the_java_provider_and_drops_it_when_killed() {
    logs::init();
    let (zookeeper, program) = tokio::join!(ZooKeeperServer::start(), sample());
    let (zookeeper, program) = (zookeeper.unwrap(), program.unwrap());
    // The test ZooKeeper's short tick caps sessions at 5 s, so the killed provider's ephemeral
    // node goes well within the patience (Dubbo asks for 60 s).
    bridge_follows_provider(
        &program,
        format!("zookeeper://{}", zookeeper.connect_string()),
    )
    .await
    .unwrap();
}

/// With `register-mode=instance` the provider writes only `/services/<app>/<ip:port>` with
/// `dubbo.metadata.storage-type=local`: no interface-level node and no metadata document in
/// ZooKeeper, so the interface, version, methods and the service parameters behind the labels
/// and locality can only come from calling the provider's MetadataService.
#[tokio::test(flavor = "multi_thread")]
async fn zookeeper_bridge_resolves_an_instance_only_provider_through_its_metadata_service() {
    logs::init();
    let (zookeeper, program) = tokio::join!(ZooKeeperServer::start(), sample());
    let (zookeeper, program) = (zookeeper.unwrap(), program.unwrap());
    let registry = format!("zookeeper://{}", zookeeper.connect_string());
    let bridge = start_bridge(registry.clone()).await.unwrap();
    let provider = JavaProvider::start_with(&program, &registry, &["--register-mode", "instance"])
        .await
        .unwrap();
    let port = provider.port;
    assert_eventually!(
        provider_published(&bridge, port).is_ok(),
        "the bridge never published the instance-only Java provider: {:?}",
        provider_published(&bridge, port)
    );
    let service = published(&bridge).unwrap();
    tracing::info!(methods = ?service.methods, endpoints = ?service.endpoints, "published from the MetadataService");

    drop(provider);
    assert_eventually!(
        !endpoint_listed(&bridge, port),
        "the killed provider's endpoint is still published: {:?}",
        published(&bridge)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nacos_bridge_publishes_the_java_provider_and_drops_it_when_killed() {
    logs::init();
    let (nacos, program) = tokio::join!(NacosServer::start(), sample());
    let (nacos, program) = (nacos.unwrap(), program.unwrap());
    bridge_follows_provider(&program, format!("nacos://{}", nacos.server_addr()))
        .await
        .unwrap();
}

/// The Nacos instances of the provider's service, or none while Nacos cannot answer.
async fn nacos_instances(nacos: &NacosServer) -> Vec<Value> {
    match nacos.list_instances(NACOS_SERVICE, DEFAULT_GROUP).await {
        Ok(hosts) => hosts,
        Err(error) => {
            tracing::warn!(%error, "list Nacos instances");
            Vec::new()
        }
    }
}

fn instance_on(hosts: &[Value], port: u16) -> Option<&Value> {
    hosts
        .iter()
        .find(|h| h["port"].as_u64() == Some(u64::from(port)))
}

#[tokio::test(flavor = "multi_thread")]
async fn java_provider_registers_in_nacos_under_dubbos_service_name() {
    logs::init();
    let (nacos, program) = tokio::join!(NacosServer::start(), sample());
    let (nacos, program) = (nacos.unwrap(), program.unwrap());
    let provider = JavaProvider::start(&program, &format!("nacos://{}", nacos.server_addr()))
        .await
        .unwrap();
    let port = provider.port;
    assert_eventually!(
        instance_on(&nacos_instances(&nacos).await, port).is_some(),
        "the provider never appeared in Nacos as {NACOS_SERVICE}"
    );
    let hosts = nacos_instances(&nacos).await;
    let host = instance_on(&hosts, port).unwrap();
    assert_eq!(host["ip"], "127.0.0.1");
    assert_eq!(
        host["ephemeral"], true,
        "Dubbo registers ephemeral instances"
    );
    assert_eq!(host["healthy"], true);
    let metadata = &host["metadata"];
    for (key, value) in [
        ("protocol", "dubbo"),
        ("path", INTERFACE),
        ("interface", INTERFACE),
        ("version", SERVICE_VERSION),
        ("side", "provider"),
        ("category", "providers"),
        ("methods", "greet,place,slow"),
        ("aeraki_meta_app_version", APP_VERSION),
        ("region", REGION),
        ("zone", ZONE),
        ("serialization", "hessian2"),
        ("prefer.serialization", "hessian2"),
    ] {
        assert_eq!(metadata[key], value, "metadata {key} in {metadata}");
    }

    // Dubbo's instance lives as long as its gRPC connection: a crash removes it.
    drop(provider);
    assert_eventually!(
        instance_on(&nacos_instances(&nacos).await, port).is_none(),
        "the killed provider is still registered in Nacos"
    );
}

/// What a consumer run printed and how it ended.
pub(crate) struct ConsumerRun {
    pub(crate) success: bool,
    pub(crate) lines: Vec<Value>,
    pub(crate) stderr: String,
}

/// Runs `io.causeway.demo.Consumer` with `args` to completion (killed if it outlives the
/// timeout) and parses its JSON lines.
pub(crate) async fn run_consumer(
    program: &JavaProgram,
    args: &[&str],
) -> anyhow::Result<ConsumerRun> {
    let home = PeerProcess::temp_dir("dubbo-consumer")?;
    let mut command: Command = program.command("io.causeway.demo.Consumer");
    command.args(args).arg("--home").arg(home.path());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(JAVA_TIMEOUT, command.output())
        .await
        .context("the consumer did not finish in time")?
        .context("run the consumer")?;
    tracing::info!(
        ?args,
        run_ms = started.elapsed().as_millis() as u64,
        "Java Dubbo consumer finished"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).with_context(|| format!("parse {line:?}")))
        .collect::<anyhow::Result<Vec<Value>>>()?;
    Ok(ConsumerRun {
        success: output.status.success(),
        lines,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The first bytes each direction of a relayed connection carried.
#[derive(Debug, Default)]
struct Recorded {
    to_provider: Vec<u8>,
    to_consumer: Vec<u8>,
}

/// Bytes kept per direction: enough for the 16-byte Dubbo header of the first frame.
const RECORD_BYTES: usize = 16;

/// A TCP relay on a free loopback port to `upstream` that records the start of the first
/// connection in both directions, standing where the mesh proxy will later stand.
async fn start_relay(upstream: SocketAddr) -> anyhow::Result<(SocketAddr, Arc<Mutex<Recorded>>)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let record = recorded.clone();
    tokio::spawn(async move {
        while let Ok((consumer, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(provider) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (from_consumer, to_consumer) = consumer.into_split();
                let (from_provider, to_provider) = provider.into_split();
                tokio::join!(
                    pump(from_consumer, to_provider, record.clone(), true),
                    pump(from_provider, to_consumer, record, false)
                );
            });
        }
    });
    Ok((addr, recorded))
}

/// Copies one direction until EOF, keeping its first bytes in `record`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: Arc<Mutex<Recorded>>,
    to_provider: bool,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Ok(mut recorded) = record.lock() {
            let kept = if to_provider {
                &mut recorded.to_provider
            } else {
                &mut recorded.to_consumer
            };
            let room = RECORD_BYTES.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&buffer[..room]);
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn greeting(port: u16) -> Value {
    json!(format!(
        "Hello, causeway (from {APP_VERSION} in {ZONE} on port {port})"
    ))
}

/// Asserts a consumer run made `calls` successful calls of each of `methods`, in order.
fn assert_all_succeeded(run: &ConsumerRun, methods: &[&str], calls: usize, port: u16) {
    assert!(run.success, "the consumer failed:\n{}", run.stderr);
    assert_eq!(run.lines.len(), methods.len() * calls, "{:?}", run.lines);
    for (i, line) in run.lines.iter().enumerate() {
        let (call, method) = (i / methods.len() + 1, methods[i % methods.len()]);
        assert_eq!(line["call"], call, "{line}");
        assert_eq!(line["method"], method, "{line}");
        assert_eq!(line["ok"], true, "{line}");
        let expected = match method {
            "place" => {
                json!({"id": format!("order-{call}-accepted"), "quantity": 2, "priceCents": 500})
            }
            _ => greeting(port),
        };
        assert_eq!(line["result"], expected, "{line}");
    }
}

fn dubbo_header_check(bytes: &[u8], request: bool) -> Result<(), String> {
    let [0xda, 0xbb, flags, status, ..] = *bytes else {
        return Err(format!("not a Dubbo frame: {bytes:02x?}"));
    };
    if (flags & 0x80 != 0) != request {
        return Err(format!("request flag wrong in {bytes:02x?}"));
    }
    // Serialization id 2 is Hessian2 (PROTOCOLS.md §1.2); fastjson2 would be 23.
    if flags & 0x1f != 2 {
        return Err(format!("serialization id {} is not Hessian2", flags & 0x1f));
    }
    // Responses carry status 20 (OK) even when the method threw: the exception is in the body.
    if !request && status != 20 {
        return Err(format!("response status {status}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn java_consumer_calls_the_provider_directly_and_through_zookeeper() {
    logs::init();
    let (zookeeper, program) = tokio::join!(ZooKeeperServer::start(), sample());
    let (zookeeper, program) = (zookeeper.unwrap(), program.unwrap());
    let registry = format!("zookeeper://{}", zookeeper.connect_string());
    let provider = JavaProvider::start(&program, &registry).await.unwrap();
    let port = provider.port;

    // Directly, through a relay: strings and a POJO, Hessian2 both ways.
    let (relay, recorded) = start_relay(provider.addr()).await.unwrap();
    let url = format!("dubbo://{relay}");
    let run = run_consumer(
        &program,
        &["--url", &url, "--method", "greet,place", "--calls", "3"],
    )
    .await
    .unwrap();
    assert_all_succeeded(&run, &["greet", "place"], 3, port);
    {
        let recorded = recorded.lock().unwrap();
        dubbo_header_check(&recorded.to_provider, true).unwrap();
        dubbo_header_check(&recorded.to_consumer, false).unwrap();
    }

    // Through the registry: the consumer finds the provider's 127.0.0.1 address in ZooKeeper.
    let run = run_consumer(
        &program,
        &["--registry", &registry, "--method", "greet", "--calls", "2"],
    )
    .await
    .unwrap();
    assert_all_succeeded(&run, &["greet"], 2, port);

    // A provider-side exception comes back as an error line and a failing exit status.
    let run = run_consumer(
        &program,
        &["--url", &url, "--method", "place", "--quantity", "0"],
    )
    .await
    .unwrap();
    assert!(!run.success, "a failed call must fail the consumer");
    assert_eq!(run.lines.len(), 1, "{:?}", run.lines);
    assert_eq!(run.lines[0]["ok"], false);
    assert_eq!(run.lines[0]["error"], "java.lang.IllegalArgumentException");
    assert_eq!(
        run.lines[0]["message"],
        "quantity must be at least 1, got 0"
    );

    // The provider served every call; it must not have died along the way.
    let mut provider = provider;
    provider.process.ensure_running().unwrap();
}
