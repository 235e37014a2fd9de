//! The real Apache Dubbo Java sample (`demo/java/dubbo-sample`) in the demo mesh: providers that
//! run as JVMs of their own and register themselves in ZooKeeper with Dubbo's own code, and the
//! sample consumer pointed at the proxy. Built with Maven on first use (Maven Central); the
//! classpath is cached by the test harness's `JavaProgram`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use causeway_tests::java::JavaProgram;
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;

use crate::greeter::SERVICE_VERSION;
use crate::registry::REGION;
use crate::served::Served;

/// How long a JVM may take to export and register (a busy 2-core machine needs ~10 s).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The sample's Maven project.
fn project() -> PathBuf {
    workspace_root().join("demo/java/dubbo-sample")
}

/// Builds the sample (or reuses an earlier build) off the async runtime: Maven takes seconds.
pub async fn program() -> anyhow::Result<JavaProgram> {
    tokio::task::spawn_blocking(|| JavaProgram::build(&project()))
        .await
        .context("the Maven build task failed")?
        .context(
            "build the Apache Dubbo Java sample (needs `java` and `mvn`, and Maven Central the \
             first time)",
        )
}

/// A Java provider JVM; dropping it kills the JVM.
#[derive(Debug)]
pub struct JavaProvider {
    process: PeerProcess,
    /// The process's name (its log is `<name>.log` in its folder).
    name: String,
    /// Where it serves.
    pub addr: SocketAddr,
}

impl JavaProvider {
    /// Starts `io.causeway.demo.Provider` registering in ZooKeeper at `zookeeper` as `version`
    /// in `zone`; returns once it is exported and registered (its `READY <port>` line).
    pub async fn start(
        program: &JavaProgram,
        zookeeper: &str,
        version: &str,
        zone: &str,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let name = format!("dubbo-provider-{version}-{zone}");
        let dir = PeerProcess::temp_dir(&name)?;
        let mut command = program.command("io.causeway.demo.Provider");
        command
            .args(["--registry", &format!("zookeeper://{zookeeper}")])
            .args(["--port", &port.to_string()])
            .args(["--version", SERVICE_VERSION])
            .args(["--app-version", version])
            .args(["--region", REGION, "--zone", zone])
            // Dubbo's caches and logs go to the process's own folder, not the user's home.
            .arg("--home")
            .arg(dir.path());
        let process = PeerProcess::spawn(&name, command, dir)?;
        Ok(Self {
            process,
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    /// Waits for the provider's `READY <port>` line.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        let log = self.process.dir().join(format!("{}.log", self.name));
        let expected = format!("READY {}", self.addr.port());
        self.process
            .wait_ready(START_TIMEOUT, || {
                let (log, expected) = (log.clone(), expected.clone());
                async move {
                    let text = tokio::fs::read_to_string(&log).await.unwrap_or_default();
                    anyhow::ensure!(
                        text.lines().any(|line| line.trim() == expected),
                        "no `{expected}` line yet"
                    );
                    Ok(())
                }
            })
            .await
            .map(|_| ())
    }
}

/// What the Java consumer's run saw.
#[derive(Debug, Default)]
pub struct ConsumerRun {
    /// Successful calls per serving version.
    pub by_version: std::collections::BTreeMap<String, usize>,
    /// Failed calls.
    pub failed: usize,
    /// The first failure's message.
    pub first_error: Option<String>,
}

/// Runs `io.causeway.demo.Consumer` against `target` (the proxy's Dubbo listener): `calls`
/// `greet` calls, one JSON line each.
pub async fn consumer(
    program: &JavaProgram,
    target: SocketAddr,
    calls: usize,
) -> anyhow::Result<ConsumerRun> {
    let home = tempfile::Builder::new()
        .prefix("causeway-demo-java-consumer-")
        .tempdir()
        .context("create the consumer's home")?;
    let mut command = tokio::process::Command::from(program.command("io.causeway.demo.Consumer"));
    command
        .args(["--url", &format!("dubbo://{target}")])
        .args(["--method", "greet"])
        .args(["--calls", &calls.to_string()])
        .arg("--home")
        .arg(home.path())
        .kill_on_drop(true);
    let output = tokio::time::timeout(START_TIMEOUT, command.output())
        .await
        .context("the Java consumer did not finish in time")?
        .context("run the Java consumer")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut run = ConsumerRun::default();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let call: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("consumer line `{line}`"))?;
        let served = call["result"].as_str().and_then(Served::parse);
        match (call["ok"].as_bool(), served) {
            (Some(true), Some(served)) => *run.by_version.entry(served.version).or_default() += 1,
            _ => {
                run.failed += 1;
                run.first_error
                    .get_or_insert_with(|| format!("{}: {}", call["error"], call["message"]));
            }
        }
    }
    let seen = run.failed + run.by_version.values().sum::<usize>();
    anyhow::ensure!(
        seen == calls,
        "the Java consumer reported {seen} of {calls} calls (exit {}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(run)
}
