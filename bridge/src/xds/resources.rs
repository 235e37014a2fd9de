//! Resources as the xDS server serves them: type URLs, one encoded resource with its content
//! version, and the set of all resources of all types at one moment.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

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
#[derive(Debug, Clone, Default)]
pub struct TypeResources {
    /// Resources by name.
    pub resources: BTreeMap<String, Arc<XdsResource>>,
    /// [`Self::version`], computed once: it hashes every resource of the type, and every delta
    /// response carries it, so recomputing it per response cost O(resources) per client per
    /// change. Cleared by [`ResourceSet::insert`]; code that edits `resources` directly must
    /// not have asked for the version before.
    version: OnceLock<String>,
}

impl PartialEq for TypeResources {
    fn eq(&self, other: &Self) -> bool {
        // The memoised version is derived from the resources, not part of the content.
        self.resources == other.resources
    }
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
        self.version
            .get_or_init(|| self.version_of(self.resources.keys()))
            .clone()
    }
}

/// Source of [`ResourceSet`] generations (0 is never handed out).
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Names per type URL.
pub type NamesByType = BTreeMap<String, BTreeSet<String>>;

/// Every resource of every type, at one moment.
///
/// Each set has a generation, unique to its content in this process (any edit gives it a new
/// one), and a set built incrementally from another one ([`Self::updated`]) records which names
/// differ from it, so a stream that was up to date with the base looks at those names only
/// instead of every resource.
#[derive(Debug, Clone)]
pub struct ResourceSet {
    types: BTreeMap<String, TypeResources>,
    generation: u64,
    /// (base generation, names added, changed or removed since the base).
    changes: Option<(u64, Arc<NamesByType>)>,
}

impl Default for ResourceSet {
    fn default() -> Self {
        Self {
            types: BTreeMap::new(),
            generation: next_generation(),
            changes: None,
        }
    }
}

impl PartialEq for ResourceSet {
    fn eq(&self, other: &Self) -> bool {
        // Generations and change lists say how a set was built, not what it holds.
        self.types == other.types
    }
}

impl ResourceSet {
    /// Adds a resource of `type_url`.
    pub fn insert(&mut self, type_url: &str, resource: XdsResource) {
        let resources = self.types.entry(type_url.to_owned()).or_default();
        resources.version.take();
        resources
            .resources
            .insert(resource.name.clone(), Arc::new(resource));
        self.generation = next_generation();
        self.changes = None;
    }

    /// This set with the resources of `before` removed and those of `after` added: how a set is
    /// updated when only some services changed (`before` and `after` being those services'
    /// resources in the old and the new model). The result remembers the names that changed.
    pub fn updated(&self, before: &ResourceSet, after: &ResourceSet) -> ResourceSet {
        let mut types = self.types.clone();
        let mut changed = NamesByType::new();
        for (type_url, old) in &before.types {
            if let Some(resources) = types.get_mut(type_url) {
                resources.version.take();
                for name in old.resources.keys() {
                    resources.resources.remove(name);
                }
            }
            changed
                .entry(type_url.clone())
                .or_default()
                .extend(old.resources.keys().cloned());
        }
        for (type_url, new) in &after.types {
            let resources = types.entry(type_url.clone()).or_default();
            resources.version.take();
            for (name, resource) in &new.resources {
                resources.resources.insert(name.clone(), resource.clone());
            }
            changed
                .entry(type_url.clone())
                .or_default()
                .extend(new.resources.keys().cloned());
        }
        // A type left empty is absent, as in a set built from scratch.
        types.retain(|_, resources| !resources.resources.is_empty());
        ResourceSet {
            types,
            generation: next_generation(),
            changes: Some((self.generation, Arc::new(changed))),
        }
    }

    /// Identifies this content (see the type's documentation).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The names that may differ from the set of generation `base`, per type; `None` when this
    /// set was not built from that one (then everything may differ).
    pub fn changed_since(&self, base: u64) -> Option<&NamesByType> {
        match &self.changes {
            Some((from, names)) if *from == base => Some(names),
            _ => None,
        }
    }

    /// The resources of a type (empty when there are none).
    pub fn of_type(&self, type_url: &str) -> &TypeResources {
        static EMPTY: OnceLock<TypeResources> = OnceLock::new();
        self.types
            .get(type_url)
            .unwrap_or_else(|| EMPTY.get_or_init(TypeResources::default))
    }

    /// The type URLs present.
    pub fn type_urls(&self) -> BTreeSet<&str> {
        self.types.keys().map(String::as_str).collect()
    }
}
