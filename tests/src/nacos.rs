//! A real Nacos 2.x server (the Alibaba Java server, standalone, embedded Derby storage) as a peer.
//!
//! This module owns starting, stopping and restarting that server, its ports and its data
//! directory, plus a few open-API helpers tests use to seed and read the registry. The Maven
//! project in `tests/peers/nacos` resolves the server jars (see its README for why they come from
//! a republished build); the JVM runs `com.alibaba.nacos.Nacos` straight from that classpath.
//!
//! Nacos derives further ports from its HTTP port `p`: gRPC for clients on `p + 1000`, gRPC between
//! cluster members on `p + 1001` and JRaft on `p - 1000` (JRaft listens even in standalone mode).
//! All four come from one [`free_port_block`], so two servers never clash. Everything the server
//! writes (Derby, JRaft, its logs, Tomcat's work folder, extracted native libraries) goes below
//! one temporary `nacos.home` that outlives restarts and is removed when the guard is dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;

use crate::java::JavaProgram;
use crate::paths::workspace_root;
use crate::ports::free_port_block;
use crate::process::PeerProcess;

/// Offset of the client gRPC port from the HTTP port (fixed by Nacos clients).
const GRPC_OFFSET: i32 = 1000;
/// Offset of the member-to-member gRPC port (opened in standalone mode too).
const CLUSTER_GRPC_OFFSET: i32 = 1001;
/// Offset of the JRaft port, which backs persistent instances even in standalone mode.
const RAFT_OFFSET: i32 = -1000;
/// The server needs 5–17 s on this 2-core machine, more when several start next to a compiler,
/// so readiness waits generously.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a graceful stop may take before the process is killed (Nacos needs 3–4 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The Nacos group used when a test names none.
pub const DEFAULT_GROUP: &str = "DEFAULT_GROUP";

/// A running standalone Nacos server; killed and its data removed on drop.
///
/// `stop` (a crash) and `shutdown` (graceful) end the process but keep the ports and the data
/// directory, so `restart` brings the same server back: persistent instances survive, ephemeral
/// ones do not.
pub struct NacosServer {
    // Declared before `home` so that dropping the guard kills the JVM before its data is removed.
    process: Option<PeerProcess>,
    home: TempDir,
    program: JavaProgram,
    port: u16,
    http: reqwest::Client,
    startup_time: Duration,
}

impl NacosServer {
    /// Builds the server's classpath (once per test process), starts a server on fresh ports
    /// with its own data directory, and waits until its HTTP API and gRPC port answer.
    ///
    /// Server-side health checks are switched off once it is ready (see
    /// [`NacosServer::set_health_checks`]), so registered instances stay as registered.
    pub async fn start() -> anyhow::Result<Self> {
        let project = workspace_root().join("tests/peers/nacos");
        // Maven blocks for seconds (half a minute on the first run): keep it off the async workers.
        let program = tokio::task::spawn_blocking(move || JavaProgram::build(&project))
            .await
            .context("the Maven build task panicked")??;
        let port = free_port_block(&[RAFT_OFFSET, 0, GRPC_OFFSET, CLUSTER_GRPC_OFFSET])?;
        let home = PeerProcess::temp_dir("nacos")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            // No idle connections: after a restart a pooled one would be dead.
            .pool_max_idle_per_host(0)
            .build()
            .context("build the HTTP client")?;
        let mut server = Self {
            process: None,
            home,
            program,
            port,
            http,
            startup_time: Duration::ZERO,
        };
        server.launch().await?;
        Ok(server)
    }

