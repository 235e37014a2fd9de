//! The ADS gRPC server: one task per stream drives a sans-IO state machine ([`SotwConnection`] or
//! [`DeltaConnection`]) with client requests and with every new resource set, and keeps a registry
//! of connected clients (node, type subscriptions, last ACK/NACK) for the admin page.
//!
//! Resources depend on the requesting node's locality (EDS priorities), so the published
//! [`XdsState`] builds one resource set per locality on demand and memoises it. A state that
//! follows another one with the same policies builds each locality's set from the previous
//! state's set by re-translating only the services whose `Arc` changed (the model shares
//! unchanged services across snapshots), so one endpoint change costs O(changed services), not a
//! translation of the whole estate per locality. This relies on translation being per service:
//! a service's resources depend only on that service, the policies and the node's locality
//! (`incremental_equals_full` below checks it on the test estate).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::model::snapshot::{Service, Snapshot};
use crate::xds::delta::DeltaConnection;
use crate::xds::metrics::XdsMetrics;
use crate::xds::resources::ResourceSet;
use crate::xds::sotw::{RequestKind, SotwConnection, TypeStatus};
use crate::xds::translate::{NodeLocality, Policies, translate, translate_services};

/// How many responses may queue for one slow client before its task waits.
const RESPONSE_QUEUE: usize = 16;

/// What the xDS server serves at one moment: the model snapshot and the policies.
pub struct XdsState {
    snapshot: Arc<Snapshot>,
    policies: Arc<dyn Policies + Send + Sync>,
    per_locality: Mutex<HashMap<NodeLocality, Arc<ResourceSet>>>,
    /// What the previous state had built, to build from incrementally; each locality's entry is
    /// taken when this state builds it, and the rest goes with this state.
    base: Mutex<Option<Base>>,
}

/// The previous state's snapshot and the resource sets it had built, by locality.
struct Base {
    snapshot: Arc<Snapshot>,
    sets: HashMap<NodeLocality, Arc<ResourceSet>>,
}

impl std::fmt::Debug for XdsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsState")
            .field("version", &self.snapshot.version)
            .finish_non_exhaustive()
    }
}

impl XdsState {
    /// State for a snapshot and the policies in force.
    pub fn new(
        snapshot: Arc<Snapshot>,
        policies: Arc<impl Policies + Send + Sync + 'static>,
    ) -> Self {
        Self {
            snapshot,
            policies,
            per_locality: Mutex::new(HashMap::new()),
            base: Mutex::new(None),
        }
    }

    /// State for a new snapshot that replaces `previous`: with the same policies (the same
    /// `Arc`), its resource sets are built from `previous`'s by re-translating only the services
    /// that changed.
    pub fn following(
        previous: &XdsState,
        snapshot: Arc<Snapshot>,
        policies: Arc<impl Policies + Send + Sync + 'static>,
    ) -> Self {
        let policies: Arc<dyn Policies + Send + Sync> = policies;
        let same_policies =
            std::ptr::addr_eq(Arc::as_ptr(&policies), Arc::as_ptr(&previous.policies));
        let sets = match previous.per_locality.lock() {
            Ok(memo) if same_policies => memo.clone(),
            _ => HashMap::new(),
        };
        let base = (!sets.is_empty()).then(|| Base {
            snapshot: previous.snapshot.clone(),
            sets,
        });
        Self {
            snapshot,
            policies,
            per_locality: Mutex::new(HashMap::new()),
            base: Mutex::new(base),
        }
    }

    /// The model snapshot.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// The resources a node in `locality` gets.
    pub fn resources_for(&self, locality: &NodeLocality) -> Arc<ResourceSet> {
        let build = || Arc::new(self.build(locality));
        match self.per_locality.lock() {
            Ok(mut memo) => memo.entry(locality.clone()).or_insert_with(build).clone(),
            // A panic elsewhere poisoned the memo: still serve, just without memoising.
            Err(_) => build(),
        }
    }
}

