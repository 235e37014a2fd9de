//! The delta ADS client: one stream to the bridge carrying CDS (wildcard), EDS (every known
//! cluster), Dubbo and Thrift route discovery (wildcard), LDS (wildcard) and RDS (the route
//! configurations the listeners name). Each response is converted resource by resource;
//! a response with any invalid resource is NACKed with the reason and changes nothing, a valid one
//! is ACKed and becomes a new routing snapshot, swapped atomically.
//!
//! The last good configuration stays in force while the bridge is away; the client reconnects with
//! jittered exponential backoff and tells the bridge what it already holds
//! (`initial_resource_versions`), so only what changed travels. A new snapshot is held back while
//! clusters it needs still wait for their first endpoints (at most [`EDS_GRACE`]), so adding a
//! cluster and routing to it never sends a request into a cluster without endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::core::v3::{Locality as EnvoyLocality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::dubbo_proxy::v3::RouteConfiguration as DubboRoutes;
use envoy_types::pb::envoy::extensions::filters::network::thrift_proxy::v3::RouteConfiguration as ThriftRoutes;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::convert::http::HttpTableSpec;
use super::convert::thrift::ThriftTableSpec;
use super::convert::{self, ClusterSpec, ConvertError, TableSpec};
use crate::metrics::Metrics;
use crate::routing::{Endpoint, Locality};
use crate::state::SnapshotStore;

/// CDS.
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// EDS.
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Dubbo route discovery.
pub const DUBBO_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.RouteConfiguration";
/// Thrift route discovery.
pub const THRIFT_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.RouteConfiguration";

/// LDS: API listeners of gRPC and HTTP ports.
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// RDS: their route configurations.
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// How long a snapshot waits for new clusters' first endpoints before it is published anyway.
pub const EDS_GRACE: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// `google.rpc.Code.INVALID_ARGUMENT`, the code of every NACK.
const INVALID_ARGUMENT: i32 = 3;

/// Where the bridge is and who this proxy is.
#[derive(Debug, Clone)]
pub struct XdsSettings {
    /// The bridge's ADS address, `host:port` or a full `http://` URI.
    pub address: String,
    /// This proxy's node id (shown on the bridge's `/debug/xds`).
    pub node_id: String,
    /// This proxy's locality: the bridge orders endpoint priorities from it.
    pub locality: Locality,
}

/// Every resource the client holds, converted, with the versions the bridge gave them.
#[derive(Debug, Default)]
struct Held {
    clusters: BTreeMap<String, ClusterSpec>,
    assignments: BTreeMap<String, Vec<Endpoint>>,
    tables: BTreeMap<String, TableSpec>,
    thrift_tables: BTreeMap<String, ThriftTableSpec>,
    /// Listener → the route configuration it names.
    listeners: BTreeMap<String, String>,
    http_routes: BTreeMap<String, HttpTableSpec>,
    versions: BTreeMap<&'static str, BTreeMap<String, String>>,
    /// Which types have answered at least once on any stream.
    answered: BTreeSet<&'static str>,
}

