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
        tracing::info!(
            xds_listen = %config.xds_listen,
            admin_listen = %config.admin_listen,
            "causeway-bridge started; no registry adapters are configured in this build"
        );
        tokio::signal::ctrl_c().await?;
        tracing::info!("shutting down");
        Ok(())
    })
}
