//! The model store: folds registry events into per-registry state and builds snapshots.
//!
//! It owns the safety rules of DESIGN.md §3. A provider removed by its registry disappears; a
//! registry that goes down keeps its last entries, marked stale; a service whose endpoints all
//! vanish while its registries are healthy is kept (marked draining) for a grace period before it
//! is removed. Only services touched since the last build are rebuilt, so a snapshot after one
//! provider change costs one service, not the whole estate.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::derive::{DeriveConfig, Derived};
use crate::model::filter::Filter;
use crate::model::provider::{Protocol, Provider, ServiceRef};
use crate::model::snapshot::{
    DubboIdentity, Endpoint, RegistryStatus, Service, ServicePort, Snapshot,
};
use crate::registry::{RegistryEvent, RegistryMessage};

/// An entry key's identity: a 128-bit hash of the registry's key (a znode path or etcd key is an
/// encoded URL of hundreds of bytes; keeping it per provider would dominate the model's memory).
type KeyId = u128;

fn key_id(key: &str) -> KeyId {
    use std::hash::{Hash, Hasher};
    let half = |seed: u8| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut hasher);
        key.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// One registry's entries and reachability.
#[derive(Debug, Default)]
struct RegistryState {
    entries: HashMap<KeyId, Entry>,
    /// Keys upserted since a streamed resync began; `None` outside one.
    resync_seen: Option<HashSet<KeyId>>,
    up: bool,
    listed: bool,
    malformed: u64,
}

/// What the store keeps of a provider: only what snapshots need. The raw parameters are not
/// kept (they are most of a provider's size); a fingerprint of them detects no-op updates.
#[derive(Debug, Clone)]
struct Entry {
    fingerprint: u64,
    service: Arc<ServiceRef>,
    address: String,
    port: u16,
    protocol: Protocol,
    healthy: bool,
    methods: Option<Box<str>>,
    derived: Derived,
}

impl Entry {
    fn new(provider: Provider, derived: Derived) -> Self {
        Self {
            fingerprint: fingerprint(&provider),
            methods: provider.params.get("methods").map(|m| m.as_str().into()),
            service: Arc::new(provider.service),
            address: provider.host,
            port: provider.port,
            protocol: provider.protocol,
            healthy: provider.healthy,
            derived,
        }
    }
}

fn fingerprint(provider: &Provider) -> u64 {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same provider gives the same fingerprint in every process.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    provider.hash(&mut hasher);
    hasher.finish()
}

#[derive(Debug, Default)]
struct ServiceState {
    /// (registry, entry key) of every provider of this service.
    members: BTreeSet<(Arc<str>, KeyId)>,
    built: Option<(Arc<Service>, [u8; 32])>,
    empty_since: Option<Instant>,
}

/// What the store counts, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Whether the event changed anything a snapshot shows.
    pub changed: bool,
}

/// Identical label maps shared by every endpoint that has them: the providers of one interface
/// usually carry the same labels once volatile ones are dropped, so this divides label memory by
/// the replica count. Maps nobody else holds are pruned as the pool doubles.
#[derive(Debug, Default)]
struct LabelPool {
    maps: HashSet<Arc<BTreeMap<String, String>>>,
    prune_at: usize,
}

impl LabelPool {
    fn intern(&mut self, labels: Arc<BTreeMap<String, String>>) -> Arc<BTreeMap<String, String>> {
        if let Some(shared) = self.maps.get(labels.as_ref()) {
            return shared.clone();
        }
        self.maps.insert(labels.clone());
        if self.maps.len() > self.prune_at {
            self.maps.retain(|m| Arc::strong_count(m) > 1);
            self.prune_at = (self.maps.len() * 2).max(1024);
        }
        labels
    }
}

