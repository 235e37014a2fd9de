//! The Nacos adapter (2.x/3.x, through nacos-sdk's gRPC client): Dubbo interface-level services
//! named `providers:<interface>:<version>:<group>` and plain (Spring Cloud) services, in one
//! namespace and the configured groups (PROTOCOLS.md §5.3).
//!
//! This module owns turning one Nacos namespace into registry events. Nacos cannot watch the
//! service list, so each group's list is polled; every service found is subscribed once, with a
//! listener that forwards the SDK's pushes (a complete instance list per service) into this
//! adapter, which reports the difference to what it last reported for that service. Services
//! that leave the list have their instances removed. A full re-read of every subscribed service
//! is sent as a resync after the first listing, after an outage, after a lost push and
//! periodically. When Nacos stops answering the registry is reported down (once) and the model
//! keeps the last known instances.
//!
//! nacos-sdk 0.8.3 does not reliably recover from a server restart on the same address: its gRPC
//! channel reconnects underneath it, the new server answers every request with "connection is
//! unregistered" (301), and those answers count as activity, so the idle-time health check that
//! would set the connection up again never runs while requests keep flowing. So when the server
//! says 301, or an outage outlasts [`REBUILD_AFTER`], this adapter builds a fresh client,
//! subscribes everything again on it and retires the old one in the background.
//!
//! Two SDK defaults are overridden on purpose: empty-push protection (it would ignore the push
//! that says the last instance left, keeping deleted providers forever) and environment-first
//! settings (`NACOS_CLIENT_*` variables must not silently override the registry URL).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use nacos_sdk::api::naming::{
    NamingChangeEvent, NamingEventListener, NamingService, NamingServiceBuilder, ServiceInstance,
};
use nacos_sdk::api::props::ClientProps;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::model::provider::{Protocol, Provider, RegistryScope, ServiceRef};
use crate::registry::source::NacosSource;
use crate::registry::{EventSink, RegistryEvent, StoreClosed};

/// First delay between attempts to build a client while Nacos is unreachable.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);
/// Longest delay between those attempts (each failed attempt leaves an idle SDK task behind).
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(30);
/// How long building the client may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an outage may last before a fresh client is tried (see the module docs).
const REBUILD_AFTER: Duration = Duration::from_secs(15);
/// How long retiring a replaced client's subscriptions may take per service.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// Nacos' error code for a request on a connection the server does not know (it restarted).
const UNREGISTERED_CONNECTION: i32 = 301;
/// How long one request may take before Nacos counts as unreachable; while disconnected the SDK
/// waits for its own reconnection instead of failing.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Full re-read interval, on top of the one after every outage.
const RESYNC_INTERVAL: Duration = Duration::from_secs(300);
/// Service names per page of the service list.
const PAGE_SIZE: i32 = 500;
/// Instance queries a full re-read keeps in flight.
const QUERY_CONCURRENCY: usize = 16;
/// Pushes buffered between the SDK's listener and this adapter.
const EVENT_BUFFER: usize = 1024;
/// First segments of Dubbo service names; only `providers` with exactly four segments is read.
const DUBBO_CATEGORIES: &[&str] = &["providers", "consumers", "configurators", "routers"];

/// What a Nacos service name says about its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ServiceKind {
    /// `providers:<interface>:<version>:<group>`, with empty segments kept.
    Dubbo {
        /// The interface, `$` restored (Dubbo writes inner-class `$` as `___`).
        interface: String,
        /// Dubbo version, possibly empty.
        version: String,
        /// Dubbo group, possibly empty.
        group: String,
    },
    /// Any other service: Spring Cloud and other plain registrations.
    Plain,
}

/// Classifies a service name; `None` for names this adapter skips: consumers, rules, and Dubbo's
/// legacy names without empty segments (Dubbo registers those next to the four-segment name when
/// asked to, and ignores them itself when listing).
fn classify_service(name: &str) -> Option<ServiceKind> {
    let segments: Vec<&str> = name.split(':').collect();
    match segments.as_slice() {
        ["providers", interface, version, group] if !interface.is_empty() => {
            Some(ServiceKind::Dubbo {
                interface: interface.replace("___", "$"),
                version: (*version).to_owned(),
                group: (*group).to_owned(),
            })
        }
        [first, _, ..] if DUBBO_CATEGORIES.contains(first) => None,
        _ => Some(ServiceKind::Plain),
    }
}

