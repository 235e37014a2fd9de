//! Wiring: builds the first routing snapshot, binds the admin server and the protocol listeners,
//! and starts the config watcher, all on the caller's tokio runtime. Tests start the whole proxy
//! in-process with [`start`] on port 0 and read the bound addresses from [`RunningProxy`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::auto;
use crate::config::{ConfigError, ListenProtocol, ProxyConfig};
use crate::dubbo::{self, DubboContext};
use crate::http::{self, HttpContext, ListenerKind};
use crate::lb::Balancer;
use crate::local;
use crate::metrics::Metrics;
use crate::routing::Locality;
use crate::spans::export::{self, Endpoint, ExportSettings};
use crate::state::SnapshotStore;
use crate::thrift::{self, ThriftContext};
use crate::xds::{self, XdsSettings};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener address is taken or not local.
    #[error("cannot listen on {address} ({what}): {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Which listener.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A started proxy; dropping it stops the listeners, the admin server and the watcher
/// (connections already accepted finish on their own).
#[derive(Debug)]
pub struct RunningProxy {
    /// Bound protocol listeners, in configuration order.
    pub listeners: Vec<(ListenProtocol, SocketAddr)>,
    /// The bound admin address.
    pub admin: SocketAddr,
    /// The routing snapshot in force.
    pub store: Arc<SnapshotStore>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningProxy {
    /// The first Dubbo listener's address.
    pub fn dubbo_addr(&self) -> Option<SocketAddr> {
        self.addr(ListenProtocol::Dubbo)
    }

    /// The first listener's address for `protocol`.
    pub fn addr(&self, protocol: ListenProtocol) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind(address: SocketAddr, what: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind {
            address,
            what: what.to_owned(),
            source,
        })
}

/// xDS mode settings, or `None` for local mode. The two modes do not mix: static services or
/// rules next to a bridge address are a configuration error, not a silent preference.
fn xds_settings(config: &ProxyConfig) -> Result<Option<XdsSettings>, ConfigError> {
    let Some(xds) = &config.xds else {
        return Ok(None);
    };
    if !config.services.is_empty() || config.rules.is_some() {
        return Err(ConfigError::Invalid {
            field: "xds".to_owned(),
            message:
                "`services` and `rules` are for local mode; with `xds` the bridge provides them"
                    .to_owned(),
        });
    }
    if xds.address.is_empty() {
        return Err(ConfigError::Invalid {
            field: "xds.address".to_owned(),
            message: "must not be empty".to_owned(),
        });
    }
    Ok(Some(XdsSettings {
        address: xds.address.clone(),
        node_id: xds
            .node_id
            .clone()
            .unwrap_or_else(|| config.workload.clone()),
        locality: Locality::parse(&config.locality),
    }))
}

/// The span exporter's settings, or `None` when no OTLP endpoint is configured.
pub fn otlp_settings(config: &ProxyConfig) -> Result<Option<ExportSettings>, ConfigError> {
    let Some(otlp) = &config.otlp else {
        return Ok(None);
    };
    let endpoint = Endpoint::parse(&otlp.endpoint).map_err(|error| ConfigError::Invalid {
        field: "otlp.endpoint".to_owned(),
        message: error.to_string(),
    })?;
    if otlp.service_name.is_empty() {
        return Err(ConfigError::Invalid {
            field: "otlp.service_name".to_owned(),
            message: "must not be empty".to_owned(),
        });
    }
    Ok(Some(ExportSettings {
        endpoint,
        service_name: otlp.service_name.clone(),
        queue: export::DEFAULT_QUEUE,
        max_batch: export::DEFAULT_MAX_BATCH,
        flush_interval: export::DEFAULT_FLUSH_INTERVAL,
    }))
}

/// Starts the proxy for `config`, read from `config_path` when given (then the file, and a rules
/// file it names, are watched for changes).
pub async fn start(
    config: ProxyConfig,
    config_path: Option<PathBuf>,
) -> Result<RunningProxy, StartError> {
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(SnapshotStore::new());
    let xds = xds_settings(&config)?;
    let otlp = otlp_settings(&config)?;
    if xds.is_none() {
        let rules = local::load_rules(&config, config_path.as_deref())?;
        let snapshot = local::build_snapshot(&config, &rules)?;
        tracing::info!(version = %snapshot.version, clusters = snapshot.clusters.len(), "routes loaded");
        store.store(snapshot);
    }
    let admin_state = Arc::new(AdminState {
        metrics: metrics.clone(),
        store: store.clone(),
        listening: AtomicBool::new(false),
    });
    let admin_listener = bind(config.admin_listen, "admin").await?;
    let admin = admin_listener.local_addr().unwrap_or(config.admin_listen);
    let mut tasks = vec![tokio::spawn(admin::serve(
        admin_listener,
        admin_state.clone(),
    ))];
    if let Some(settings) = otlp {
        tracing::info!(endpoint = %settings.endpoint.authority, path = %settings.endpoint.path, "exporting spans over OTLP");
        tasks.push(export::start(settings, metrics.clone()));
    }
    let balancer = Arc::new(Balancer::with_metrics(metrics.clone()));
    tasks.push(tokio::spawn(crate::resilience::outlier::publish_ejections(
        balancer.clone(),
        store.clone(),
        metrics.clone(),
    )));
    let context = Arc::new(DubboContext::new(
        store.clone(),
        balancer.clone(),
        metrics.clone(),
        config.dubbo,
        &config.workload,
    ));
    let thrift_context = Arc::new(ThriftContext::new(
        store.clone(),
        balancer.clone(),
        metrics.clone(),
        config.thrift,
        &config.workload,
    ));
    let http_context = Arc::new(HttpContext::new(
        store.clone(),
        balancer.clone(),
        metrics.clone(),
        &config.workload,
    ));
    let mut listeners = Vec::new();
    for listen in &config.listen {
        let listener = bind(listen.address, &listen.protocol.to_string()).await?;
        let address = listener.local_addr().unwrap_or(listen.address);
        tracing::info!(protocol = %listen.protocol, %address, "listening");
        match listen.protocol {
            ListenProtocol::Dubbo => {
                tasks.push(tokio::spawn(dubbo::serve(listener, context.clone())));
            }
            ListenProtocol::Thrift => {
                let host = listen.host.as_deref().map(Arc::from);
                tasks.push(tokio::spawn(thrift::serve(
                    listener,
                    thrift_context.clone(),
                    host,
                )));
            }
            ListenProtocol::Auto => {
                let handlers = auto::Handlers {
                    dubbo: context.clone(),
                    thrift: thrift_context.clone(),
                    thrift_host: listen.host.as_deref().map(Arc::from),
                    http: http_context.clone(),
                    metrics: metrics.clone(),
                };
                tasks.push(tokio::spawn(auto::serve(listener, handlers)));
            }
            ListenProtocol::Grpc => tasks.push(tokio::spawn(http::serve(
                listener,
                http_context.clone(),
                ListenerKind::Grpc,
            ))),
            ListenProtocol::Http => tasks.push(tokio::spawn(http::serve(
                listener,
                http_context.clone(),
                ListenerKind::Http,
            ))),
        }
        listeners.push((listen.protocol, address));
    }
    admin_state.listening.store(true, Ordering::Release);
    if let Some(settings) = xds {
        // Routes arrive from the bridge; until the first complete set, requests get "no route"
        // and `/ready` says not ready.
        tasks.push(tokio::spawn(xds::run(
            settings,
            store.clone(),
            metrics.clone(),
        )));
    } else if let Some(path) = config_path {
        tasks.push(tokio::spawn(local::watch(
            path,
            Duration::from_millis(config.reload_interval_ms.max(10)),
            store.clone(),
            metrics.clone(),
        )));
    }
    Ok(RunningProxy {
        listeners,
        admin,
        store,
        metrics,
        tasks,
    })
}