/// Registry state plus the last built services.
#[derive(Debug)]
pub struct ModelStore {
    labels: LabelPool,
    derive: DeriveConfig,
    filter: Filter,
    drop_to_zero_grace: Duration,
    registries: BTreeMap<Arc<str>, RegistryState>,
    services: HashMap<String, ServiceState>,
    dirty: HashSet<String>,
    /// What the last snapshot published, kept across builds and updated for touched services
    /// only: a snapshot then costs map nodes and reference counts, not a copy of every host.
    published: BTreeMap<Arc<str>, (Arc<Service>, [u8; 32])>,
}

impl ModelStore {
    /// An empty store. `registries` are the configured names, reported down until they list.
    pub fn new(
        derive: DeriveConfig,
        filter: Filter,
        drop_to_zero_grace: Duration,
        registries: &[&str],
    ) -> Self {
        Self {
            labels: LabelPool::default(),
            derive,
            filter,
            drop_to_zero_grace,
            registries: registries
                .iter()
                .map(|name| (Arc::from(*name), RegistryState::default()))
                .collect(),
            services: HashMap::new(),
            dirty: HashSet::new(),
            published: BTreeMap::new(),
        }
    }

    /// Folds one adapter event into the state.
    pub fn apply(&mut self, message: RegistryMessage) -> ApplyOutcome {
        let registry = message.registry;
        let dirty_before = self.dirty.len();
        match message.event {
            RegistryEvent::Resync(entries) => {
                let current: HashSet<KeyId> = entries.keys().map(|k| key_id(k)).collect();
                let old_ids: Vec<KeyId> = self
                    .registry_mut(&registry)
                    .entries
                    .keys()
                    .filter(|id| !current.contains(*id))
                    .copied()
                    .collect();
                for id in old_ids {
                    self.remove_id(&registry, id);
                }
                for (key, provider) in entries {
                    self.upsert(&registry, key, provider);
                }
            }
            RegistryEvent::ResyncBegin => {
                self.registry_mut(&registry).resync_seen = Some(HashSet::new());
            }
            RegistryEvent::ResyncEnd => {
                let state = self.registry_mut(&registry);
                if let Some(seen) = state.resync_seen.take() {
                    let stale: Vec<KeyId> = state
                        .entries
                        .keys()
                        .filter(|id| !seen.contains(*id))
                        .copied()
                        .collect();
                    for id in stale {
                        self.remove_id(&registry, id);
                    }
                }
            }
            RegistryEvent::Upsert(key, provider) => self.upsert(&registry, key, provider),
            RegistryEvent::Remove(key) => self.remove_id(&registry, key_id(&key)),
            RegistryEvent::Up | RegistryEvent::Down => {
                let up = matches!(message.event, RegistryEvent::Up);
                let state = self.registry_mut(&registry);
                state.listed |= up;
                if state.up != up {
                    state.up = up;
                    let hosts: Vec<String> = state
                        .entries
                        .values()
                        .map(|e| e.derived.host.clone())
                        .collect();
                    self.dirty.extend(hosts);
                    // Reachability is visible in the snapshot even when no service changes.
                    return ApplyOutcome { changed: true };
                }
            }
            RegistryEvent::Malformed { .. } => {
                self.registry_mut(&registry).malformed += 1;
                // The count is part of the published registry status.
                return ApplyOutcome { changed: true };
            }
        }
        ApplyOutcome {
            changed: self.dirty.len() != dirty_before,
        }
    }

    fn registry_mut(&mut self, registry: &Arc<str>) -> &mut RegistryState {
        self.registries.entry(registry.clone()).or_default()
    }