impl XdsState {
    /// Builds the set for `locality`: from the previous state's set when there is one, else by
    /// translating every service.
    fn build(&self, locality: &NodeLocality) -> ResourceSet {
        let base = self.base.lock().ok().and_then(|mut base| {
            let base = base.as_mut()?;
            Some((base.snapshot.clone(), base.sets.remove(locality)?))
        });
        let Some((before, set)) = base else {
            return translate(&self.snapshot, self.policies.as_ref(), locality);
        };
        let (removed, added) = changed_services(&before, &self.snapshot);
        let removed = translate_services(removed.values(), self.policies.as_ref(), locality);
        let added = translate_services(added.values(), self.policies.as_ref(), locality);
        set.updated(&removed, &added)
    }
}

/// Services of `before` that are gone or changed in `after`, and services of `after` that are
/// new or changed. Unchanged services are the same `Arc` in both (the model store shares them),
/// so this is a pointer comparison per service.
fn changed_services(before: &Snapshot, after: &Snapshot) -> (ServiceMap, ServiceMap) {
    let differs =
        |a: &Arc<Service>, b: Option<&Arc<Service>>| b.is_none_or(|b| !Arc::ptr_eq(a, b) && a != b);
    let removed = before
        .services
        .iter()
        .filter(|(host, service)| differs(service, after.services.get(*host)))
        .map(|(host, service)| (host.clone(), service.clone()))
        .collect();
    let added = after
        .services
        .iter()
        .filter(|(host, service)| differs(service, before.services.get(*host)))
        .map(|(host, service)| (host.clone(), service.clone()))
        .collect();
    (removed, added)
}

type ServiceMap = BTreeMap<Arc<str>, Arc<Service>>;

/// A connected client, for `/debug/xds`.
#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    /// The node id it sent.
    pub node_id: String,
    /// `sotw` or `delta`.
    pub protocol: &'static str,
    /// Its locality, `region/zone`.
    pub locality: String,
    /// Per type URL: subscription, versions, last NACK.
    pub types: BTreeMap<String, TypeStatus>,
}

/// Connected clients by stream id.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, ClientInfo>>,
}

impl ClientRegistry {
    /// A copy of every connected client.
    pub fn list(&self) -> Vec<ClientInfo> {
        self.clients
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    fn update(&self, id: u64, info: ClientInfo) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(id, info);
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.remove(&id);
        }
    }
}

/// The two ADS variants behind one stream loop.
trait Machine: Default + Send + 'static {
    type Req: Send + 'static;
    type Resp: Send + 'static;
    const PROTOCOL: &'static str;
    fn node(request: &Self::Req) -> Option<&Node>;
    fn type_url(request: &Self::Req) -> &str;
    fn response_type(response: &Self::Resp) -> &str;
    fn request(
        &mut self,
        request: &Self::Req,
        resources: &ResourceSet,
    ) -> (RequestKind, Option<Self::Resp>);
    fn update(&mut self, resources: &ResourceSet) -> Vec<Self::Resp>;
    fn status(&self) -> BTreeMap<String, TypeStatus>;
}

impl Machine for SotwConnection {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    const PROTOCOL: &'static str = "sotw";
    fn node(request: &Self::Req) -> Option<&Node> {
        request.node.as_ref()
    }
    fn type_url(request: &Self::Req) -> &str {
        &request.type_url
    }
    fn response_type(response: &Self::Resp) -> &str {
        &response.type_url
    }
    fn request(&mut self, r: &Self::Req, s: &ResourceSet) -> (RequestKind, Option<Self::Resp>) {
        self.handle_request(r, s)
    }
    fn update(&mut self, s: &ResourceSet) -> Vec<Self::Resp> {
        self.handle_update(s)
    }
    fn status(&self) -> BTreeMap<String, TypeStatus> {
        SotwConnection::status(self)
    }
}

