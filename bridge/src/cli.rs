//! The command line: flags, how they override the config file, and the process exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::config::{BridgeConfig, ConfigError};
use crate::logging::{self, LogFormat};

/// Watches ZooKeeper, Nacos and etcd registries and publishes xDS and Istio ServiceEntries.
#[derive(Debug, Parser)]
#[command(name = "causeway-bridge", version, about)]
pub struct Cli {
    /// YAML configuration file; flags below override its values.
    #[arg(long, value_name = "FILE", env = "CAUSEWAY_BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Check the configuration, print the result and exit (0 valid, 2 invalid).
    #[arg(long)]
    pub validate: bool,
    /// Address of the xDS (ADS) server [default: 127.0.0.1:15010].
    #[arg(long, value_name = "ADDR", env = "CAUSEWAY_BRIDGE_XDS_LISTEN")]
    pub xds_listen: Option<SocketAddr>,
    /// Address of the admin HTTP server [default: 127.0.0.1:15014].
    #[arg(long, value_name = "ADDR", env = "CAUSEWAY_BRIDGE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// A registry to watch (repeatable): zookeeper://host:port[/root], nacos://host:port?namespace=..&group=..,
    /// etcd://host:port[/prefix], file:///path.yaml. Adds to the config file's `registries`.
    #[arg(long = "registry", value_name = "URL")]
    pub registries: Vec<String>,
    /// Traffic rules (multi-document YAML: DestinationRule, VirtualService, MetaRouter,
    /// TrafficIsolation); watched, and a bad edit keeps the last good rules.
    #[arg(long, value_name = "FILE", env = "CAUSEWAY_BRIDGE_RULES")]
    pub rules: Option<PathBuf>,
    /// Write one ServiceEntry YAML file per service into this directory.
    #[arg(long, value_name = "DIR", env = "CAUSEWAY_BRIDGE_SERVICEENTRY_DIR")]
    pub serviceentry_dir: Option<PathBuf>,
    /// Print the ServiceEntries of every new snapshot to stdout.
    #[arg(long)]
    pub serviceentry_stdout: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text", env = "CAUSEWAY_LOG_FORMAT")]
    pub log_format: LogFormat,
}

impl Cli {
    /// The effective configuration: the file (or defaults) with flag overrides applied.
    pub fn effective_config(&self) -> Result<BridgeConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => BridgeConfig::load(path)?,
            None => BridgeConfig::default(),
        };
        if let Some(addr) = self.xds_listen {
            config.xds_listen = addr;
        }
        if let Some(addr) = self.admin_listen {
            config.admin_listen = addr;
        }
        config.registries.extend(self.registries.iter().cloned());
        if let Some(rules) = &self.rules {
            config.rules = Some(rules.clone());
        }
        if let Some(dir) = &self.serviceentry_dir {
            config.serviceentry.dir = Some(dir.clone());
        }
        config.serviceentry.stdout |= self.serviceentry_stdout;
        config.validate()?;
        Ok(config)
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let config = match cli.effective_config() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "configuration rejected");
            return ExitCode::from(2);
        }
    };
    if cli.validate {
        // Valid rules may still carry warnings; the watcher logs them too once running.
        let rules = config.rules.as_deref().map(crate::rules::RuleSet::load);
        for warning in rules.iter().flatten().flat_map(|rules| &rules.warnings) {
            tracing::warn!(%warning, "rules accepted with a warning");
        }
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "bridge stopped");
            ExitCode::FAILURE
        }
    }
}

fn run(config: BridgeConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("causeway-bridge")
        .build()?;
    runtime.block_on(async move {
        crate::app::start(config).await?;
        shutdown_signal().await?;
        tracing::info!("shutting down");
        Ok(())
    })
}

/// Waits for Ctrl-C or SIGTERM (what Kubernetes sends).
async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
