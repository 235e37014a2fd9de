//! The ZooKeeper adapter: Dubbo interface-level providers under `<root>/<interface>/providers`,
//! and under `/services/<name>/<id>` both Spring Cloud Zookeeper instances and Dubbo 3
//! application-level instances (resolved to interfaces through their metadata revision, see
//! [`crate::registry::dubbo_app`]).
//!
//! One persistent recursive watch per root (ZooKeeper 3.6+ `addWatch`) is added *before* the
//! subtree is listed, so nothing created in between is missed. Persistent watches can lose events
//! across a reconnect (ZOOKEEPER-4698), and a restarted server resumes the session without the
//! watches (seen with ZooKeeper 3.8 and `zookeeper-client` 0.11: no node events after the resume),
//! so every reconnect ends the session: a fresh one adds its watches again, re-lists and sends a
//! full resync. A periodic resync bounds any other drift. Session expiry ends the client the
//! same way. While ZooKeeper is unreachable the adapter reports the registry
//! down, and the model keeps the last known providers.
//!
//! A Dubbo 3 instance whose metadata is stored `remote` is resolved from
//! `<root>/metadata/<app>/<revision>`; one with `local` metadata (Dubbo's default) is resolved by
//! calling the provider's own `MetadataService` ([`crate::registry::metadata_service`]), so
//! providers registered with `register-mode=instance` only are found too. Either way the
//! document is cached per (application, revision). A provider whose MetadataService cannot be
//! reached or answers wrongly is reported as a malformed entry (counted, logged once) and tried
//! again on its next change or resync.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use zookeeper_client as zk;

use crate::model::provider::{Protocol, Provider, RegistryScope, ServiceRef};
use crate::registry::dubbo_app::{self, CuratorInstance, MetadataCache, MetadataInfo};
use crate::registry::dubbo_url::{NON_INTERFACE_CHILDREN, parse_provider_node};
use crate::registry::metadata_service;
use crate::registry::{EventSink, RegistryEvent, StoreClosed};

/// Settings of one ZooKeeper registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperSource {
    /// Connect string, `host:port[,host:port…]`.
    pub connect: String,
    /// Dubbo root, `/dubbo` by default (the registry URL's path or `group` parameter in Dubbo).
    pub dubbo_root: String,
    /// Spring Cloud Zookeeper root, `/services` by default; empty to skip.
    pub services_root: String,
    /// Session timeout asked of the server.
    pub session_timeout: Duration,
    /// Full re-list interval, on top of the re-list after every reconnect.
    pub resync_interval: Duration,
}

impl Default for ZooKeeperSource {
    fn default() -> Self {
        Self {
            connect: "127.0.0.1:2181".to_owned(),
            dubbo_root: "/dubbo".to_owned(),
            services_root: "/services".to_owned(),
            session_timeout: Duration::from_secs(10),
            resync_interval: Duration::from_secs(300),
        }
    }
}

/// How many ZooKeeper reads a listing keeps in flight.
const LIST_CONCURRENCY: usize = 64;
/// Delay between reconnection attempts while ZooKeeper is unreachable.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);
/// Deadline of one MetadataService call (connect, request, response). Instances are resolved one
/// after another during a listing, so an unresponsive provider must not hold it up for long.
const METADATA_SERVICE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a znode sits in the layouts this adapter reads.
#[derive(Debug, PartialEq, Eq)]
enum NodeKind<'a> {
    /// `<dubbo_root>/<iface>/providers/<encoded url>`.
    DubboProvider(&'a str),
    /// `<services_root>/<name>/<id>`.
    ServiceInstance,
    /// Anything else (directories, consumers, configurators, …).
    Other,
}

impl ZooKeeperSource {
    fn classify<'a>(&self, path: &'a str) -> NodeKind<'a> {
        if let Some(rest) = path
            .strip_prefix(self.dubbo_root.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            let parts: Vec<&str> = rest.split('/').collect();
            if let [iface, "providers", node] = parts.as_slice()
                && !NON_INTERFACE_CHILDREN.contains(iface)
            {
                return NodeKind::DubboProvider(node);
            }
            return NodeKind::Other;
        }
        if !self.services_root.is_empty()
            && let Some(rest) = path
                .strip_prefix(self.services_root.as_str())
                .and_then(|r| r.strip_prefix('/'))
            && rest.split('/').count() == 2
        {
            return NodeKind::ServiceInstance;
        }
        NodeKind::Other
    }
}