impl Held {
    fn versions_of(&self, type_url: &'static str) -> std::collections::HashMap<String, String> {
        self.versions
            .get(type_url)
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Clusters whose endpoints, and route configurations listeners name, that have not
    /// arrived yet.
    fn waiting_for_endpoints(&self) -> usize {
        self.clusters
            .keys()
            .filter(|name| !self.assignments.contains_key(*name))
            .count()
            + self
                .route_names()
                .filter(|name| !self.http_routes.contains_key(*name))
                .count()
    }

    fn route_names(&self) -> impl Iterator<Item = &String> {
        self.listeners.values()
    }
}

/// A response's resources, converted, ready to apply.
enum Converted {
    Clusters(Vec<(String, String, ClusterSpec)>),
    Assignments(Vec<(String, String, Vec<Endpoint>)>),
    Tables(Vec<(String, String, TableSpec)>),
    ThriftTables(Vec<(String, String, ThriftTableSpec)>),
    Listeners(Vec<(String, String, String)>),
    HttpRoutes(Vec<(String, String, HttpTableSpec)>),
}

fn convert_all<M, T>(
    response: &DeltaDiscoveryResponse,
    convert: impl Fn(&M) -> Result<T, ConvertError>,
) -> Result<Vec<(String, String, T)>, String>
where
    M: Message + Name + Default,
{
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for resource in &response.resources {
        let any = resource.resource.clone().unwrap_or_default();
        let result = decode::<M>(&resource.name, &any).and_then(|m| convert(&m));
        match result {
            Ok(value) => out.push((resource.name.clone(), resource.version.clone(), value)),
            Err(error) => problems.push(error.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("; "))
    }
}

fn decode<M: Message + Name + Default>(name: &str, any: &Any) -> Result<M, ConvertError> {
    if any.type_url != M::type_url() {
        return Err(ConvertError {
            resource: name.to_owned(),
            reason: format!("expected {}, got {}", M::type_url(), any.type_url),
        });
    }
    M::decode(any.value.as_slice()).map_err(|e| ConvertError {
        resource: name.to_owned(),
        reason: format!("cannot decode: {e}"),
    })
}

fn convert_response(response: &DeltaDiscoveryResponse) -> Result<Converted, String> {
    match response.type_url.as_str() {
        CLUSTER => {
            convert_all::<EnvoyCluster, _>(response, convert::cluster_spec).map(Converted::Clusters)
        }
        ENDPOINT => convert_all::<ClusterLoadAssignment, _>(response, convert::endpoints)
            .map(Converted::Assignments),
        DUBBO_ROUTE => {
            convert_all::<DubboRoutes, _>(response, convert::dubbo_table).map(Converted::Tables)
        }
        THRIFT_ROUTE => convert_all::<ThriftRoutes, _>(response, convert::thrift::thrift_table)
            .map(Converted::ThriftTables),
        LISTENER => convert_all::<Listener, _>(response, convert::http::listener_route)
            .map(Converted::Listeners),
        ROUTE => convert_all::<RouteConfiguration, _>(response, convert::http::route_table)
            .map(Converted::HttpRoutes),
        other => Err(format!("unexpected resource type {other}")),
    }
}

fn apply(
    held: &mut Held,
    type_url: &'static str,
    response: &DeltaDiscoveryResponse,
    converted: Converted,
) {
    let versions = held.versions.entry(type_url).or_default();
    for name in &response.removed_resources {
        versions.remove(name);
    }
    macro_rules! put {
        ($map:expr, $items:expr) => {{
            for name in &response.removed_resources {
                $map.remove(name);
            }
            for (name, version, value) in $items {
                versions.insert(name.clone(), version);
                $map.insert(name, value);
            }
        }};
    }
    match converted {
        Converted::Clusters(items) => put!(held.clusters, items),
        Converted::Assignments(items) => put!(held.assignments, items),
        Converted::Tables(items) => put!(held.tables, items),
        Converted::ThriftTables(items) => put!(held.thrift_tables, items),
        Converted::Listeners(items) => put!(held.listeners, items),
        Converted::HttpRoutes(items) => put!(held.http_routes, items),
    }
    held.answered.insert(type_url);
    if type_url == CLUSTER {
        // Endpoints of clusters that are gone are not needed any more.
        let clusters = &held.clusters;
        held.assignments
            .retain(|name, _| clusters.contains_key(name));
        if let Some(versions) = held.versions.get_mut(ENDPOINT) {
            versions.retain(|name, _| clusters.contains_key(name));
        }
    }
    if type_url == LISTENER {
        // Route configurations no listener names any more are not needed.
        let named: BTreeSet<String> = held.listeners.values().cloned().collect();
        held.http_routes.retain(|name, _| named.contains(name));
        if let Some(versions) = held.versions.get_mut(ROUTE) {
            versions.retain(|name, _| named.contains(name));
        }
    }
}

fn static_type(type_url: &str) -> Option<&'static str> {
    [
        CLUSTER,
        ENDPOINT,
        DUBBO_ROUTE,
        THRIFT_ROUTE,
        LISTENER,
        ROUTE,
    ]
    .into_iter()
    .find(|t| *t == type_url)
}

/// Runs the client until the store is dropped by everyone else (never, in the binary).
pub async fn run(settings: XdsSettings, store: Arc<SnapshotStore>, metrics: Arc<Metrics>) {
    let mut held = Held::default();
    let mut backoff = BACKOFF_MIN;
    loop {
        match stream_once(&settings, &store, &metrics, &mut held).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(error) => {
                tracing::warn!(bridge = %settings.address, %error, "xDS stream failed; keeping the last good routes");
            }
        }
        metrics.xds_connected(false);
        // Full jitter: many proxies restarting with one bridge do not reconnect in lockstep.
        let wait = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn uri(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

/// One ADS stream, from connect to its end. Returns `Ok` when the bridge closed it cleanly.
async fn stream_once(
    settings: &XdsSettings,
    store: &SnapshotStore,
    metrics: &Metrics,
    held: &mut Held,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut client = AggregatedDiscoveryServiceClient::connect(uri(&settings.address)).await?;
    let (tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(16);
    let node = Node {
        id: settings.node_id.clone(),
        cluster: "causeway-proxy".to_owned(),
        locality: Some(EnvoyLocality {
            region: settings.locality.region.clone(),
            zone: settings.locality.zone.clone(),
            sub_zone: settings.locality.subzone.clone(),
        }),
        ..Node::default()
    };
    let initial = |type_url: &str, names: Vec<String>, held: &Held| DeltaDiscoveryRequest {
        node: Some(node.clone()),
        type_url: type_url.to_owned(),
        resource_names_subscribe: names,
        initial_resource_versions: static_type(type_url)
            .map(|t| held.versions_of(t))
            .unwrap_or_default(),
        ..DeltaDiscoveryRequest::default()
    };
    tx.send(initial(CLUSTER, vec!["*".to_owned()], held))
        .await?;
    tx.send(initial(DUBBO_ROUTE, vec!["*".to_owned()], held))
        .await?;
    tx.send(initial(THRIFT_ROUTE, vec!["*".to_owned()], held))
        .await?;
    let mut eds_names: BTreeSet<String> = held.clusters.keys().cloned().collect();
    tx.send(initial(ENDPOINT, eds_names.iter().cloned().collect(), held))
        .await?;
    tx.send(initial(LISTENER, vec!["*".to_owned()], held))
        .await?;
    let mut rds_names: BTreeSet<String> = held.route_names().cloned().collect();
    tx.send(initial(ROUTE, rds_names.iter().cloned().collect(), held))
        .await?;
    let mut inbound = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    metrics.xds_connected(true);
    tracing::info!(bridge = %settings.address, node = %settings.node_id, "xDS stream open");
    let mut pending_since: Option<tokio::time::Instant> = None;
    loop {
        let grace = async {
            match pending_since {
                Some(since) => tokio::time::sleep_until(since + EDS_GRACE).await,
                None => std::future::pending().await,
            }
        };
        let response = tokio::select! {
            message = inbound.message() => match message? {
                Some(response) => response,
                None => return Ok(()),
            },
            () = grace => {
                tracing::warn!(waiting = held.waiting_for_endpoints(), "publishing routes before every cluster has endpoints");
                publish(store, held);
                pending_since = None;
                continue;
            }
        };
        let Some(type_url) = static_type(&response.type_url) else {
            nack(
                &tx,
                &response,
                format!("unexpected resource type {}", response.type_url),
            )
            .await?;
            metrics.config_reload(false);
            continue;
        };
        match convert_response(&response) {
            Err(reason) => {
                tracing::warn!(type_url, %reason, "rejecting xDS update; the last good routes stay");
                metrics.config_reload(false);
                nack(&tx, &response, reason).await?;
                continue;
            }
            Ok(converted) => apply(held, type_url, &response, converted),
        }
        tx.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        })
        .await?;
        metrics.config_reload(true);
        if type_url == CLUSTER {
            // EDS follows the clusters: subscribe to new ones, drop the gone ones.
            let wanted: BTreeSet<String> = held.clusters.keys().cloned().collect();
            let subscribe: Vec<String> = wanted.difference(&eds_names).cloned().collect();
            let unsubscribe: Vec<String> = eds_names.difference(&wanted).cloned().collect();
            if !subscribe.is_empty() || !unsubscribe.is_empty() {
                tx.send(DeltaDiscoveryRequest {
                    type_url: ENDPOINT.to_owned(),
                    resource_names_subscribe: subscribe,
                    resource_names_unsubscribe: unsubscribe,
                    ..DeltaDiscoveryRequest::default()
                })
                .await?;
                eds_names = wanted;
            }
        }
        if type_url == LISTENER {
            // RDS follows the listeners, as EDS follows the clusters.
            let wanted: BTreeSet<String> = held.route_names().cloned().collect();
            let subscribe: Vec<String> = wanted.difference(&rds_names).cloned().collect();
            let unsubscribe: Vec<String> = rds_names.difference(&wanted).cloned().collect();
            if !subscribe.is_empty() || !unsubscribe.is_empty() {
                tx.send(DeltaDiscoveryRequest {
                    type_url: ROUTE.to_owned(),
                    resource_names_subscribe: subscribe,
                    resource_names_unsubscribe: unsubscribe,
                    ..DeltaDiscoveryRequest::default()
                })
                .await?;
                rds_names = wanted;
            }
        }
        if [CLUSTER, DUBBO_ROUTE, THRIFT_ROUTE, LISTENER]
            .iter()
            .any(|t| !held.answered.contains(t))
        {
            continue;
        }
        if held.waiting_for_endpoints() == 0 {
            publish(store, held);
            pending_since = None;
        } else if pending_since.is_none() {
            pending_since = Some(tokio::time::Instant::now());
        }
    }
}

async fn nack(
    tx: &mpsc::Sender<DeltaDiscoveryRequest>,
    response: &DeltaDiscoveryResponse,
    message: String,
) -> Result<(), mpsc::error::SendError<DeltaDiscoveryRequest>> {
    tx.send(DeltaDiscoveryRequest {
        type_url: response.type_url.clone(),
        response_nonce: response.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: INVALID_ARGUMENT,
            message,
            details: Vec::new(),
        }),
        ..DeltaDiscoveryRequest::default()
    })
    .await
}

/// Builds and swaps in the snapshot of everything held. Its version hashes the resource versions,
/// so the same configuration gives the same version on every proxy.
fn publish(store: &SnapshotStore, held: &Held) {
    let mut text = String::new();
    for (type_url, versions) in &held.versions {
        for (name, version) in versions {
            text.push_str(type_url);
            text.push_str(name);
            text.push_str(version);
        }
    }
    let version = format!("{:016x}", crate::lb::hash_key(&text));
    let http = convert::http::tables(&held.listeners, &held.http_routes, &held.clusters);
    let snapshot = convert::assemble(version, &held.clusters, &held.assignments, &held.tables)
        .with_thrift(convert::thrift::tables(&held.thrift_tables, &held.clusters))
        .with_http(http);
    tracing::info!(
        version = %snapshot.version,
        clusters = snapshot.clusters.len(),
        services = held.tables.len(),
        thrift_services = held.thrift_tables.len(),
        "routes from xDS"
    );
    store.store(snapshot);
}