impl Machine for DeltaConnection {
    type Req = DeltaDiscoveryRequest;
    type Resp = DeltaDiscoveryResponse;
    const PROTOCOL: &'static str = "delta";
    fn node(request: &Self::Req) -> Option<&Node> {
        request.node.as_ref()
    }
    fn type_url(request: &Self::Req) -> &str {
        &request.type_url
    }
    fn response_type(response: &Self::Resp) -> &str {
        &response.type_url
    }
    fn request(&mut self, r: &Self::Req, s: &ResourceSet) -> (RequestKind, Option<Self::Resp>) {
        self.handle_request(r, s)
    }
    fn update(&mut self, s: &ResourceSet) -> Vec<Self::Resp> {
        self.handle_update(s)
    }
    fn status(&self) -> BTreeMap<String, TypeStatus> {
        DeltaConnection::status(self)
    }
}

/// The ADS service.
#[derive(Debug, Clone)]
pub struct AdsServer {
    state: watch::Receiver<Arc<XdsState>>,
    clients: Arc<ClientRegistry>,
    metrics: Arc<XdsMetrics>,
}

impl AdsServer {
    /// A server publishing `state`.
    pub fn new(
        state: watch::Receiver<Arc<XdsState>>,
        clients: Arc<ClientRegistry>,
        metrics: Arc<XdsMetrics>,
    ) -> Self {
        Self {
            state,
            clients,
            metrics,
        }
    }

    fn spawn<M: Machine>(
        &self,
        inbound: Streaming<M::Req>,
    ) -> ReceiverStream<Result<M::Resp, Status>>
    where
        M::Req: prost::Message + Default,
    {
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        tokio::spawn(run_stream::<M>(
            inbound,
            tx,
            self.state.clone(),
            self.clients.clone(),
            self.metrics.clone(),
        ));
        ReceiverStream::new(rx)
    }
}

/// Removes the client from the registry however the stream ends.
struct Registration {
    id: u64,
    clients: Arc<ClientRegistry>,
    metrics: Arc<XdsMetrics>,
    protocol: &'static str,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.remove(self.id);
        self.metrics.disconnected(self.protocol);
    }
}

async fn run_stream<M: Machine>(
    mut inbound: Streaming<M::Req>,
    tx: mpsc::Sender<Result<M::Resp, Status>>,
    mut state: watch::Receiver<Arc<XdsState>>,
    clients: Arc<ClientRegistry>,
    metrics: Arc<XdsMetrics>,
) where
    M::Req: prost::Message + Default,
{
    let registration = Registration {
        id: clients.next_id.fetch_add(1, Ordering::Relaxed),
        clients: clients.clone(),
        metrics: metrics.clone(),
        protocol: M::PROTOCOL,
    };
    metrics.connected(M::PROTOCOL);
    let mut machine = M::default();
    let mut node_id = String::new();
    let mut locality = NodeLocality::default();
    let mut current = state.borrow_and_update().clone();
    loop {
        tokio::select! {
            message = inbound.message() => {
                let request = match message {
                    Ok(Some(request)) => request,
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(node = %node_id, %status, "xDS stream ended");
                        return;
                    }
                };
                if let Some(node) = M::node(&request) {
                    node_id.clone_from(&node.id);
                    if let Some(l) = &node.locality {
                        locality = NodeLocality { region: l.region.clone(), zone: l.zone.clone() };
                    }
                }
                let resources = current.resources_for(&locality);
                let type_url = M::type_url(&request).to_owned();
                let (kind, response) = machine.request(&request, &resources);
                if let RequestKind::Nack(message) = &kind {
                    tracing::warn!(node = %node_id, type_url, %message, "xDS NACK");
                    metrics.nack(&type_url);
                }
                if let Some(response) = response {
                    metrics.push(M::response_type(&response), None);
                    if tx.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
            }
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                current = state.borrow_and_update().clone();
                let resources = current.resources_for(&locality);
                for response in machine.update(&resources) {
                    metrics.push(M::response_type(&response), current.snapshot().oldest_change);
                    if tx.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
            }
        }
        clients.update(
            registration.id,
            ClientInfo {
                node_id: node_id.clone(),
                protocol: M::PROTOCOL,
                locality: format!("{}/{}", locality.region, locality.zone),
                types: machine.status(),
            },
        );
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(
            self.spawn::<SotwConnection>(request.into_inner()),
        ))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(
            self.spawn::<DeltaConnection>(request.into_inner()),
        ))
    }
}

#[cfg(test)]
mod tests;