    fn upsert(&mut self, registry: &Arc<str>, key: String, provider: Provider) {
        let key = key_id(&key);
        if let Some(seen) = &mut self.registry_mut(registry).resync_seen {
            seen.insert(key);
        }
        if !self.filter.admits(&provider) {
            // A provider that stops being admitted (e.g. its group changed) must leave.
            self.remove_id(registry, key);
            return;
        }
        let state = self.registry_mut(registry);
        if let Some(old) = state.entries.get(&key)
            && old.fingerprint == fingerprint(&provider)
        {
            return;
        }
        let mut derived = self.derive.derive(&provider, registry);
        derived.labels = self.labels.intern(derived.labels);
        let host = derived.host.clone();
        let state = self.registry_mut(registry);
        let old = state.entries.insert(key, Entry::new(provider, derived));
        if let Some(old) = old
            && old.derived.host != host
        {
            self.leave(&old.derived.host, registry, key);
        }
        let service = self.services.entry(host.clone()).or_default();
        service.members.insert((registry.clone(), key));
        self.dirty.insert(host);
    }

    fn remove_id(&mut self, registry: &Arc<str>, key: KeyId) {
        if let Some(old) = self.registry_mut(registry).entries.remove(&key) {
            self.leave(&old.derived.host, registry, key);
        }
    }

    fn leave(&mut self, host: &str, registry: &Arc<str>, key: KeyId) {
        if let Some(service) = self.services.get_mut(host) {
            service.members.remove(&(registry.clone(), key));
            self.dirty.insert(host.to_owned());
        }
    }

    /// Rebuilds what changed and returns the snapshot, plus the earliest instant at which a
    /// draining service's grace ends (build again then).
    pub fn build(&mut self, now: Instant) -> (Snapshot, Option<Instant>) {
        let mut next_deadline: Option<Instant> = None;
        let dirty: Vec<String> = self.dirty.drain().collect();
        for host in dirty {
            self.rebuild(&host, now, &mut next_deadline);
            self.sync_published(&host);
        }
        // Services still draining from earlier builds keep their deadlines.
        for (host, state) in &self.services {
            if let (Some(since), Some((service, _))) = (state.empty_since, &state.built)
                && service.draining
            {
                let deadline = since + self.drop_to_zero_grace;
                if deadline <= now {
                    self.dirty.insert(host.clone());
                }
                next_deadline = Some(next_deadline.map_or(deadline, |d| d.min(deadline)));
            }
        }
        if !self.dirty.is_empty() {
            // Expired graces found above: remove them now rather than waiting for an event.
            return self.build(now);
        }
        let registries = self
            .registries
            .iter()
            .map(|(name, state)| {
                (
                    name.to_string(),
                    RegistryStatus {
                        up: state.up,
                        listed: state.listed,
                        providers: state.entries.len(),
                        malformed: state.malformed,
                    },
                )
            })
            .collect();
        (Snapshot::new(&self.published, registries), next_deadline)
    }

    /// Rebuilds one touched service, applying the drop-to-zero grace.
    fn rebuild(&mut self, host: &str, now: Instant, next_deadline: &mut Option<Instant>) {
        let fresh = self.build_service(host);
        let grace = self.drop_to_zero_grace;
        let Some(state) = self.services.get_mut(host) else {
            return;
        };
        match fresh {
            Some(service) => {
                let hash = service.content_hash();
                state.built = Some((Arc::new(service), hash));
                state.empty_since = None;
            }
            None => {
                let had_endpoints = state
                    .built
                    .as_ref()
                    .is_some_and(|(s, _)| !s.endpoints.is_empty());
                let since = *state.empty_since.get_or_insert(now);
                if had_endpoints && now < since + grace {
                    if let Some((previous, _)) = &state.built
                        && !previous.draining
                    {
                        let mut draining = Service::clone(previous);
                        draining.draining = true;
                        let hash = draining.content_hash();
                        state.built = Some((Arc::new(draining), hash));
                    }
                    let deadline = since + grace;
                    *next_deadline = Some(next_deadline.map_or(deadline, |d| d.min(deadline)));
                    // Stay dirty-able: the caller builds again at the deadline.
                } else {
                    self.services.remove(host);
                }
            }
        }
    }

