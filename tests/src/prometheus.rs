//! A real Prometheus server (Debian's `prometheus` package) scraping targets the test names.
//!
//! The scrape interval is one second so tests see data quickly; storage lives in the guard's temp
//! dir. [`Scrape`] adds target labels (such as `namespace`) and rule files (recording rules whose
//! series dashboards read). [`PrometheusServer::query`] runs an instant PromQL query over the HTTP
//! API.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::ports::free_port;
use crate::process::PeerProcess;

/// A running Prometheus server, killed and cleaned up on drop.
#[derive(Debug)]
pub struct PrometheusServer {
    process: PeerProcess,
    port: u16,
    startup: Duration,
    http: reqwest::Client,
}

/// One series of an instant-query result: its labels and value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Sample {
    /// The series labels, `__name__` included when the query keeps it.
    pub metric: std::collections::BTreeMap<String, String>,
    /// `[timestamp, "value"]` as Prometheus encodes it.
    pub value: (f64, String),
}

impl Sample {
    /// The sample value as a number (`NaN` when Prometheus sent something unparsable).
    pub fn number(&self) -> f64 {
        self.value.1.parse().unwrap_or(f64::NAN)
    }
}

#[derive(Debug, Deserialize)]
struct QueryResponse {
    status: String,
    #[serde(default)]
    data: Option<QueryData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// What a server scrapes, beyond the one-second interval.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// `host:port` targets, scraped under the job name `causeway`.
    pub targets: Vec<SocketAddr>,
    /// The metrics path of every target.
    pub metrics_path: String,
    /// Labels added to every scraped series (`labels:` of the static config), e.g. `namespace`.
    pub labels: BTreeMap<String, String>,
    /// Rule files to load (recording and alerting rules), evaluated every second.
    pub rule_files: Vec<PathBuf>,
}

impl PrometheusServer {
    /// Starts a server that scrapes `targets` (each `host:port`, path `metrics_path`) every second
    /// under the job name `causeway`, and waits until it is ready.
    pub async fn start(targets: &[SocketAddr], metrics_path: &str) -> anyhow::Result<Self> {
        Self::start_with(Scrape {
            targets: targets.to_vec(),
            metrics_path: metrics_path.to_owned(),
            ..Scrape::default()
        })
        .await
    }

    /// Starts a server for `scrape` and waits until it is ready.
    pub async fn start_with(scrape: Scrape) -> anyhow::Result<Self> {
        let dir = PeerProcess::temp_dir("prometheus")?;
        let port = free_port()?;
        // JSON strings are valid YAML strings, and quote whatever a path or label holds.
        let quote = |text: &str| serde_json::Value::from(text).to_string();
        let target_list = scrape
            .targets
            .iter()
            .map(|t| quote(&t.to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let labels = scrape
            .labels
            .iter()
            .map(|(name, value)| format!("{name}: {}", quote(value)))
            .collect::<Vec<_>>()
            .join(", ");
        let rule_files = scrape
            .rule_files
            .iter()
            .map(|file| quote(&file.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [{rule_files}]\n\
             scrape_configs:\n  - job_name: causeway\n    metrics_path: {}\n\
             \x20   static_configs:\n      - targets: [{target_list}]\n        labels: {{{labels}}}\n",
            quote(&scrape.metrics_path)
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).context("write prometheus.yml")?;
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        let mut process = PeerProcess::spawn("prometheus", command, dir)
            .context("start prometheus (Debian package `prometheus`; run the test command)")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let ready_url = format!("http://127.0.0.1:{port}/-/ready");
        let startup = process
            .wait_ready(Duration::from_secs(60), || {
                let request = http.get(&ready_url).send();
                async move {
                    request.await?.error_for_status()?;
                    Ok(())
                }
            })
            .await?;
        Ok(Self {
            process,
            port,
            startup,
            http,
        })
    }

    /// The HTTP address of the server (UI and API).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// How long the server took to become ready.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Runs an instant query and returns its vector result. A scalar or string result, or a query
    /// Prometheus rejects, is an error carrying Prometheus' message.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let url = format!("http://{}/api/v1/query", self.addr());
        let response: QueryResponse = self
            .http
            .get(url)
            .query(&[("query", promql)])
            .send()
            .await?
            .json()
            .await?;
        if response.status != "success" {
            anyhow::bail!(
                "query `{promql}` failed: {}",
                response.error.unwrap_or_default()
            );
        }
        let data = response.data.context("query answer without data")?;
        anyhow::ensure!(
            data.result_type == "vector",
            "query `{promql}` returned a {} rather than a vector",
            data.result_type
        );
        Ok(serde_json::from_value(data.result)?)
    }
}