    /// The HTTP address (context path `/nacos`).
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `http://127.0.0.1:<port>/nacos`, the root of the open API.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/nacos", self.port)
    }

    /// The gRPC port Nacos 2.x clients connect to (HTTP port + 1000).
    pub fn grpc_port(&self) -> u16 {
        offset_port(self.port, GRPC_OFFSET)
    }

    /// The server address as Nacos clients take it: `127.0.0.1:<http port>`.
    pub fn server_addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How long the latest start (or restart) took until the server was ready.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// The server's temporary directory and `nacos.home`: data, logs (the console output of every
    /// run in `nacos.log`, Nacos' own in `logs/`) and working files; kept across restarts and
    /// removed on drop.
    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    /// The JVM's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(PeerProcess::pid)
    }

    /// The last `lines` lines of the server's console output, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .as_ref()
            .map(|process| process.log_tail(lines))
            .unwrap_or_default()
    }

    /// Whether the server process is running (it may still be starting).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the server (SIGKILL, as a crash would), keeping its ports and data for
    /// [`Self::restart`].
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.kill()?;
        }
        Ok(())
    }

    /// Shuts the server down gracefully (SIGTERM; Nacos needs 3–4 s), killing it if that takes
    /// longer than 30 s. Ports and data are kept for [`Self::restart`].
    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        let Some(mut process) = self.process.take() else {
            return Ok(());
        };
        // The harness has no signal crate; the `kill` utility sends SIGTERM just as well.
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(process.pid().to_string())
            .status()
            .context("run kill -TERM")?;
        if status.success() {
            let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
            // `ensure_running` fails once the process has exited (and reaps it).
            while process.ensure_running().is_ok() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        process.kill()
    }

    /// Kills the server if it runs, then starts it again on the same ports with the same data,
    /// and waits until it is ready.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.launch().await
    }

    /// Turns the server's own health checks of persistent instances on or off.
    ///
    /// With them on (the Nacos default) the server opens TCP connections to every persistent
    /// instance's address and marks unreachable ones unhealthy. Tests register made-up addresses,
    /// so [`NacosServer::start`] turns them off: instances then keep the health they were
    /// registered with, and no probe leaves the machine. The setting is applied in memory only
    /// (`debug=true`; Nacos 2.3 does not persist this switch), and every start re-applies "off".
    pub async fn set_health_checks(&self, enabled: bool) -> anyhow::Result<()> {
        let mut switches = self.switches().await?;
        let Some(fields) = switches.as_object_mut() else {
            anyhow::bail!("naming switches are not a JSON object: {switches}");
        };
        fields.insert("healthCheckEnabled".into(), enabled.into());
        // `healthCheckEnabled` is not a single switch entry in 2.x; only a batch update sets it.
        let response = self
            .http
            .put(format!("{}/v1/ns/operator/switches", self.base_url()))
            .form(&[
                ("debug", "true"),
                ("entry", "batch"),
                ("value", &switches.to_string()),
            ])
            .send()
            .await
            .context("PUT the naming switches")?;
        expect_ok(response, "update the naming switches").await
    }

    /// Whether the server health-checks persistent instances (see [`Self::set_health_checks`]).
    pub async fn health_checks_enabled(&self) -> anyhow::Result<bool> {
        let switches = self.switches().await?;
        switches["healthCheckEnabled"]
            .as_bool()
            .with_context(|| format!("no healthCheckEnabled among the switches: {switches}"))
    }

    /// The naming module's switches (`GET /v1/ns/operator/switches`).
    async fn switches(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/v1/ns/operator/switches", self.base_url());
        let response = self
            .http
            .get(url)
            .send()
            .await
            .context("GET the naming switches")?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    /// Creates a namespace with the given id (used as its name too).
    ///
    /// Nacos 2.x accepts registrations into namespaces that were never created; create one when a
    /// test lists namespaces or services per namespace.
    pub async fn create_namespace(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/v1/console/namespaces", self.base_url()))
            .form(&[
                ("customNamespaceId", id),
                ("namespaceName", id),
                ("namespaceDesc", "created by the Causeway test harness"),
            ])
            .send()
            .await
            .context("POST a namespace")?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() || body.trim() != "true" {
            anyhow::bail!("create namespace {id}: HTTP {status}: {body}");
        }
        Ok(())
    }

    /// Registers a **persistent** instance (`ephemeral=false`) over the v1 open API.
    ///
    /// Persistent, because an ephemeral instance registered over HTTP disappears 30 s after its
    /// last heartbeat unless the test keeps beating; a persistent one stays until deregistered
    /// and survives restarts. Nacos 2.x keeps a service either persistent or ephemeral, so a test
    /// that also registers ephemeral instances (a gRPC client, Dubbo) should use another service
    /// name. `group` empty means `DEFAULT_GROUP`; `namespace` `None` means the public namespace.
    pub async fn register_instance(
        &self,
        service: &str,
        group: &str,
        namespace: Option<&str>,
        ip: &str,
        port: u16,
        metadata: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let metadata: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).into()))
            .collect();
        let port = port.to_string();
        let metadata = serde_json::Value::Object(metadata).to_string();
        let mut form = instance_params(service, group, namespace, ip, &port);
        form.extend([
            ("ephemeral", "false"),
            ("weight", "1.0"),
            ("enabled", "true"),
            ("healthy", "true"),
            ("metadata", metadata.as_str()),
        ]);
        let response = self
            .http
            .post(format!("{}/v1/ns/instance", self.base_url()))
            .form(&form)
            .send()
            .await
            .context("POST an instance")?;
        expect_ok(response, &format!("register {ip}:{port} in {service}")).await
    }

    /// Deregisters a persistent instance registered with [`NacosServer::register_instance`].
    pub async fn deregister_instance(
        &self,
        service: &str,
        group: &str,
        namespace: Option<&str>,
        ip: &str,
        port: u16,
    ) -> anyhow::Result<()> {
        let port = port.to_string();
        let mut query = instance_params(service, group, namespace, ip, &port);
        query.push(("ephemeral", "false"));
        let response = self
            .http
            .delete(format!("{}/v1/ns/instance", self.base_url()))
            .query(&query)
            .send()
            .await
            .context("DELETE an instance")?;
        expect_ok(response, &format!("deregister {ip}:{port} from {service}")).await
    }

    /// The instances (`hosts`) of `service` in the public namespace, healthy or not.
    pub async fn list_instances(
        &self,
        service: &str,
        group: &str,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        self.list_instances_in(service, group, None).await
    }

    /// The instances (`hosts`) of `service` in `namespace` (`None`: public), healthy or not.
    /// An unknown service has none.
    pub async fn list_instances_in(
        &self,
        service: &str,
        group: &str,
        namespace: Option<&str>,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut query = vec![
            ("serviceName", service),
            ("groupName", group_or_default(group)),
            ("healthyOnly", "false"),
        ];
        if let Some(namespace) = namespace {
            query.push(("namespaceId", namespace));
        }
        let mut list: serde_json::Value = self
            .http
            .get(format!("{}/v1/ns/instance/list", self.base_url()))
            .query(&query)
            .send()
            .await
            .context("GET the instance list")?
            .error_for_status()?
            .json()
            .await?;
        match list.get_mut("hosts").map(serde_json::Value::take) {
            Some(serde_json::Value::Array(hosts)) => Ok(hosts),
            _ => anyhow::bail!("instance list without hosts: {list}"),
        }
    }

    /// Spawns the JVM on this server's ports and home, waits until it is ready, and applies the
    /// harness's settings.
    async fn launch(&mut self) -> anyhow::Result<()> {
        let command = self.command()?;
        // The home folder outlives the process, so a restarted server appends to the same log.
        let mut process = PeerProcess::spawn_in("nacos", command, self.home.path())?;
        let probe_client = self.http.clone();
        let readiness = format!("{}/v1/console/health/readiness", self.base_url());
        let grpc = SocketAddr::from((Ipv4Addr::LOCALHOST, self.grpc_port()));
        let ready = process
            .wait_ready(READY_TIMEOUT, || {
                probe(probe_client.clone(), readiness.clone(), grpc)
            })
            .await;
        // Keep the process in the guard even if it failed, so it is killed and cleaned up.
        self.process = Some(process);
        self.startup_time = ready?;
        self.set_health_checks(false).await
    }

    /// `java … com.alibaba.nacos.Nacos …` for this server, run inside its home folder.
    fn command(&self) -> anyhow::Result<Command> {
        let home = self.home.path();
        let tmp = home.join("tmp");
        std::fs::create_dir_all(&tmp).context("create the JVM's temp folder")?;
        let mut command = Command::new("java");
        command
            // Relative paths (Tomcat's work folder, derby.log) land in the home folder.
            .current_dir(home)
            .args(["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Xss512k"])
            // C1 only: faster start-up and less CPU on a shared 2-core machine; peak throughput
            // does not matter for tests.
            .arg("-XX:TieredStopAtLevel=1")
            .arg("-Dnacos.standalone=true")
            .arg(format!("-Dnacos.home={}", home.display()))
            // Without it Nacos logs to ~/nacos/logs, shared by every server on the machine.
            .arg(format!("-Dnacos.logs.path={}", home.join("logs").display()))
            // Nacos would otherwise pick a network interface's address for itself.
            .arg("-Dnacos.server.ip=127.0.0.1")
            // RocksDB (JRaft) and Tomcat extract files here; a SIGKILL would leave them in /tmp.
            .arg(format!("-Djava.io.tmpdir={}", tmp.display()))
            .arg("-cp")
            .arg(self.program.classpath())
            .arg("com.alibaba.nacos.Nacos")
            .arg(format!("--server.port={}", self.port))
            .arg("--server.address=127.0.0.1")
            .arg("--server.tomcat.accesslog.enabled=false");
        Ok(command)
    }
}

