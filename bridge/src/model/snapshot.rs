//! Immutable, content-hashed views of the whole model that every output reads.
//!
//! A snapshot is a pure function of the registry state, the rules and the configuration, so two
//! bridges fed the same registries publish the same bytes under the same version. Versions are
//! SHA-256 hashes of the canonical JSON of each service, combined in host order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::provider::Protocol;

/// The Dubbo identity of a service, when it is a Dubbo interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DubboIdentity {
    /// Exact interface name (case preserved).
    pub interface: String,
    /// Dubbo service group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Dubbo service version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A service port: one per protocol the service's endpoints speak.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ServicePort {
    /// Port number clients address (the most common endpoint port for this protocol).
    pub number: u16,
    /// Istio-style port name (`tcp-metaprotocol-dubbo`, `grpc`, `http`, …).
    pub name: String,
    /// The protocol.
    pub protocol: Protocol,
}

/// One endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    /// Address (an IP in practice).
    pub address: String,
    /// Port the endpoint listens on.
    pub port: u16,
    /// Name of the service port this endpoint serves.
    pub port_name: String,
    /// The registry it came from.
    pub registry: String,
    /// Load-balancing weight.
    pub weight: u32,
    /// Whether the registry reports it healthy and enabled.
    pub healthy: bool,
    /// `region/zone[/subzone]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Labels (valid Kubernetes labels), shared with the model store.
    pub labels: Arc<BTreeMap<String, String>>,
}

/// A service as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// DNS-safe host.
    pub host: String,
    /// Kubernetes namespace of its resources.
    pub namespace: String,
    /// Dubbo identity, for Dubbo interfaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dubbo: Option<DubboIdentity>,
    /// Service name for non-Dubbo services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ports, sorted.
    pub ports: Vec<ServicePort>,
    /// Endpoints, sorted by address and port.
    pub endpoints: Vec<Endpoint>,
    /// Registries contributing endpoints.
    pub registries: BTreeSet<String>,
    /// Contributing registries that are currently unreachable (their endpoints are last known).
    pub stale_registries: BTreeSet<String>,
    /// Methods the providers advertise (Dubbo `methods`), for bounded metric labels.
    pub methods: BTreeSet<String>,
    /// Set while the service has lost every endpoint but is kept for the drop-to-zero grace.
    pub draining: bool,
}

impl Service {
    /// The SHA-256 of the service's canonical JSON.
    pub fn content_hash(&self) -> [u8; 32] {
        // Serialising plain structs with BTree collections cannot fail; an empty hash input on
        // the impossible error path still yields a deterministic value.
        let json = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&json).into()
    }
}

/// Reachability of one registry as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryStatus {
    /// Whether the adapter is connected and has listed the registry.
    pub up: bool,
    /// Whether the registry has been listed at least once since the bridge started.
    pub listed: bool,
    /// Providers currently known from it.
    pub providers: usize,
    /// Malformed entries skipped since start.
    pub malformed: u64,
}

/// Everything the outputs publish, at one version.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Content hash of all services (hex, 16 characters).
    pub version: String,
    /// Services by host (hosts shared with the model store, so a snapshot copies no strings).
    pub services: BTreeMap<Arc<str>, Arc<Service>>,
    /// Registry reachability by name (not part of the version).
    pub registries: BTreeMap<String, RegistryStatus>,
    /// When the oldest registry change in this snapshot was observed, for push-latency metrics.
    /// Not content: ignored by equality and serialisation.
    #[serde(skip)]
    pub oldest_change: Option<tokio::time::Instant>,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.services == other.services
            && self.registries == other.registries
    }
}

impl Eq for Snapshot {}

impl Snapshot {
    /// Builds a snapshot, computing the version from the services' hashes.
    pub fn new(
        services: &BTreeMap<Arc<str>, (Arc<Service>, [u8; 32])>,
        registries: BTreeMap<String, RegistryStatus>,
    ) -> Self {
        let mut hasher = Sha256::new();
        for (host, (_, hash)) in services {
            hasher.update(host.as_bytes());
            hasher.update([0]);
            hasher.update(hash);
        }
        let digest = hasher.finalize();
        let version = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Self {
            version,
            services: services
                .iter()
                .map(|(h, (s, _))| (h.clone(), s.clone()))
                .collect(),
            registries,
            oldest_change: None,
        }
    }

    /// Total endpoints over all services.
    pub fn endpoint_count(&self) -> usize {
        self.services.values().map(|s| s.endpoints.len()).sum()
    }
}