    /// Brings the published map in line with one service's current build.
    fn sync_published(&mut self, host: &str) {
        match self.services.get(host).and_then(|s| s.built.clone()) {
            Some(built) => match self.published.get_mut(host) {
                Some(slot) => *slot = built,
                None => {
                    self.published.insert(Arc::from(host), built);
                }
            },
            None => {
                self.published.remove(host);
            }
        }
    }

    /// Builds one service from its members, or `None` when it has no endpoints.
    fn build_service(&self, host: &str) -> Option<Service> {
        let state = self.services.get(host)?;
        let mut entries: Vec<(&Arc<str>, &Entry)> = state
            .members
            .iter()
            .filter_map(|(registry, key)| {
                let entry = self.registries.get(registry)?.entries.get(key)?;
                Some((registry, entry))
            })
            .collect();
        if entries.is_empty() {
            return None;
        }
        // Members are ordered by (registry, key): the first registry naming an address wins.
        entries.sort_by(|a, b| (a.0, &a.1.address).cmp(&(b.0, &b.1.address)));
        let (_, first) = entries.first()?;
        let ports = service_ports(entries.iter().map(|(_, e)| (e.protocol, e.port)));
        let mut seen = HashSet::new();
        let mut endpoints = Vec::with_capacity(entries.len());
        let mut registries = BTreeSet::new();
        let mut stale = BTreeSet::new();
        let mut methods = BTreeSet::new();
        for (registry, entry) in &entries {
            if !seen.insert((entry.address.as_str(), entry.port)) {
                continue;
            }
            registries.insert(registry.to_string());
            if !self.registries.get(*registry).is_some_and(|r| r.up) {
                stale.insert(registry.to_string());
            }
            if let Some(list) = &entry.methods {
                methods.extend(
                    list.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty() && *m != "*")
                        .map(str::to_owned),
                );
            }
            endpoints.push(Endpoint {
                address: entry.address.clone(),
                port: entry.port,
                port_name: port_name(entry.protocol).to_owned(),
                registry: registry.to_string(),
                weight: entry.derived.weight,
                healthy: entry.healthy,
                locality: entry.derived.locality.clone(),
                labels: entry.derived.labels.clone(),
            });
        }
        endpoints.sort();
        let (dubbo, name) = match first.service.as_ref() {
            ServiceRef::Dubbo {
                interface,
                group,
                version,
            } => (
                Some(DubboIdentity {
                    interface: interface.clone(),
                    group: group.clone(),
                    version: version.clone(),
                }),
                None,
            ),
            ServiceRef::Named(name) => (None, Some(name.clone())),
        };
        Some(Service {
            host: host.to_owned(),
            namespace: first.derived.namespace.clone(),
            dubbo,
            name,
            ports,
            endpoints,
            registries,
            stale_registries: stale,
            methods,
            draining: false,
        })
    }
}

/// The Istio-style port name for a protocol. Dubbo and Thrift use Aeraki's MetaProtocol names so
/// existing Aeraki rules keep matching; Triple is gRPC on the wire.
pub fn port_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Dubbo => "tcp-metaprotocol-dubbo",
        Protocol::Thrift => "tcp-metaprotocol-thrift",
        Protocol::Triple => "grpc-triple",
        Protocol::Grpc => "grpc",
        Protocol::Http => "http",
        Protocol::Tcp => "tcp",
    }
}

/// One port per protocol, numbered by the most common endpoint port (the lowest on a tie).
fn service_ports(endpoints: impl Iterator<Item = (Protocol, u16)>) -> Vec<ServicePort> {
    let mut counts: BTreeMap<Protocol, BTreeMap<u16, usize>> = BTreeMap::new();
    for (protocol, port) in endpoints {
        *counts.entry(protocol).or_default().entry(port).or_default() += 1;
    }
    counts
        .into_iter()
        .filter_map(|(protocol, ports)| {
            let (number, _) = ports
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
            Some(ServicePort {
                number: *number,
                name: port_name(protocol).to_owned(),
                protocol,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