impl std::fmt::Debug for NacosServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NacosServer")
            .field("http", &self.http_addr())
            .field("grpc_port", &self.grpc_port())
            .field("home", &self.home.path())
            .field("process", &self.process)
            .finish()
    }
}

/// Ready means the HTTP API says so and the client gRPC port accepts connections.
async fn probe(client: reqwest::Client, readiness: String, grpc: SocketAddr) -> anyhow::Result<()> {
    let response = client.get(&readiness).send().await?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("readiness answered HTTP {status}");
    }
    tokio::net::TcpStream::connect(grpc)
        .await
        .with_context(|| format!("connect to gRPC {grpc}"))?;
    Ok(())
}

/// Fails unless Nacos answered 2xx with its usual `ok`.
async fn expect_ok(response: reqwest::Response, what: &str) -> anyhow::Result<()> {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() || body.trim() != "ok" {
        anyhow::bail!("{what}: HTTP {status}: {body}");
    }
    Ok(())
}

fn instance_params<'a>(
    service: &'a str,
    group: &'a str,
    namespace: Option<&'a str>,
    ip: &'a str,
    port: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut params = vec![
        ("serviceName", service),
        ("groupName", group_or_default(group)),
        ("ip", ip),
        ("port", port),
    ];
    if let Some(namespace) = namespace {
        params.push(("namespaceId", namespace));
    }
    params
}

fn group_or_default(group: &str) -> &str {
    if group.is_empty() {
        DEFAULT_GROUP
    } else {
        group
    }
}

fn offset_port(port: u16, offset: i32) -> u16 {
    // free_port_block checked that every offset port fits, so this never saturates in practice.
    u16::try_from(i32::from(port) + offset).unwrap_or(u16::MAX)
}