/// Why one pass of the adapter ended.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Closed(#[from] StoreClosed),
    #[error("zookeeper: {0}")]
    ZooKeeper(#[from] zk::Error),
    #[error("zookeeper session {0:?}")]
    Terminated(zk::SessionState),
}

/// What the adapter remembers across events and sessions.
#[derive(Debug, Default)]
struct AdapterState {
    /// Metadata documents of Dubbo 3 applications, by revision.
    metadata: MetadataCache,
    /// The entry keys each instance znode produced, so its deletion removes all of them.
    instance_keys: HashMap<String, Vec<String>>,
}

/// How a session that did not fail ended.
#[derive(Debug)]
enum SessionEnd {
    /// The connection came back after a loss: start over with a fresh session at once.
    Reconnected,
}

/// Runs the adapter until the bridge shuts down.
pub async fn run(source: ZooKeeperSource, sink: EventSink) {
    let mut reported_down = false;
    let mut state = AdapterState::default();
    loop {
        match session(&source, &sink, &mut state, &mut reported_down).await {
            Err(PassError::Closed(_)) => return,
            Err(error) => {
                tracing::warn!(registry = sink.registry(), %error, "zookeeper session ended; reconnecting");
            }
            Ok(SessionEnd::Reconnected) => {
                tracing::info!(
                    registry = sink.registry(),
                    "zookeeper reconnected; re-watching and re-listing"
                );
                continue;
            }
        }
        if !reported_down {
            reported_down = true;
            if sink.send(RegistryEvent::Down).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(RECONNECT_BACKOFF).await;
    }
}

/// One ZooKeeper session: connect, watch, list, then follow events until the session ends.
async fn session(
    source: &ZooKeeperSource,
    sink: &EventSink,
    state: &mut AdapterState,
    reported_down: &mut bool,
) -> Result<SessionEnd, PassError> {
    let client = zk::Client::connector()
        .with_session_timeout(source.session_timeout)
        .with_connection_timeout(Duration::from_secs(3))
        .connect(&source.connect)
        .await?;
    let mut dubbo_watch = client
        .watch(&source.dubbo_root, zk::AddWatchMode::PersistentRecursive)
        .await?;
    let mut services_watch = if source.services_root.is_empty() {
        None
    } else {
        Some(
            client
                .watch(&source.services_root, zk::AddWatchMode::PersistentRecursive)
                .await?,
        )
    };
    resync(&client, source, sink, state).await?;
    *reported_down = false;
    tracing::info!(registry = sink.registry(), connect = %source.connect, "zookeeper listed and watching");
    let mut resync_timer = tokio::time::interval(source.resync_interval);
    resync_timer.tick().await;
    loop {
        let event = tokio::select! {
            event = dubbo_watch.changed() => event,
            event = async {
                match services_watch.as_mut() {
                    Some(watch) => watch.changed().await,
                    None => std::future::pending().await,
                }
            } => event,
            _ = resync_timer.tick() => {
                resync(&client, source, sink, state).await?;
                continue;
            }
        };
        if event.event_type == zk::EventType::Session {
            match event.session_state {
                zk::SessionState::Disconnected if !*reported_down => {
                    *reported_down = true;
                    sink.send(RegistryEvent::Down).await?;
                }
                zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                    // Events (and, after a server restart, the watches themselves) may be gone.
                    return Ok(SessionEnd::Reconnected);
                }
                // Terminal states: the watchers must not be polled again (they would panic).
                state if state.is_terminated() => {
                    tracing::info!(
                        registry = sink.registry(),
                        ?state,
                        "zookeeper session ended"
                    );
                    return Err(PassError::Terminated(state));
                }
                _ => {}
            }
            continue;
        }
        handle_node_event(&client, source, sink, state, &event).await?;
    }
}

