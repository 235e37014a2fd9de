//! The command line: flags, how they override the config file, subcommands, and the exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{
    ConfigError, DEFAULT_OTLP_SERVICE_NAME, Listen, OtlpConfig, ProxyConfig, XdsConfig,
};
use crate::inspect::{self, InspectArgs};
use crate::logging::{self, LogFormat};
use crate::{app, local};

/// Multi-protocol service-mesh proxy for Dubbo, Thrift, gRPC and HTTP.
///
/// Without a subcommand it runs the proxy with the flags below.
// Run flags and subcommands exclude each other, so `--config x inspect ...` is a usage error
// rather than a silently ignored flag.
#[derive(Debug, Parser)]
#[command(
    name = "causeway-proxy",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// YAML configuration file; flags below override its values.
    #[arg(long, value_name = "FILE", env = "CAUSEWAY_PROXY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Check the configuration, print the result and exit (0 valid, 2 invalid).
    #[arg(long)]
    pub validate: bool,
    /// A protocol listener, `PROTO=ADDR[,host=HOST]` (`dubbo`, `thrift` or `auto`, e.g.
    /// `thrift=127.0.0.1:9090,host=calculator`); repeatable. Replaces the config file's `listen`
    /// entries.
    #[arg(long, value_name = "PROTO=ADDR")]
    pub listen: Vec<Listen>,
    /// Address of the admin HTTP server [default: 127.0.0.1:15000].
    #[arg(long, value_name = "ADDR", env = "CAUSEWAY_PROXY_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// The bridge's xDS address (`host:port`): take services, endpoints and routes from it
    /// instead of the config file's `services` and `rules`.
    #[arg(long, value_name = "ADDR", env = "CAUSEWAY_PROXY_XDS")]
    pub xds: Option<String>,
    /// This proxy's node id for the bridge [default: the workload name].
    #[arg(long, value_name = "ID", env = "CAUSEWAY_PROXY_NODE_ID")]
    pub node_id: Option<String>,
    /// This proxy's locality, `region/zone[/subzone]`: providers nearby are preferred.
    #[arg(long, value_name = "LOCALITY", env = "CAUSEWAY_PROXY_LOCALITY")]
    pub locality: Option<String>,
    /// Export the proxy's spans (sampled traces only) over OTLP/HTTP to this collector,
    /// `http://host[:port][/base]`.
    #[arg(long, value_name = "URL", env = "CAUSEWAY_PROXY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the exported spans [default: causeway-proxy].
    #[arg(long, value_name = "NAME", env = "CAUSEWAY_PROXY_OTLP_SERVICE_NAME")]
    pub otlp_service_name: Option<String>,
    /// Worker threads [default: one per CPU this process may use]; 1 runs everything on one
    /// thread (the cheapest way to keep one core busy).
    #[arg(long, value_name = "N", env = "CAUSEWAY_PROXY_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text", env = "CAUSEWAY_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// A tool to run instead of the proxy.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands: tools that run instead of the proxy.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode captured frames (Dubbo, Thrift, gRPC, HTTP/1) and print them as JSON; exit 0 if
    /// every frame decodes, 1 if one is malformed, 2 if the input cannot be read.
    Inspect(InspectArgs),
}

impl Cli {
    /// The effective configuration: the file (or defaults) with flag overrides applied.
    pub fn effective_config(&self) -> Result<ProxyConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => ProxyConfig::load(path)?,
            None => ProxyConfig::default(),
        };
        if let Some(addr) = self.admin_listen {
            config.admin_listen = addr;
        }
        if !self.listen.is_empty() {
            config.listen.clone_from(&self.listen);
        }
        if let Some(locality) = &self.locality {
            config.locality.clone_from(locality);
        }
        if let Some(address) = &self.xds {
            let node_id = config.xds.as_ref().and_then(|x| x.node_id.clone());
            config.xds = Some(XdsConfig {
                address: address.clone(),
                node_id,
            });
        }
        if let (Some(node_id), Some(xds)) = (&self.node_id, config.xds.as_mut()) {
            xds.node_id = Some(node_id.clone());
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            let service_name = config.otlp.as_ref().map_or_else(
                || DEFAULT_OTLP_SERVICE_NAME.to_owned(),
                |otlp| otlp.service_name.clone(),
            );
            config.otlp = Some(OtlpConfig {
                endpoint: endpoint.clone(),
                service_name,
            });
        }
        if let (Some(name), Some(otlp)) = (&self.otlp_service_name, config.otlp.as_mut()) {
            otlp.service_name.clone_from(name);
        }
        Ok(config)
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Inspect(args)) = &cli.command {
        // No logging: stdout carries only the JSON report.
        return inspect::run(args);
    }
    logging::init(cli.log_format);
    let config = match cli.effective_config() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "configuration rejected");
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // Build the routes once now, so `--validate` checks services and rules too.
    let checked = app::otlp_settings(&config)
        .and_then(|_| local::load_rules(&config, cli.config.as_deref()))
        .and_then(|rules| local::build_snapshot(&config, &rules));
    if let Err(error) = checked {
        tracing::error!(%error, "configuration rejected");
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    if cli.validate {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    match run(config, cli.config.clone(), cli.threads) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "proxy stopped");
            ExitCode::FAILURE
        }
    }
}

fn run(config: ProxyConfig, path: Option<PathBuf>, threads: Option<u16>) -> anyhow::Result<()> {
    // The CPUs this process may use (its affinity mask, so `taskset` and CPU limits count).
    let threads = threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        usize::from,
    );
    // One thread: a single-threaded runtime. The multi-threaded one would run one worker beside
    // the main thread and pay for cross-thread wake-ups and work-stealing bookkeeping on every
    // task switch for nothing, a measurable share of a pinned Dubbo proxy's CPU at saturation.
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = builder.enable_all().thread_name("causeway-proxy").build()?;
    tracing::debug!(threads, "runtime built");
    runtime.block_on(async move {
        if config.listen.is_empty() {
            tracing::warn!(
                "no listeners configured; give --listen dubbo=ADDR or `listen:` in the config"
            );
        }
        let proxy = app::start(config, path).await?;
        tracing::info!(admin = %proxy.admin, "causeway-proxy started");
        tokio::signal::ctrl_c().await?;
        tracing::info!("shutting down");
        drop(proxy);
        Ok(())
    })
}
