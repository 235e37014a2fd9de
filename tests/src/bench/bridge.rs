//! The `causeway-bridge` process under benchmark: finding (and building) the release binary,
//! spawning it on free loopback ports, and reading what it exposes (`/metrics`, its log).

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, anyhow, ensure};

use crate::paths::workspace_root;
use crate::ports::free_port;
use crate::process::PeerProcess;

// The bridge process and what it exposes.

/// The bridge's `/metrics`, the parts the bench reads.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// `causeway_bridge_snapshots_total`.
    pub snapshots: u64,
    /// `causeway_bridge_endpoints`.
    pub endpoints: u64,
    /// `causeway_bridge_services`.
    pub services: u64,
    /// Cumulative `change_to_snapshot_seconds` buckets: (upper bound, count).
    pub buckets: Vec<(String, u64)>,
}

impl Metrics {
    /// Reads the series above from OpenMetrics text.
    pub fn parse(text: &str) -> Self {
        let mut metrics = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            // Counters and gauges print as integers; anything else (sums) is not read here.
            let number = || value.parse::<u64>().ok();
            match series {
                "causeway_bridge_snapshots_total" => {
                    metrics.snapshots = number().unwrap_or_default();
                }
                "causeway_bridge_endpoints" => metrics.endpoints = number().unwrap_or_default(),
                "causeway_bridge_services" => metrics.services = number().unwrap_or_default(),
                _ => {
                    if let Some(le) = series
                        .strip_prefix("causeway_bridge_change_to_snapshot_seconds_bucket{le=\"")
                        .and_then(|rest| rest.strip_suffix("\"}"))
                    {
                        metrics
                            .buckets
                            .push((le.to_owned(), number().unwrap_or_default()));
                    }
                }
            }
        }
        metrics
    }
}

/// Reads the admin server's `/metrics` over one kept-alive connection.
pub struct Scraper {
    /// One kept-alive client.
    pub http: reqwest::Client,
    /// `http://<admin>/metrics`.
    pub url: String,
}

impl Scraper {
    /// A scraper of the admin server at `admin`.
    pub fn new(admin: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()?,
            url: format!("http://{admin}/metrics"),
        })
    }

    /// Fetches and parses `/metrics` once.
    pub async fn scrape(&self) -> anyhow::Result<Metrics> {
        let text = self
            .http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Metrics::parse(&text))
    }
}

/// The running `causeway-bridge` child.
pub struct Bridge {
    /// The child process (killed when this drops).
    pub process: PeerProcess,
    /// Its log file.
    pub log: PathBuf,
    /// Its ADS address (`--xds-listen`).
    pub xds: SocketAddr,
    /// Reads its `/metrics`.
    pub scraper: Scraper,
}

impl Bridge {
    /// Starts `binary` against one registry, on free loopback ports, logging into
    /// `<log_dir>/causeway-bridge.log`; `extra_args` are appended to its command line.
    pub fn spawn(
        binary: &Path,
        registry_url: &str,
        log_dir: &Path,
        extra_args: &[OsString],
    ) -> anyhow::Result<Self> {
        let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let xds = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let name = "causeway-bridge";
        let log = log_dir.join(format!("{name}.log"));
        // The log is appended to by the harness; start each run with an empty one.
        let _ = std::fs::remove_file(&log);
        let mut command = Command::new(binary);
        command
            .args(["--registry", registry_url])
            .args(["--admin-listen", &admin.to_string()])
            // Its own xDS port, so a bridge someone else runs on the default one cannot clash.
            .args(["--xds-listen", &xds.to_string()])
            // The adapters' debug lines report how long a listing took; nothing per event.
            .env("RUST_LOG", "info,causeway_bridge::registry=debug")
            .env("NO_COLOR", "1");
        command.args(extra_args);
        let process = PeerProcess::spawn_in(name, command, log_dir)?;
        Ok(Self {
            process,
            log,
            xds,
            scraper: Scraper::new(admin)?,
        })
    }

    /// The process id (for `/proc`).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The log so far (empty if unreadable).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first error the bridge logged, if any.
    pub fn logged_error(&self) -> Option<String> {
        self.log_text()
            .lines()
            .find(|l| l.contains(" ERROR "))
            .map(str::to_owned)
    }

    /// How long the adapter's first listing took: its own `took_ms` when its debug line reports
    /// one (ZooKeeper), else from the log timestamps, adapter start → resync sent (etcd).
    pub fn listing_time(&self) -> Option<Duration> {
        let text = self.log_text();
        let resync = text.lines().find(|l| l.contains(" resync "))?;
        if let Some(at) = resync.find("took_ms=") {
            let digits = &resync[at + "took_ms=".len()..];
            let ms = digits.split(|c: char| !c.is_ascii_digit()).next()?;
            return ms.parse().ok().map(Duration::from_millis);
        }
        let start = text
            .lines()
            .find(|l| l.contains("starting registry adapter"))?;
        let took = log_seconds(resync)? - log_seconds(start)?;
        // Negative across midnight: unknown rather than wrong.
        (took >= 0.0).then(|| Duration::from_secs_f64(took))
    }
}

/// Seconds into the day of a text log line (`2026-01-02T03:04:05.678901Z …`).
pub fn log_seconds(line: &str) -> Option<f64> {
    let time = line.get(11..)?.split(['Z', ' ']).next()?;
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// The `causeway-bridge` binary to measure: built now in this executable's target directory and
/// profile when cargo launched the bench (so the figures are for the current source), then taken
/// from next to this executable.
/// `explicit` is the `--bridge` option; `build` is false with `--no-build`.
pub fn bridge_binary(explicit: Option<&Path>, build: bool) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        ensure!(path.is_file(), "--bridge {} does not exist", path.display());
        return Ok(path.to_owned());
    }
    ensure!(
        !cfg!(debug_assertions),
        "a debug build measures nothing useful: run with `cargo run --release` \
         (the scripts/bench-*.sh wrappers do)"
    );
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
    if build && let Some(cargo) = std::env::var_os("CARGO") {
        // `cargo run -p causeway-tests --bin <bench>` builds only that binary; build the
        // bridge into the same target directory (the profile directory's parent).
        let target_dir = profile_dir
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent directory", profile_dir.display()))?;
        println!(
            "building causeway-bridge (release) into {}",
            target_dir.display()
        );
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "causeway-bridge", "--bin"])
            .arg("causeway-bridge")
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(workspace_root())
            .status()
            .context("run cargo build for causeway-bridge")?;
        ensure!(
            status.success(),
            "building causeway-bridge failed: {status}"
        );
    }
    let bridge = profile_dir.join("causeway-bridge");
    ensure!(
        bridge.is_file(),
        "{} not found: build it with `cargo build --release -p causeway-bridge`, or pass --bridge",
        bridge.display()
    );
    Ok(bridge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_have_times() {
        let line = "2026-11-21T06:10:13.679005Z DEBUG causeway_bridge::registry::etcd: etcd resync";
        let seconds = log_seconds(line).unwrap();
        assert!((seconds - (6.0 * 3600.0 + 10.0 * 60.0 + 13.679005)).abs() < 1e-6);
        assert_eq!(log_seconds("garbage"), None);
    }
}
