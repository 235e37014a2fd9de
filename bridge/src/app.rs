//! Wires the bridge together: one task per registry adapter, the model task, the ServiceEntry
//! writer and the admin server, all on one tokio runtime, until a shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use tokio::sync::{mpsc, watch};

use crate::admin::{self, AdminState};
use crate::config::BridgeConfig;
use crate::metrics::BridgeMetrics;
use crate::model::snapshot::Snapshot;
use crate::model::store::ModelStore;
use crate::pipeline;
use crate::registry::source::{RegistryKind, RegistrySource};
use crate::registry::{self, EventSink};
use crate::rules::{self, RuleSet, RulesMetrics, RulesStatus};
use crate::serviceentry;
use crate::xds::metrics::XdsMetrics;
use crate::xds::server::{AdsServer, ClientRegistry, XdsState};

/// Bound on queued adapter events: a burst larger than this makes adapters wait (backpressure)
/// rather than grow memory without limit.
const EVENT_QUEUE: usize = 4096;

/// A running bridge: its snapshots and the address its admin server bound.
#[derive(Debug)]
pub struct RunningBridge {
    /// The current snapshot, updated after every debounced change.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Where the admin server listens (useful when configured with port 0).
    pub admin_addr: std::net::SocketAddr,
    /// Where the xDS (ADS) server listens.
    pub xds_addr: std::net::SocketAddr,
}

/// Starts every task of the bridge on the current runtime and returns once they are running.
pub async fn start(config: BridgeConfig) -> anyhow::Result<RunningBridge> {
    let sources = config.registry_sources()?;
    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(BridgeMetrics::register(&mut metrics_registry));
    let xds_metrics = Arc::new(XdsMetrics::register(&mut metrics_registry));
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let store = ModelStore::new(
        config.model.clone(),
        config.filter.clone(),
        Duration::from_millis(config.drop_to_zero_grace_ms),
        &names,
    );
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let (snapshots_tx, snapshots_rx) = watch::channel(Arc::new(Snapshot::default()));
    for source in sources {
        let sink = EventSink::new(&source.name, events_tx.clone());
        tracing::info!(registry = %source.name, kind = ?source.kind, "starting registry adapter");
        tokio::spawn(run_adapter(source, sink));
    }
    drop(events_tx);
    tokio::spawn(pipeline::run(
        store,
        events_rx,
        config.debounce,
        snapshots_tx,
        metrics,
    ));
    if config.serviceentry.dir.is_some() || config.serviceentry.stdout {
        tokio::spawn(write_service_entries(
            config.serviceentry.clone(),
            snapshots_rx.clone(),
        ));
    }
    let rules_status = Arc::new(RulesStatus::with_metrics(RulesMetrics::register(
        &mut metrics_registry,
    )));
    let initial_rules = match &config.rules {
        Some(path) => RuleSet::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => RuleSet::default(),
    };
    let (rules_tx, rules_rx) = watch::channel(Arc::new(initial_rules));
    let (xds_tx, xds_rx) = watch::channel(Arc::new(XdsState::new(
        snapshots_rx.borrow().clone(),
        rules_rx.borrow().clone(),
    )));
    if let Some(path) = &config.rules {
        tokio::spawn(rules::watch(path.clone(), rules_tx, rules_status.clone()));
    }
    tokio::spawn(publish_xds_state(
        snapshots_rx.clone(),
        rules_rx.clone(),
        xds_tx,
    ));
    let clients = Arc::new(ClientRegistry::default());
    let xds_listener = tokio::net::TcpListener::bind(config.xds_listen)
        .await
        .with_context(|| format!("bind the xDS server to {}", config.xds_listen))?;
    let xds_addr = xds_listener.local_addr()?;
    let ads = AdsServer::new(xds_rx.clone(), clients.clone(), xds_metrics);
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(ads))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(xds_listener))
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "xDS server stopped");
        }
    });
    tracing::info!(%xds_addr, "xDS server listening");
    let listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("bind the admin server to {}", config.admin_listen))?;
    let admin_addr = listener.local_addr()?;
    tokio::spawn(admin::serve(
        listener,
        Arc::new(AdminState {
            metrics: metrics_registry,
            snapshots: snapshots_rx.clone(),
            xds: xds_rx,
            xds_clients: clients,
            rules: rules_rx,
            rules_status,
        }),
    ));
    tracing::info!(%admin_addr, "admin server listening");
    Ok(RunningBridge {
        snapshots: snapshots_rx,
        admin_addr,
        xds_addr,
    })
}

/// Rebuilds the xDS state whenever the model publishes a snapshot or the rules change.
async fn publish_xds_state(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut rules: watch::Receiver<Arc<RuleSet>>,
    xds: watch::Sender<Arc<XdsState>>,
) {
    // Without a rules file the rules sender is gone at once; then only snapshots matter.
    let mut rules_open = true;
    loop {
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            changed = rules.changed(), if rules_open => {
                rules_open = changed.is_ok();
                if !rules_open {
                    continue;
                }
            }
        }
        let snapshot = snapshots.borrow_and_update().clone();
        let policies: Arc<RuleSet> = rules.borrow_and_update().clone();
        // Built from the state it replaces, so only changed services are translated again.
        let next = XdsState::following(&xds.borrow(), snapshot, policies);
        xds.send_replace(Arc::new(next));
    }
}

/// Runs one registry's adapter until the bridge stops.
async fn run_adapter(source: RegistrySource, sink: EventSink) {
    match source.kind {
        RegistryKind::ZooKeeper(zk) => registry::zookeeper::run(zk, sink).await,
        RegistryKind::File(path) => registry::file::run(path, sink).await,
        RegistryKind::Etcd(etcd) => registry::etcd::run(etcd, sink).await,
        RegistryKind::Nacos(nacos) => registry::nacos::run(nacos, sink).await,
    }
}

/// Writes every new snapshot's ServiceEntries to the directory and/or stdout.
async fn write_service_entries(
    output: crate::config::ServiceEntryOutput,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
) {
    let mut last_version = String::new();
    while snapshots.changed().await.is_ok() {
        let snapshot = snapshots.borrow_and_update().clone();
        if snapshot.version == last_version {
            continue;
        }
        last_version.clone_from(&snapshot.version);
        if let Some(dir) = &output.dir {
            let dir = dir.clone();
            let snap = snapshot.clone();
            match tokio::task::spawn_blocking(move || serviceentry::write_dir(&dir, &snap)).await {
                Ok(Ok((written, removed))) => {
                    tracing::info!(version = %snapshot.version, written, removed, "ServiceEntries written");
                }
                Ok(Err(error)) => tracing::error!(%error, "cannot write ServiceEntries"),
                Err(error) => tracing::error!(%error, "ServiceEntry writer failed"),
            }
        }
        if output.stdout {
            println!(
                "# causeway snapshot {}\n{}",
                snapshot.version,
                serviceentry::render_all(&snapshot)
            );
        }
    }
}