/// A service within the namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ServiceId {
    group: String,
    name: String,
}

impl ServiceId {
    /// Nacos sometimes reports names grouped (`GROUP@@name`); both forms give the same id.
    fn new(group: &str, name: &str) -> Self {
        let (group, name) = name.split_once("@@").unwrap_or((group, name));
        Self {
            group: group.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// The entry key of one instance: `<namespace>/<group>/<service>/<ip>:<port>`.
fn entry_key(namespace: &str, id: &ServiceId, instance: &ServiceInstance) -> String {
    format!(
        "{namespace}/{}/{}/{}:{}",
        id.group, id.name, instance.ip, instance.port
    )
}

/// Nacos weights are doubles around 1.0; the model's weights are integers around 100.
fn weight_percent(weight: f64) -> Option<u32> {
    // Float-to-int `as` saturates, and the range check keeps NaN and negatives out.
    (weight.is_finite() && weight >= 0.0).then(|| (weight * 100.0).round() as u32)
}

/// Turns one instance into a provider. `Ok(None)` for Dubbo 3 application-level instances: in
/// the default `register-mode=all` the same providers are also registered interface-level.
fn instance_provider(
    kind: &ServiceKind,
    service: &str,
    scope: &RegistryScope,
    instance: &ServiceInstance,
) -> Result<Option<Provider>, String> {
    let params: BTreeMap<String, String> = instance
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let port = u16::try_from(instance.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {} is out of range", instance.port))?;
    if instance.ip.trim().is_empty() {
        return Err("instance has no ip".to_owned());
    }
    let metadata = |key: &str| params.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let (service, protocol) = match kind {
        ServiceKind::Dubbo {
            interface,
            version,
            group,
        } => (
            ServiceRef::dubbo(interface, Some(group), Some(version)),
            metadata("protocol").map_or(Protocol::Dubbo, Protocol::from_scheme),
        ),
        ServiceKind::Plain if params.contains_key("dubbo.metadata.revision") => return Ok(None),
        ServiceKind::Plain => (
            ServiceRef::Named(service.to_owned()),
            metadata("protocol")
                .or_else(|| metadata("scheme"))
                .map_or(Protocol::Http, Protocol::from_scheme),
        ),
    };
    Ok(Some(Provider {
        service,
        protocol,
        host: instance.ip.clone(),
        port,
        params,
        scope: scope.clone(),
        registry_weight: weight_percent(instance.weight),
        healthy: instance.healthy && instance.enabled,
    }))
}

/// The providers of one service, by entry key, and the instances that could not be used.
type ServiceEntries = (BTreeMap<String, Provider>, Vec<(String, String)>);

fn service_entries(
    namespace: &str,
    id: &ServiceId,
    kind: &ServiceKind,
    instances: &[ServiceInstance],
) -> ServiceEntries {
    let scope = RegistryScope::Nacos {
        namespace: namespace.to_owned(),
        group: id.group.clone(),
    };
    let mut entries = BTreeMap::new();
    let mut malformed = Vec::new();
    for instance in instances {
        let key = entry_key(namespace, id, instance);
        match instance_provider(kind, &id.name, &scope, instance) {
            Ok(Some(provider)) => {
                entries.insert(key, provider);
            }
            Ok(None) => {}
            Err(reason) => malformed.push((key, reason)),
        }
    }
    (entries, malformed)
}

/// The events that turn `old` into `new`.
fn diff(old: &BTreeMap<String, Provider>, new: &BTreeMap<String, Provider>) -> Vec<RegistryEvent> {
    let removed = old
        .keys()
        .filter(|key| !new.contains_key(*key))
        .map(|key| RegistryEvent::Remove(key.clone()));
    let upserted = new
        .iter()
        .filter(|(key, provider)| old.get(*key) != Some(*provider))
        .map(|(key, provider)| RegistryEvent::Upsert(key.clone(), provider.clone()));
    removed.chain(upserted).collect()
}

/// Why reading Nacos failed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Closed(#[from] StoreClosed),
    #[error("nacos: {0}")]
    Client(#[from] nacos_sdk::api::error::Error),
    #[error("nacos did not answer within {0:?}")]
    Timeout(Duration),
}

/// Bounds one SDK call by `limit`.
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = nacos_sdk::api::error::Result<T>>,
) -> Result<T, ReadError> {
    tokio::time::timeout(limit, call)
        .await
        .map_err(|_| ReadError::Timeout(limit))?
        .map_err(ReadError::from)
}

/// Forwards the SDK's pushes into the adapter. The SDK calls it synchronously on its own
/// runtime, so it cannot wait for room: when the buffer is full the push is dropped and a flag
/// asks for a full re-read at the next poll.
struct Forwarder {
    registry: Arc<str>,
    sender: mpsc::Sender<Arc<NamingChangeEvent>>,
    overflowed: Arc<AtomicBool>,
}

impl NamingEventListener for Forwarder {
    fn event(&self, event: Arc<NamingChangeEvent>) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.sender.try_send(event) {
            self.overflowed.store(true, Ordering::Release);
            tracing::warn!(
                registry = %self.registry,
                "nacos push buffer full; re-reading every service at the next poll"
            );
        }
    }
}

/// Runs the adapter until the bridge shuts down.
pub async fn run(source: NacosSource, sink: EventSink) {
    let Ok(naming) = connect(&source, &sink).await else {
        return;
    };
    let (sender, events) = mpsc::channel(EVENT_BUFFER);
    let overflowed = Arc::new(AtomicBool::new(false));
    let listener: Arc<dyn NamingEventListener> = Arc::new(Forwarder {
        registry: Arc::from(sink.registry()),
        sender,
        overflowed: overflowed.clone(),
    });
    let mut adapter = Adapter {
        source,
        sink,
        naming,
        listener,
        events,
        overflowed,
        services: BTreeMap::new(),
        synced: false,
        reported_down: false,
        last_resync: Instant::now(),
        down_since: None,
        next_rebuild: Instant::now(),
        rebuild_backoff: RECONNECT_BACKOFF,
    };
    // `follow` only returns when the model store has gone away.
    let Err(StoreClosed) = adapter.follow().await;
}

/// Builds the SDK client, retrying with backoff (and reporting the registry down once) while
/// Nacos is unreachable.
async fn connect(source: &NacosSource, sink: &EventSink) -> Result<NamingService, StoreClosed> {
    let mut backoff = RECONNECT_BACKOFF;
    let mut reported_down = false;
    loop {
        match build(source, sink.registry()).await {
            Ok(naming) => {
                tracing::info!(registry = sink.registry(), server = %source.server_addr, "nacos connected");
                return Ok(naming);
            }
            Err(error) if reported_down => {
                tracing::debug!(registry = sink.registry(), %error, "nacos still unreachable");
            }
            Err(error) => {
                tracing::warn!(registry = sink.registry(), %error, "nacos unreachable; retrying");
                reported_down = true;
                sink.send(RegistryEvent::Down).await?;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
    }
}

/// Builds a client; it connects (and fails when Nacos is unreachable) before returning.
async fn build(source: &NacosSource, registry: &str) -> Result<NamingService, ReadError> {
    let mut builder = NamingServiceBuilder::new(client_props(source, registry));
    if source.username.is_some() {
        builder = builder.enable_auth_plugin_http();
    }
    within(CONNECT_TIMEOUT, builder.build()).await
}

/// Stops a replaced client's per-service work (its updater tasks poll every subscribed service
/// forever otherwise). The SDK has no shutdown; what is left of the client idles.
async fn retire(
    naming: NamingService,
    services: Vec<ServiceId>,
    listener: Arc<dyn NamingEventListener>,
) {
    futures::stream::iter(services)
        .for_each_concurrent(QUERY_CONCURRENCY, |id| {
            let unsubscribe =
                naming.unsubscribe(id.name, Some(id.group), Vec::new(), listener.clone());
            // The SDK stops its local work before it asks the server, which may not answer.
            async move {
                let _ = tokio::time::timeout(RETIRE_TIMEOUT, unsubscribe).await;
            }
        })
        .await;
}

fn client_props(source: &NacosSource, registry: &str) -> ClientProps {
    let mut props = ClientProps::new()
        .server_addr(source.server_addr.clone())
        .namespace(source.namespace.clone())
        .app_name("causeway-bridge")
        .env_first(false)
        .naming_push_empty_protection(false)
        .naming_load_cache_at_start(false)
        // The SDK always writes its cache to disk ($HOME/nacos by default, which may be
        // read-only in a container); it is never read back, since loading it is off.
        .cache_dir(
            std::env::temp_dir()
                .join("causeway-bridge-nacos")
                .join(registry),
        );
    if let Some(username) = &source.username {
        props = props.auth_username(username.clone());
    }
    if let Some(password) = &source.password {
        props = props.auth_password(password.clone());
    }
    props
}

/// A subscribed service and what was last reported for it.
#[derive(Debug)]
struct Tracked {
    kind: ServiceKind,
    entries: BTreeMap<String, Provider>,
}

/// The adapter's state once the client exists.
struct Adapter {
    source: NacosSource,
    sink: EventSink,
    naming: NamingService,
    listener: Arc<dyn NamingEventListener>,
    events: mpsc::Receiver<Arc<NamingChangeEvent>>,
    overflowed: Arc<AtomicBool>,
    services: BTreeMap<ServiceId, Tracked>,
    /// Whether the model holds a full resync taken since the last outage; until it does,
    /// per-service changes are only recorded (the next resync reports them).
    synced: bool,
    reported_down: bool,
    last_resync: Instant,
    /// When the current outage began.
    down_since: Option<Instant>,
    /// No fresh client is tried before this.
    next_rebuild: Instant,
    rebuild_backoff: Duration,
}

impl Adapter {
    /// Polls the service list and applies pushes, forever (until the store closes).
    async fn follow(&mut self) -> Result<Infallible, StoreClosed> {
        let mut poll = tokio::time::interval(self.source.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = poll.tick() => self.poll().await?,
                Some(event) = self.events.recv() => {
                    let id = ServiceId::new(&event.group_name, &event.service_name);
                    self.apply(&id, event.instances.as_deref().unwrap_or_default()).await?;
                }
            }
        }
    }

    /// One poll: list, drop vanished services, subscribe new ones, re-read everything if due.
    async fn poll(&mut self) -> Result<(), StoreClosed> {
        let listed = match self.list_services().await {
            Ok(listed) => listed,
            Err(error) => return self.outage(error).await,
        };
        self.forget_vanished(&listed).await?;
        let full = !self.synced
            || self.overflowed.swap(false, Ordering::AcqRel)
            || self.last_resync.elapsed() >= RESYNC_INTERVAL;
        for (id, kind) in listed {
            if !self.services.contains_key(&id) {
                self.track(id, kind, !full).await?;
            }
        }
        if full && let Err(error) = self.resync().await {
            return self.outage(error).await;
        }
        Ok(())
    }

    /// Every readable service of every configured group.
    async fn list_services(&self) -> Result<BTreeMap<ServiceId, ServiceKind>, ReadError> {
        let mut listed = BTreeMap::new();
        for group in &self.source.groups {
            for name in self.list_group(group).await? {
                let id = ServiceId::new(group, &name);
                if let Some(kind) = classify_service(&id.name) {
                    listed.insert(id, kind);
                }
            }
        }
        Ok(listed)
    }

    async fn list_group(&self, group: &str) -> Result<Vec<String>, ReadError> {
        let mut names = Vec::new();
        for page in 1.. {
            let list = self
                .naming
                .get_service_list(page, PAGE_SIZE, Some(group.to_owned()));
            let (batch, total) = within(REQUEST_TIMEOUT, list).await?;
            let short_page = batch.len() < usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
            names.extend(batch);
            if short_page || names.len() >= usize::try_from(total).unwrap_or(0) {
                break;
            }
        }
        Ok(names)
    }

    /// Subscribes a newly listed service; with `read`, also reads and reports its instances now
    /// (otherwise the full resync that follows does). A failed read leaves it untracked, so the
    /// next poll tries again.
    async fn track(
        &mut self,
        id: ServiceId,
        kind: ServiceKind,
        read: bool,
    ) -> Result<(), StoreClosed> {
        let subscribe = self.naming.subscribe(
            id.name.clone(),
            Some(id.group.clone()),
            Vec::new(),
            self.listener.clone(),
        );
        if let Err(error) = within(REQUEST_TIMEOUT, subscribe).await {
            // The SDK keeps the subscription and retries it itself after a failure.
            tracing::debug!(registry = self.sink.registry(), service = %id.name, %error, "nacos subscribe");
        }
        self.services.insert(
            id.clone(),
            Tracked {
                kind,
                entries: BTreeMap::new(),
            },
        );
        if !read {
            return Ok(());
        }
        match query(&self.naming, &id).await {
            Ok(instances) => self.apply(&id, &instances).await,
            Err(error) => {
                tracing::debug!(registry = self.sink.registry(), service = %id.name, %error, "nacos read; retrying at the next poll");
                self.services.remove(&id);
                Ok(())
            }
        }
    }

    /// Removes the instances of services no longer listed and unsubscribes them.
    async fn forget_vanished(
        &mut self,
        listed: &BTreeMap<ServiceId, ServiceKind>,
    ) -> Result<(), StoreClosed> {
        let gone: Vec<ServiceId> = self
            .services
            .keys()
            .filter(|id| !listed.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            let Some(tracked) = self.services.remove(&id) else {
                continue;
            };
            if self.synced {
                for key in tracked.entries.into_keys() {
                    self.sink.send(RegistryEvent::Remove(key)).await?;
                }
            }
            let unsubscribe = self.naming.unsubscribe(
                id.name.clone(),
                Some(id.group.clone()),
                Vec::new(),
                self.listener.clone(),
            );
            if let Err(error) = within(REQUEST_TIMEOUT, unsubscribe).await {
                tracing::debug!(registry = self.sink.registry(), service = %id.name, %error, "nacos unsubscribe");
            }
        }
        Ok(())
    }

    /// Records a service's complete instance list and, once synced, reports the difference.
    async fn apply(
        &mut self,
        id: &ServiceId,
        instances: &[ServiceInstance],
    ) -> Result<(), StoreClosed> {
        let Some(tracked) = self.services.get_mut(id) else {
            // A late push for a service that left the list, or one not read by this adapter.
            return Ok(());
        };
        let (entries, malformed) =
            service_entries(&self.source.namespace, id, &tracked.kind, instances);
        let events = diff(&tracked.entries, &entries);
        tracked.entries = entries;
        if !self.synced {
            return Ok(());
        }
        for (key, reason) in malformed {
            self.sink.malformed(&key, reason).await?;
        }
        for event in events {
            self.sink.send(event).await?;
        }
        Ok(())
    }

    /// Re-reads every tracked service and reports the whole namespace as a resync, then `Up`.
    async fn resync(&mut self) -> Result<(), ReadError> {
        let naming = &self.naming;
        let ids: Vec<ServiceId> = self.services.keys().cloned().collect();
        let reads: Vec<(ServiceId, Result<Vec<ServiceInstance>, ReadError>)> =
            futures::stream::iter(ids)
                .map(|id| async move {
                    let instances = query(naming, &id).await;
                    (id, instances)
                })
                .buffer_unordered(QUERY_CONCURRENCY)
                .collect()
                .await;
        let mut all = BTreeMap::new();
        let mut malformed = Vec::new();
        for (id, instances) in reads {
            let instances = instances?;
            let Some(tracked) = self.services.get_mut(&id) else {
                continue;
            };
            let (entries, bad) =
                service_entries(&self.source.namespace, &id, &tracked.kind, &instances);
            all.extend(entries.iter().map(|(k, p)| (k.clone(), p.clone())));
            malformed.extend(bad);
            tracked.entries = entries;
        }
        for (key, reason) in malformed {
            self.sink.malformed(&key, reason).await?;
        }
        let count = all.len();
        self.sink.send(RegistryEvent::Resync(all)).await?;
        self.sink.send(RegistryEvent::Up).await?;
        if self.reported_down || !self.synced {
            tracing::info!(
                registry = self.sink.registry(),
                services = self.services.len(),
                instances = count,
                "nacos listed and subscribed"
            );
        }
        self.synced = true;
        self.reported_down = false;
        self.down_since = None;
        self.rebuild_backoff = RECONNECT_BACKOFF;
        self.last_resync = Instant::now();
        Ok(())
    }

    /// Reports the registry down once per outage; the next successful poll re-reads everything.
    async fn outage(&mut self, error: ReadError) -> Result<(), StoreClosed> {
        if let ReadError::Closed(closed) = error {
            return Err(closed);
        }
        self.synced = false;
        if self.reported_down {
            tracing::debug!(registry = self.sink.registry(), %error, "nacos still unreachable");
        } else {
            tracing::warn!(registry = self.sink.registry(), %error, "nacos unreachable; keeping the last known instances");
            self.reported_down = true;
            self.sink.send(RegistryEvent::Down).await?;
        }
        let down_for = self.down_since.get_or_insert_with(Instant::now).elapsed();
        if is_unregistered(&error) || down_for >= REBUILD_AFTER {
            self.rebuild().await;
        }
        Ok(())
    }

    /// Replaces the client with a fresh one, if Nacos lets one connect; backs off otherwise.
    async fn rebuild(&mut self) {
        if Instant::now() < self.next_rebuild {
            return;
        }
        match build(&self.source, self.sink.registry()).await {
            Ok(naming) => {
                tracing::info!(
                    registry = self.sink.registry(),
                    "nacos client replaced; subscribing again"
                );
                let old = std::mem::replace(&mut self.naming, naming);
                // Untracked services are subscribed on the new client at the next poll, and the
                // full resync that follows reports them all.
                let services = std::mem::take(&mut self.services).into_keys().collect();
                tokio::spawn(retire(old, services, self.listener.clone()));
                self.rebuild_backoff = RECONNECT_BACKOFF;
            }
            Err(error) => {
                tracing::debug!(registry = self.sink.registry(), %error, "nacos client not rebuilt");
                self.next_rebuild = Instant::now() + self.rebuild_backoff;
                self.rebuild_backoff = (self.rebuild_backoff * 2).min(MAX_RECONNECT_BACKOFF);
            }
        }
    }
}

/// Whether the server answered that it does not know this client's connection.
fn is_unregistered(error: &ReadError) -> bool {
    matches!(
        error,
        ReadError::Client(nacos_sdk::api::error::Error::ErrResponse(_, _, code, _))
            if *code == UNREGISTERED_CONNECTION
    )
}

/// Reads a service's instances from the server (not the SDK's push cache), healthy or not.
async fn query(naming: &NamingService, id: &ServiceId) -> Result<Vec<ServiceInstance>, ReadError> {
    let read = naming.get_all_instances(id.name.clone(), Some(id.group.clone()), Vec::new(), false);
    within(REQUEST_TIMEOUT, read).await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn instance(ip: &str, port: i32, metadata: &[(&str, &str)]) -> ServiceInstance {
        ServiceInstance {
            ip: ip.to_owned(),
            port,
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
            ..ServiceInstance::default()
        }
    }

    fn public() -> RegistryScope {
        RegistryScope::Nacos {
            namespace: "public".into(),
            group: "DEFAULT_GROUP".into(),
        }
    }

    #[test]
    fn classifies_service_names() {
        assert_eq!(
            classify_service("providers:com.acme.Api:1.0.0:"),
            Some(ServiceKind::Dubbo {
                interface: "com.acme.Api".into(),
                version: "1.0.0".into(),
                group: String::new(),
            })
        );
        assert_eq!(
            classify_service("providers:com.acme.Outer___Inner::g1"),
            Some(ServiceKind::Dubbo {
                interface: "com.acme.Outer$Inner".into(),
                version: String::new(),
                group: "g1".into(),
            })
        );
        assert_eq!(classify_service("orders"), Some(ServiceKind::Plain));
        assert_eq!(classify_service("order:service"), Some(ServiceKind::Plain));
        for skipped in [
            "consumers:com.acme.Api:1.0.0:",
            "providers:com.acme.Api:1.0.0",
            "providers:::",
            "configurators:com.acme.Api::",
        ] {
            assert_eq!(classify_service(skipped), None, "{skipped}");
        }
    }

    #[test]
    fn grouped_names_are_normalised() {
        let plain = ServiceId::new("DEFAULT_GROUP", "orders");
        assert_eq!(ServiceId::new("", "DEFAULT_GROUP@@orders"), plain);
        assert_eq!(plain.group, "DEFAULT_GROUP");
    }

    #[test]
    fn dubbo_instances_become_dubbo_providers() {
        let kind = classify_service("providers:com.acme.Api:1.0.0:").unwrap();
        let mut inst = instance(
            "10.0.0.5",
            20880,
            &[
                ("protocol", "tri"),
                ("interface", "com.acme.Api"),
                ("zone", "z1"),
            ],
        );
        inst.weight = 0.5;
        let provider = instance_provider(&kind, "providers:com.acme.Api:1.0.0:", &public(), &inst)
            .unwrap()
            .unwrap();
        assert_eq!(
            provider.service,
            ServiceRef::dubbo("com.acme.Api", None, Some("1.0.0"))
        );
        assert_eq!(provider.protocol, Protocol::Triple);
        assert_eq!(provider.registry_weight, Some(50));
        assert_eq!(provider.params["zone"], "z1");
        assert_eq!(provider.scope, public());
        assert!(provider.healthy);

        inst.enabled = false;
        inst.metadata.remove("protocol");
        let disabled = instance_provider(&kind, "x", &public(), &inst)
            .unwrap()
            .unwrap();
        assert!(!disabled.healthy);
        assert_eq!(disabled.protocol, Protocol::Dubbo);
    }

    #[test]
    fn plain_instances_default_to_http_and_skip_dubbo_app_instances() {
        let spring = instance("10.0.0.9", 8080, &[("version", "v2")]);
        let provider = instance_provider(&ServiceKind::Plain, "orders", &public(), &spring)
            .unwrap()
            .unwrap();
        assert_eq!(provider.service, ServiceRef::Named("orders".into()));
        assert_eq!(provider.protocol, Protocol::Http);
        assert_eq!(provider.registry_weight, Some(100));
        let grpc = instance("10.0.0.9", 9090, &[("scheme", "grpc")]);
        let provider = instance_provider(&ServiceKind::Plain, "orders", &public(), &grpc)
            .unwrap()
            .unwrap();
        assert_eq!(provider.protocol, Protocol::Grpc);
        let app = instance("10.0.0.9", 20880, &[("dubbo.metadata.revision", "abc")]);
        assert_eq!(
            instance_provider(&ServiceKind::Plain, "demo-app", &public(), &app),
            Ok(None)
        );
    }

    #[test]
    fn bad_instances_are_malformed() {
        let id = ServiceId::new("DEFAULT_GROUP", "orders");
        let instances = [
            instance("10.0.0.1", 8080, &[]),
            instance("10.0.0.2", 0, &[]),
            instance("10.0.0.3", 70000, &[]),
            instance("", 8080, &[]),
        ];
        let (entries, malformed) = service_entries("public", &id, &ServiceKind::Plain, &instances);
        assert_eq!(
            entries.keys().collect::<Vec<_>>(),
            ["public/DEFAULT_GROUP/orders/10.0.0.1:8080"]
        );
        assert_eq!(malformed.len(), 3);
        assert!(malformed[0].1.contains("out of range"), "{malformed:?}");
    }

    #[test]
    fn only_unregistered_connections_ask_for_a_new_client() {
        use nacos_sdk::api::error::Error;
        let unregistered = Error::ErrResponse(None, 500, 301, Some("unregistered".into()));
        assert!(is_unregistered(&ReadError::Client(unregistered)));
        let starting = Error::ErrResponse(None, 500, 300, Some("starting".into()));
        assert!(!is_unregistered(&ReadError::Client(starting)));
        assert!(!is_unregistered(&ReadError::Timeout(REQUEST_TIMEOUT)));
    }

    #[test]
    fn weights_scale_to_percent() {
        assert_eq!(weight_percent(1.0), Some(100));
        assert_eq!(weight_percent(0.333), Some(33));
        assert_eq!(weight_percent(0.0), Some(0));
        assert_eq!(weight_percent(-1.0), None);
        assert_eq!(weight_percent(f64::NAN), None);
        assert_eq!(weight_percent(1e12), Some(u32::MAX));
    }

    #[test]
    fn diffs_report_removals_and_changes_only() {
        let id = ServiceId::new("DEFAULT_GROUP", "orders");
        let (old, _) = service_entries(
            "public",
            &id,
            &ServiceKind::Plain,
            &[instance("10.0.0.1", 80, &[]), instance("10.0.0.2", 80, &[])],
        );
        let (new, _) = service_entries(
            "public",
            &id,
            &ServiceKind::Plain,
            &[
                instance("10.0.0.2", 80, &[]),
                instance("10.0.0.3", 80, &[("v", "1")]),
            ],
        );
        let events = diff(&old, &new);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            events[0],
            RegistryEvent::Remove("public/DEFAULT_GROUP/orders/10.0.0.1:80".into())
        );
        assert!(matches!(&events[1], RegistryEvent::Upsert(k, _) if k.ends_with("10.0.0.3:80")));
        assert!(diff(&new, &new).is_empty());
    }
}
