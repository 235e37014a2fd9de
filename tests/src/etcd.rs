//! A real etcd server (Debian's `etcd-server` package) as a single-member cluster.
//!
//! Client and peer ports come from [`crate::ports`] and the data directory lives in the guard's
//! temp dir, so several servers run side by side. Readiness is `/health` reporting healthy. The
//! server can be stopped and restarted on the same ports and data for outage tests.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;

use crate::ports::free_port;
use crate::process::PeerProcess;

/// A running etcd server, killed and cleaned up on drop.
#[derive(Debug)]
pub struct EtcdServer {
    // Declared before `dir` so the process is killed before its directory is removed.
    process: Option<PeerProcess>,
    client_port: u16,
    peer_port: u16,
    startup: Duration,
    dir: TempDir,
}

impl EtcdServer {
    /// Starts a server on free loopback ports and waits until it reports healthy.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = PeerProcess::temp_dir("etcd")?;
        let mut server = Self {
            process: None,
            client_port: free_port()?,
            peer_port: free_port()?,
            startup: Duration::ZERO,
            dir,
        };
        server.startup = server.launch().await?;
        Ok(server)
    }

    async fn launch(&mut self) -> anyhow::Result<Duration> {
        let client_url = format!("http://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new("etcd");
        command
            .args(["--name", "causeway-test"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("causeway-test={peer_url}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-level", "warn"]);
        let mut process = PeerProcess::spawn_in("etcd", command, self.dir.path())
            .context("start etcd (Debian package `etcd-server`; run the test command)")?;
        let health_url = format!("{client_url}/health");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let took = process
            .wait_ready(Duration::from_secs(60), || {
                let request = http.get(&health_url).send();
                async move {
                    let body: serde_json::Value = request.await?.json().await?;
                    anyhow::ensure!(body["health"] == "true", "etcd says {body}");
                    Ok(())
                }
            })
            .await?;
        self.process = Some(process);
        Ok(took)
    }

    /// The client address, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port))
    }

    /// The client endpoint URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// How long the server took to report healthy after its last start.
    pub fn startup_time(&self) -> Duration {
        self.startup
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

    /// Starts the server again on the same ports and data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.startup = self.launch().await?;
        Ok(())
    }
}
