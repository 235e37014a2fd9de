//! A real ZooKeeper server (Debian's `zookeeper` package, 3.8) in standalone mode.
//!
//! The server runs straight from the package's jar with a generated `zoo.cfg`: a client port from
//! [`crate::ports`], a data directory in the guard's temp dir, the admin HTTP server disabled (it
//! would otherwise claim port 8080 in every instance) and a short tick so session-expiry tests
//! finish quickly. Readiness is the `ruok` four-letter command answering `imok`. The server can be
//! stopped and restarted on the same port and data, as registry-outage tests need.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ports::free_port;
use crate::process::PeerProcess;

/// Where Debian installs the server jar; its manifest class path pulls in the dependencies.
const ZOOKEEPER_CLASSPATH: &str = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar";

/// Milliseconds per ZooKeeper tick; sessions may be as short as two ticks.
pub const TICK_MS: u64 = 250;

/// A running ZooKeeper server, killed and cleaned up on drop.
#[derive(Debug)]
pub struct ZooKeeperServer {
    // Declared before `dir` so the process is killed before its directory is removed.
    process: Option<PeerProcess>,
    port: u16,
    startup: Duration,
    dir: TempDir,
}

impl ZooKeeperServer {
    /// Starts a server on a free loopback port and waits until it answers `ruok`.
    pub async fn start() -> anyhow::Result<Self> {
        if !Path::new("/usr/share/java/zookeeper.jar").exists() {
            anyhow::bail!(
                "ZooKeeper is not installed (Debian package `zookeeper`); run the test command"
            );
        }
        let dir = PeerProcess::temp_dir("zookeeper")?;
        let port = free_port()?;
        let config = format!(
            "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr,mntr,cons\nmaxClientCnxns=0\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("zoo.cfg"), config).context("write zoo.cfg")?;
        let mut server = Self {
            process: None,
            port,
            startup: Duration::ZERO,
            dir,
        };
        server.startup = server.launch().await?;
        Ok(server)
    }

    async fn launch(&mut self) -> anyhow::Result<Duration> {
        let mut command = Command::new("java");
        command
            .arg("-Xmx256m")
            .arg("-XX:+UseSerialGC")
            .arg(format!("-Dzookeeper.log.dir={}", self.dir.path().display()))
            .arg("-Dzookeeper.root.logger=INFO,CONSOLE")
            .args(["-cp", ZOOKEEPER_CLASSPATH])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.dir.path().join("zoo.cfg"));
        let mut process = PeerProcess::spawn_in("zookeeper", command, self.dir.path())?;
        let addr = self.addr();
        let took = process
            .wait_ready(Duration::from_secs(60), || {
                four_letter_word(addr, "ruok", "imok")
            })
            .await?;
        self.process = Some(process);
        Ok(took)
    }

    /// The client address, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The connect string clients take, `127.0.0.1:<port>`.
    pub fn connect_string(&self) -> String {
        self.addr().to_string()
    }

    /// How long the server took to answer `ruok` after its last start.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// The server's temporary directory (data, config and log); removed on drop.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Kills the server (as a crash would), keeping its data for [`Self::restart`].
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.kill()?;
        }
        Ok(())
    }

    /// Starts the server again on the same port and data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.startup = self.launch().await?;
        Ok(())
    }
}

/// Sends a ZooKeeper four-letter command and checks the answer starts with `expect`.
pub async fn four_letter_word(addr: SocketAddr, word: &str, expect: &str) -> anyhow::Result<()> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        anyhow::Ok(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .context("four-letter command timed out")??;
    anyhow::ensure!(
        answer.starts_with(expect),
        "`{word}` answered {answer:?}, expected {expect:?}"
    );
    Ok(())
}
