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
    /// A 128-bit hash of name and version, summed into the type version (see
    /// [`TypeResources::version`]).
    fingerprint: u128,
}

impl XdsResource {
    /// Wraps a packed resource, hashing its bytes for the version.
    pub fn new(name: impl Into<String>, body: Any) -> Self {
        let digest = Sha256::new()
            .chain_update(body.type_url.as_bytes())
            .chain_update(&body.value)
            .finalize();
        let name = name.into();
        let version = hex16(&digest);
        let fingerprint = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([0])
            .chain_update(version.as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&fingerprint[..16]);
        Self {
            name,
            version,
            body,
            fingerprint: u128::from_le_bytes(bytes),
        }
    }
}

/// The first 8 bytes of a digest as 16 hex digits: the form of every version the bridge publishes.
pub(crate) fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// How many shards a [`ResourceMap`] has: an update copies one shard, about 1/64 of the type.
const SHARDS: usize = 64;

/// Resources by name, in [`SHARDS`] copy-on-write shards chosen by a fixed hash of the name.
///
/// Cloning is 64 pointer copies and changing one resource copies one shard, so building the next
/// resource set from the previous one costs O(changed × shard size), not O(resources): with
/// 10,000 services, a plain map cost a copy of every name per type, locality and change.
/// Iteration goes shard by shard, each in name order: the same for every replica (the hash is
/// fixed), but not globally sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceMap {
    shards: Vec<Arc<BTreeMap<String, Arc<XdsResource>>>>,
}

impl Default for ResourceMap {
    fn default() -> Self {
        let empty = Arc::new(BTreeMap::new());
        Self {
            shards: vec![empty; SHARDS],
        }
    }
}

/// FNV-1a: fixed across processes and versions, unlike the standard library's hasher.
fn shard_of(name: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // The modulus is below 64: the cast cannot truncate.
    (hash % SHARDS as u64) as usize
}

impl ResourceMap {
    /// The resource `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<XdsResource>> {
        self.shards[shard_of(name)].get(name)
    }

    /// Whether `name` is present.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn insert(&mut self, name: String, resource: Arc<XdsResource>) -> Option<Arc<XdsResource>> {
        Arc::make_mut(&mut self.shards[shard_of(&name)]).insert(name, resource)
    }

    fn remove(&mut self, name: &str) -> Option<Arc<XdsResource>> {
        let shard = &mut self.shards[shard_of(name)];
        if !shard.contains_key(name) {
            return None;
        }
        Arc::make_mut(shard).remove(name)
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.is_empty())
    }

    /// Every name (see the type's documentation for the order).
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.shards.iter().flat_map(|s| s.keys())
    }

    /// Every resource with its name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<XdsResource>)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

impl std::ops::Index<&str> for ResourceMap {
    type Output = Arc<XdsResource>;

    /// Panics when `name` is absent, like `BTreeMap`'s index (tests only).
    fn index(&self, name: &str) -> &Arc<XdsResource> {
        &self.shards[shard_of(name)][name]
    }
}

/// All resources of one type.
#[derive(Debug, Clone, Default)]
pub struct TypeResources {
    /// Resources by name.
    pub resources: ResourceMap,
    /// The wrapping sum of every resource's fingerprint: the type version, kept up to date in
    /// O(1) per change (a hash over every resource would cost O(resources) per change).
    sum: u128,
}

impl PartialEq for TypeResources {
    fn eq(&self, other: &Self) -> bool {
        // The sum is derived from the resources, not part of the content.
        self.resources == other.resources
    }
}

impl TypeResources {
    fn put(&mut self, resource: Arc<XdsResource>) {
        self.sum = self.sum.wrapping_add(resource.fingerprint);
        if let Some(old) = self.resources.insert(resource.name.clone(), resource) {
            self.sum = self.sum.wrapping_sub(old.fingerprint);
        }
    }

    fn take(&mut self, name: &str) {
        if let Some(old) = self.resources.remove(name) {
            self.sum = self.sum.wrapping_sub(old.fingerprint);
        }
    }

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

    /// The version of every resource of this type: equal content gives equal versions on every
    /// replica, whatever order the resources were added in.
    pub fn version(&self) -> String {
        let folded = (self.sum as u64) ^ ((self.sum >> 64) as u64);
        format!("{folded:016x}")
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
        self.types
            .entry(type_url.to_owned())
            .or_default()
            .put(Arc::new(resource));
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
                for name in old.resources.keys() {
                    resources.take(name);
                }
            }
            changed
                .entry(type_url.clone())
                .or_default()
                .extend(old.resources.keys().cloned());
        }
        for (type_url, new) in &after.types {
            let resources = types.entry(type_url.clone()).or_default();
            for (_, resource) in new.resources.iter() {
                resources.put(resource.clone());
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