async fn handle_node_event(
    client: &zk::Client,
    source: &ZooKeeperSource,
    sink: &EventSink,
    state: &mut AdapterState,
    event: &zk::WatchedEvent,
) -> Result<(), PassError> {
    let path = event.path.as_str();
    match (source.classify(path), event.event_type) {
        (NodeKind::DubboProvider(node), zk::EventType::NodeCreated) => {
            match parse_provider_node(node) {
                Ok(Some(provider)) => {
                    sink.send(RegistryEvent::Upsert(path.to_owned(), provider))
                        .await?
                }
                Ok(None) => {}
                Err(reason) => sink.malformed(path, reason).await?,
            }
        }
        (NodeKind::DubboProvider(_), zk::EventType::NodeDeleted) => {
            sink.send(RegistryEvent::Remove(path.to_owned())).await?
        }
        (NodeKind::ServiceInstance, zk::EventType::NodeDeleted) => {
            for key in state.instance_keys.remove(path).unwrap_or_default() {
                sink.send(RegistryEvent::Remove(key)).await?;
            }
        }
        (
            NodeKind::ServiceInstance,
            zk::EventType::NodeCreated | zk::EventType::NodeDataChanged,
        ) => {
            let data = match client.get_data(path).await {
                Ok((data, _)) => data,
                // Gone again before we read it: its deletion event follows.
                Err(zk::Error::NoNode) => return Ok(()),
                Err(error) => return Err(error.into()),
            };
            let entries =
                match instance_entries(client, source, &mut state.metadata, path, &data).await {
                    Ok(entries) => entries,
                    Err(InstanceError::Malformed(reason)) => {
                        sink.malformed(path, reason).await?;
                        Vec::new()
                    }
                    Err(InstanceError::ZooKeeper(error)) => return Err(error.into()),
                };
            let new_keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
            for old in state.instance_keys.remove(path).unwrap_or_default() {
                if !new_keys.contains(&old) {
                    sink.send(RegistryEvent::Remove(old)).await?;
                }
            }
            for (key, provider) in entries {
                sink.send(RegistryEvent::Upsert(key, provider)).await?;
            }
            if !new_keys.is_empty() {
                state.instance_keys.insert(path.to_owned(), new_keys);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Why an instance znode could not be turned into providers.
#[derive(Debug, thiserror::Error)]
enum InstanceError {
    /// The znode's content is wrong: skip and count it.
    #[error("{0}")]
    Malformed(String),
    /// ZooKeeper failed while reading related data: end the session.
    #[error(transparent)]
    ZooKeeper(#[from] zk::Error),
}

/// The providers an instance znode under the services root stands for: a Spring Cloud
/// instance is one provider keyed by its path; a Dubbo 3 application instance is one provider per
/// interface of its metadata revision.
async fn instance_entries(
    client: &zk::Client,
    source: &ZooKeeperSource,
    cache: &mut MetadataCache,
    path: &str,
    data: &[u8],
) -> Result<Vec<(String, Provider)>, InstanceError> {
    let instance = CuratorInstance::parse(data).map_err(InstanceError::Malformed)?;
    let Some(revision) = instance.dubbo_revision() else {
        return spring_cloud_provider(instance)
            .map(|provider| vec![(path.to_owned(), provider)])
            .map_err(InstanceError::Malformed);
    };
    let metadata = match cache.get(&instance.name, revision) {
        Some(metadata) => metadata,
        None if instance.metadata_is_remote() => {
            let document = join(
                &join(&join(&source.dubbo_root, "metadata"), &instance.name),
                revision,
            );
            let data = match client.get_data(&document).await {
                Ok((data, _)) => data,
                Err(zk::Error::NoNode) => {
                    return Err(InstanceError::Malformed(format!(
                        "metadata document {document} is missing"
                    )));
                }
                Err(error) => return Err(error.into()),
            };
            cache.insert(MetadataInfo::parse_json(&data).map_err(InstanceError::Malformed)?)
        }
        None => {
            // `local` storage: only the provider's MetadataService knows. A failure is not
            // cached, so the next change of the instance or the next resync tries again.
            let info = metadata_service::fetch_metadata(
                &instance.address,
                &instance,
                revision,
                METADATA_SERVICE_TIMEOUT,
            )
            .await
            .map_err(|error| {
                InstanceError::Malformed(format!(
                    "metadata revision {revision} from the provider's MetadataService: {error}"
                ))
            })?;
            cache.insert(info)
        }
    };
    Ok(dubbo_app::providers(path, &instance, &metadata))
}

fn spring_cloud_provider(instance: CuratorInstance) -> Result<Provider, String> {
    let port = instance
        .port
        .or(instance.ssl_port)
        .filter(|p| *p != 0)
        .ok_or("instance has no port")?;
    let params = instance.metadata().clone();
    Ok(Provider {
        service: ServiceRef::Named(instance.name),
        protocol: Protocol::Http,
        host: instance.address,
        port,
        params,
        scope: RegistryScope::Global,
        registry_weight: None,
        healthy: true,
    })
}

/// Lists both roots and sends a full resync followed by `Up`.
async fn resync(
    client: &zk::Client,
    source: &ZooKeeperSource,
    sink: &EventSink,
    state: &mut AdapterState,
) -> Result<(), PassError> {
    let started = std::time::Instant::now();
    // Streamed: providers go to the store as they are listed, so a large registry is never held
    // in memory whole; the store removes what this pass did not report once it ends.
    sink.send(RegistryEvent::ResyncBegin).await?;
    let mut count = list_dubbo(client, source, sink).await?;
    if !source.services_root.is_empty() {
        count += list_services(client, source, state, sink).await?;
    }
    sink.send(RegistryEvent::ResyncEnd).await?;
    sink.send(RegistryEvent::Up).await?;
    tracing::debug!(
        registry = sink.registry(),
        providers = count,
        took_ms = started.elapsed().as_millis() as u64,
        "zookeeper resync"
    );
    Ok(())
}

/// Children of `path`, or none when it does not exist.
async fn children(client: &zk::Client, path: &str) -> Result<Vec<String>, zk::Error> {
    match client.list_children(path).await {
        Ok(children) => Ok(children),
        Err(zk::Error::NoNode) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

fn join(parent: &str, child: &str) -> String {
    format!("{}/{child}", parent.trim_end_matches('/'))
}

/// Lists every interface's providers, reporting each; returns how many providers were found.
async fn list_dubbo(
    client: &zk::Client,
    source: &ZooKeeperSource,
    sink: &EventSink,
) -> Result<usize, PassError> {
    let interfaces = children(client, &source.dubbo_root).await?;
    let provider_dirs: Vec<String> = interfaces
        .iter()
        .filter(|i| !NON_INTERFACE_CHILDREN.contains(&i.as_str()))
        .map(|i| join(&join(&source.dubbo_root, i), "providers"))
        .collect();
    let mut listings = futures::stream::iter(provider_dirs)
        .map(|dir| async move {
            let nodes = children(client, &dir).await;
            (dir, nodes)
        })
        .buffer_unordered(LIST_CONCURRENCY);
    let mut count = 0;
    while let Some((dir, nodes)) = listings.next().await {
        for node in nodes? {
            let path = join(&dir, &node);
            match parse_provider_node(&node) {
                Ok(Some(provider)) => {
                    count += 1;
                    sink.send(RegistryEvent::Upsert(path, provider)).await?;
                }
                Ok(None) => {}
                Err(reason) => sink.malformed(&path, reason).await?,
            }
        }
    }
    Ok(count)
}

/// Lists every instance under the services root, reporting its providers; returns how many.
async fn list_services(
    client: &zk::Client,
    source: &ZooKeeperSource,
    state: &mut AdapterState,
    sink: &EventSink,
) -> Result<usize, PassError> {
    let names = children(client, &source.services_root).await?;
    let mut instance_paths = Vec::new();
    for name in names {
        let dir = join(&source.services_root, &name);
        for id in children(client, &dir).await? {
            instance_paths.push(join(&dir, &id));
        }
    }
    let mut reads = futures::stream::iter(instance_paths)
        .map(|path| async move {
            let data = client.get_data(&path).await;
            (path, data)
        })
        .buffer_unordered(LIST_CONCURRENCY);
    let mut instances = Vec::new();
    while let Some((path, data)) = reads.next().await {
        match data {
            Ok((data, _)) => instances.push((path, data)),
            Err(zk::Error::NoNode) => {}
            Err(error) => return Err(error.into()),
        }
    }
    drop(reads);
    let mut count = 0;
    state.instance_keys.clear();
    for (path, data) in instances {
        match instance_entries(client, source, &mut state.metadata, &path, &data).await {
            Ok(found) => {
                let keys: Vec<String> = found.iter().map(|(k, _)| k.clone()).collect();
                count += found.len();
                for (key, provider) in found {
                    sink.send(RegistryEvent::Upsert(key, provider)).await?;
                }
                if !keys.is_empty() {
                    state.instance_keys.insert(path, keys);
                }
            }
            Err(InstanceError::Malformed(reason)) => sink.malformed(&path, reason).await?,
            Err(InstanceError::ZooKeeper(error)) => return Err(error.into()),
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        let source = ZooKeeperSource::default();
        assert_eq!(
            source.classify("/dubbo/a.B/providers/dubbo%3A%2F%2Fx"),
            NodeKind::DubboProvider("dubbo%3A%2F%2Fx")
        );
        assert_eq!(source.classify("/dubbo/a.B/consumers/x"), NodeKind::Other);
        assert_eq!(
            source.classify("/dubbo/config/providers/x"),
            NodeKind::Other
        );
        assert_eq!(source.classify("/dubbo/a.B/providers"), NodeKind::Other);
        assert_eq!(
            source.classify("/services/orders/1"),
            NodeKind::ServiceInstance
        );
        assert_eq!(source.classify("/services/orders"), NodeKind::Other);
        assert_eq!(source.classify("/dubbox/a/providers/x"), NodeKind::Other);
    }

    #[test]
    fn provider_nodes_follow_dubbo_acceptance_rules() {
        assert!(parse_provider_node("not-a-url").unwrap().is_none());
        let consumer = "consumer%3A%2F%2F1.2.3.4%3A0%2Fa.B%3Fcategory%3Dconsumers";
        assert!(parse_provider_node(consumer).unwrap().is_none());
        assert!(
            parse_provider_node("dubbo%3A%2F%2F1.2.3.4%2Fa.B").is_err(),
            "no port"
        );
        let ok = "dubbo%3A%2F%2F1.2.3.4%3A20880%2Fa.B%3Fversion%3D1.0";
        assert_eq!(parse_provider_node(ok).unwrap().unwrap().port, 20880);
    }

    #[test]
    fn spring_cloud_and_dubbo_app_instances_parse() {
        let spring = br#"{"name":"orders","id":"x","address":"10.0.0.9","port":8080,"sslPort":null,
            "payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
            "id":"x","name":"orders","metadata":{"version":"v2","zone":"z1"}},
            "registrationTimeUTC":1,"serviceType":"DYNAMIC"}"#;
        let provider = spring_cloud_provider(CuratorInstance::parse(spring).unwrap()).unwrap();
        assert_eq!(provider.service, ServiceRef::Named("orders".into()));
        assert_eq!((provider.host.as_str(), provider.port), ("10.0.0.9", 8080));
        assert_eq!(provider.params["version"], "v2");

        let dubbo3 = br#"{"name":"demo","address":"10.0.0.5","port":20880,
            "payload":{"metadata":{"dubbo.metadata.revision":"abc"}}}"#;
        let dubbo3 = CuratorInstance::parse(dubbo3).unwrap();
        assert_eq!(dubbo3.dubbo_revision(), Some("abc"));
        assert!(CuratorInstance::parse(b"{").is_err());
        let no_port = CuratorInstance::parse(br#"{"name":"a","address":"1.2.3.4"}"#).unwrap();
        assert!(spring_cloud_provider(no_port).is_err());
    }
}
