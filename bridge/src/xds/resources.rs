//! Resources as the xDS server serves them: type URLs, one encoded resource with its content
//! version, and the set of all resources of all types at one moment.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use sha2::{Digest, Sha256};

/// Listener (LDS).
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// HTTP route configuration (RDS).
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Cluster (CDS).
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Endpoints (EDS).
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Dubbo route configuration, served as its own discovery type.
pub const DUBBO_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.RouteConfiguration";
/// Thrift route configuration, served as its own discovery type.
pub const THRIFT_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.RouteConfiguration";
/// Istio ServiceEntry over MCP.
pub const SERVICE_ENTRY: &str = "networking.istio.io/v1alpha3/ServiceEntry";

/// Whether a type is subscribed to by wildcard when a client names no resources (LDS, CDS and
/// MCP types); for the others an empty name list means "nothing".
pub fn is_wildcard_type(type_url: &str) -> bool {
    matches!(type_url, LISTENER | CLUSTER | SERVICE_ENTRY)
}

/// One encoded resource.
#[derive(Debug, Clone, PartialEq)]
pub struct XdsResource {
    /// Resource name.
    pub name: String,
    /// Content version: a hash of the encoded bytes.
    pub version: String,
    /// The resource, packed.
    pub body: Any,
}

impl XdsResource {
    /// Wraps a packed resource, hashing its bytes for the version.
    pub fn new(name: impl Into<String>, body: Any) -> Self {
        let digest = Sha256::new()
            .chain_update(body.type_url.as_bytes())
            .chain_update(&body.value)
            .finalize();
        Self {
            name: name.into(),
            version: hex16(&digest),
            body,
        }
    }
}

/// The first 8 bytes of a digest as 16 hex digits: the form of every version the bridge publishes.
pub(crate) fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// All resources of one type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeResources {
    /// Resources by name.
    pub resources: BTreeMap<String, Arc<XdsResource>>,
}

impl TypeResources {
    /// The version of the given subset of resources (names in order, with their versions); the
    /// SotW version a client sees for its subscription.
    pub fn version_of<'a>(&self, names: impl Iterator<Item = &'a String>) -> String {
        let mut hasher = Sha256::new();
        for name in names {
            if let Some(resource) = self.resources.get(name) {
                hasher.update(name.as_bytes());
                hasher.update([0]);
                hasher.update(resource.version.as_bytes());
                hasher.update([0]);
            }
        }
        hex16(&hasher.finalize())
    }

    /// The version of every resource of this type.
    pub fn version(&self) -> String {
        self.version_of(self.resources.keys())
    }
}

/// Every resource of every type, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSet {
    types: BTreeMap<String, TypeResources>,
}

impl ResourceSet {
    /// Adds a resource of `type_url`.
    pub fn insert(&mut self, type_url: &str, resource: XdsResource) {
        self.types
            .entry(type_url.to_owned())
            .or_default()
            .resources
            .insert(resource.name.clone(), Arc::new(resource));
    }

    /// The resources of a type (empty when there are none).
    pub fn of_type(&self, type_url: &str) -> &TypeResources {
        static EMPTY: std::sync::OnceLock<TypeResources> = std::sync::OnceLock::new();
        self.types
            .get(type_url)
            .unwrap_or_else(|| EMPTY.get_or_init(TypeResources::default))
    }

    /// The type URLs present.
    pub fn type_urls(&self) -> BTreeSet<&str> {
        self.types.keys().map(String::as_str).collect()
    }
}
