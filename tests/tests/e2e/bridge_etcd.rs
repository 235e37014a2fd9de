//! The etcd adapter against a real etcd: providers written exactly as Dubbo 2.7's etcd3 registry
//! writes them reach the model with the right host, labels and locality; deletions and lease
//! revocations remove them; garbage is counted, not fatal; an outage keeps the last endpoints
//! (stale, registry down) and a restart brings the registry back; a compaction that overtakes the
//! watch ends in a re-list. [`Model`] (an adapter feeding a `ModelStore`) is shared with the
//! Nacos adapter tests.

use std::future::Future;
use std::time::Duration;

use causeway_bridge::model::derive::DeriveConfig;
use causeway_bridge::model::filter::Filter;
use causeway_bridge::model::snapshot::{Service, Snapshot};
use causeway_bridge::model::store::ModelStore;
use causeway_bridge::registry::dubbo_url::url_encode;
use causeway_bridge::registry::source::EtcdSource;
use causeway_bridge::registry::{EventSink, RegistryEvent, RegistryMessage, etcd};
use causeway_tests::etcd::EtcdServer;
use causeway_tests::{assert_eventually, logs};
use etcd_client::{CompactionOptions, PutOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One adapter task feeding a model store, as the bridge wires them.
pub(crate) struct Model {
    name: &'static str,
    events: mpsc::Receiver<RegistryMessage>,
    store: ModelStore,
    task: JoinHandle<()>,
    /// Full resyncs received so far.
    pub(crate) resyncs: usize,
    /// `Down` events received so far.
    pub(crate) downs: usize,
}

impl Model {
    /// Spawns `adapter` with a sink named `name` over a channel of `capacity` messages. The drop-
    /// to-zero grace is zero, so a service that loses its last endpoint leaves at once.
    pub(crate) fn start<F>(
        name: &'static str,
        capacity: usize,
        adapter: impl FnOnce(EventSink) -> F,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (sender, events) = mpsc::channel(capacity);
        let task = tokio::spawn(adapter(EventSink::new(name, sender)));
        let store = ModelStore::new(
            DeriveConfig::default(),
            Filter::default(),
            Duration::ZERO,
            &[name],
        );
        Self {
            name,
            events,
            store,
            task,
            resyncs: 0,
            downs: 0,
        }
    }

    /// Messages waiting in the channel.
    pub(crate) fn pending(&self) -> usize {
        self.events.len()
    }

    /// Applies every waiting message and builds a snapshot.
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        while let Ok(message) = self.events.try_recv() {
            match message.event {
                RegistryEvent::Resync(_) | RegistryEvent::ResyncBegin => self.resyncs += 1,
                RegistryEvent::Down => self.downs += 1,
                _ => {}
            }
            self.store.apply(message);
        }
        self.store.build(tokio::time::Instant::now()).0
    }

    /// The service at `host`, if the model has it.
    pub(crate) fn service(&mut self, host: &str) -> Option<Service> {
        self.snapshot()
            .services
            .get(host)
            .map(|service| Service::clone(service))
    }

    /// `(address, port)` of every endpoint of `host` (none when the service is absent).
    pub(crate) fn endpoints(&mut self, host: &str) -> Vec<(String, u16)> {
        self.service(host)
            .map(|s| {
                s.endpoints
                    .iter()
                    .map(|e| (e.address.clone(), e.port))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the registry is reported up.
    pub(crate) fn up(&mut self) -> bool {
        let name = self.name;
        self.snapshot().registries.get(name).is_some_and(|r| r.up)
    }

    /// Malformed entries counted for the registry.
    pub(crate) fn malformed(&mut self) -> u64 {
        let name = self.name;
        self.snapshot()
            .registries
            .get(name)
            .map_or(0, |r| r.malformed)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HOST: &str = "com.acme.orderservice-1-0-0";
const IFACE_DIR: &str = "/dubbo/com.acme.OrderService";

/// A provider URL as Dubbo 2.7.23 registers it (parameters sorted, `dynamic=true`).
fn provider_url(ip: &str, port: u16) -> String {
    format!(
        "dubbo://{ip}:{port}/com.acme.OrderService?anyhost=true&application=orders&\
         deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&\
         interface=com.acme.OrderService&methods=cancel,place&pid=4242&region=cn-east&\
         release=2.7.23&side=provider&timestamp=1700000000000&version=1.0.0&zone=cn-east-1a"
    )
}

/// The key Dubbo's etcd3 registry puts: the whole URL, encoded once, as the last segment.
fn provider_key(ip: &str, port: u16) -> String {
    format!(
        "{IFACE_DIR}/providers/{}",
        url_encode(&provider_url(ip, port))
    )
}

fn source(server: &EtcdServer) -> EtcdSource {
    EtcdSource {
        endpoints: vec![server.addr().to_string()],
        prefix: "/dubbo".to_owned(),
    }
}

async fn client(server: &EtcdServer) -> etcd_client::Client {
    etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap()
}

/// The persistent "directory" keys Java writes, valued with `String.valueOf(path.hashCode())`,
/// plus a consumer and an override rule the adapter must ignore.
async fn write_dubbo_layout(client: &mut etcd_client::Client) {
    for (key, value) in [
        ("/dubbo", "-1325845526"),
        (IFACE_DIR, "1176429101"),
        ("/dubbo/com.acme.OrderService/providers", "-652287442"),
        ("/dubbo/com.acme.OrderService/consumers", "-652287443"),
    ] {
        client.put(key, value, None).await.unwrap();
    }
    let consumer = url_encode(
        "consumer://10.9.9.9/com.acme.OrderService?category=consumers&side=consumer&version=1.0.0",
    );
    client
        .put(format!("{IFACE_DIR}/consumers/{consumer}"), "0", None)
        .await
        .unwrap();
    let rule =
        url_encode("override://0.0.0.0/com.acme.OrderService?category=configurators&weight=50");
    client
        .put(format!("{IFACE_DIR}/configurators/{rule}"), "0", None)
        .await
        .unwrap();
}

/// Puts a provider the way Java does: attached to the client's lease, valued with the lease id.
async fn put_leased(client: &mut etcd_client::Client, lease: i64, ip: &str, port: u16) {
    client
        .put(
            provider_key(ip, port),
            lease.to_string(),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_providers_follow_puts_deletes_and_leases() {
    logs::init();
    let server = EtcdServer::start().await.unwrap();
    let mut client = client(&server).await;
    write_dubbo_layout(&mut client).await;
    let lease = client.lease_grant(300, None).await.unwrap().id();
    // One provider before the adapter starts (found by the list), one after (by the watch).
    put_leased(&mut client, lease, "127.0.0.1", 20880).await;

    let mut model = Model::start("etcd-test", 64, |sink| etcd::run(source(&server), sink));
    assert_eventually!(
        model.up() && model.endpoints(HOST) == [("127.0.0.1".to_owned(), 20880)],
        "the listed provider never reached the model: {:?}",
        model.snapshot()
    );
    let service = model.service(HOST).unwrap();
    let dubbo = service.dubbo.as_ref().unwrap();
    assert_eq!(dubbo.interface, "com.acme.OrderService");
    assert_eq!(dubbo.version.as_deref(), Some("1.0.0"));
    assert_eq!(service.ports.len(), 1);
    assert_eq!(service.ports[0].number, 20880);
    assert_eq!(service.ports[0].name, "tcp-metaprotocol-dubbo");
    let endpoint = &service.endpoints[0];
    assert_eq!(endpoint.labels["version"], "1.0.0");
    assert_eq!(endpoint.labels["registry"], "etcd-test");
    assert_eq!(endpoint.locality.as_deref(), Some("cn-east/cn-east-1a"));
    assert!(endpoint.healthy);
    assert!(service.stale_registries.is_empty());
    assert_eq!(
        model.snapshot().services.len(),
        1,
        "consumers and rules are not services"
    );

    put_leased(&mut client, lease, "127.0.0.2", 20881).await;
    // A key in the providers directory that is not a valid provider URL (no port).
    let garbage = format!(
        "{IFACE_DIR}/providers/{}",
        url_encode("dubbo://127.0.0.3/com.acme.OrderService?version=1.0.0")
    );
    client.put(garbage, "0", None).await.unwrap();
    put_leased(&mut client, lease, "127.0.0.4", 20880).await;
    assert_eventually!(
        model.endpoints(HOST).len() == 3 && model.malformed() >= 1,
        "watched providers or the malformed count are missing: {:?}",
        model.snapshot()
    );

    client
        .delete(provider_key("127.0.0.1", 20880), None)
        .await
        .unwrap();
    assert_eventually!(
        model.endpoints(HOST)
            == [
                ("127.0.0.2".to_owned(), 20881),
                ("127.0.0.4".to_owned(), 20880)
            ],
        "the deleted provider is still in the model: {:?}",
        model.endpoints(HOST)
    );

    // Revoking the lease deletes every key attached to it: the service is gone.
    client.lease_revoke(lease).await.unwrap();
    assert_eventually!(
        model.service(HOST).is_none(),
        "providers of a revoked lease are still in the model: {:?}",
        model.endpoints(HOST)
    );
    assert!(model.up());
    assert_eq!(model.downs, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_outage_keeps_endpoints_and_a_restart_recovers() {
    logs::init();
    let mut server = EtcdServer::start().await.unwrap();
    {
        let mut client = client(&server).await;
        write_dubbo_layout(&mut client).await;
        // dynamic=false providers are persistent keys, so they survive the restart unchanged.
        client
            .put(provider_key("127.0.0.1", 20880), "", None)
            .await
            .unwrap();
    }
    let mut model = Model::start("etcd-outage", 64, |sink| etcd::run(source(&server), sink));
    assert_eventually!(
        model.up() && model.endpoints(HOST).len() == 1,
        "the provider never reached the model"
    );

    server.stop().unwrap();
    assert_eventually!(!model.up(), "the registry is never reported down");
    let service = model
        .service(HOST)
        .expect("endpoints are kept while etcd is down");
    assert_eq!(service.endpoints.len(), 1);
    assert!(
        service.stale_registries.contains("etcd-outage"),
        "{service:?}"
    );
    assert_eq!(model.downs, 1);

    server.restart().await.unwrap();
    assert_eventually!(model.up(), "the registry never comes back up");
    let mut client = client(&server).await;
    client
        .put(provider_key("127.0.0.2", 20880), "", None)
        .await
        .unwrap();
    assert_eventually!(
        model.endpoints(HOST).len() == 2,
        "a provider added after the restart never shows: {:?}",
        model.endpoints(HOST)
    );
    let service = model.service(HOST).unwrap();
    assert!(service.stale_registries.is_empty(), "{service:?}");
    assert_eq!(model.downs, 1, "one outage, one Down");
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_compaction_past_the_watch_relists() {
    logs::init();
    let server = EtcdServer::start().await.unwrap();
    let mut client = client(&server).await;
    write_dubbo_layout(&mut client).await;
    client
        .put(provider_key("127.0.0.1", 20880), "", None)
        .await
        .unwrap();

    // A one-message channel that nobody reads yet: the adapter lists, queues its resync and then
    // blocks on `Up`, before it opens the watch from the listed revision + 1.
    let mut model = Model::start("etcd-compact", 1, |sink| etcd::run(source(&server), sink));
    assert_eventually!(model.pending() == 1, "the adapter never listed");

    // Meanwhile the registry moves on and history is compacted past the listed revision.
    for port in 30000..30050 {
        client
            .put(provider_key("127.0.0.5", port), "", None)
            .await
            .unwrap();
    }
    for port in 30000..30049 {
        client
            .delete(provider_key("127.0.0.5", port), None)
            .await
            .unwrap();
    }
    let revision = client
        .put(provider_key("127.0.0.2", 20880), "", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client
        .compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();

    // The watch starts at a compacted revision, etcd cancels it, and the adapter re-lists.
    let expected = [
        ("127.0.0.1".to_owned(), 20880),
        ("127.0.0.2".to_owned(), 20880),
        ("127.0.0.5".to_owned(), 30049),
    ];
    assert_eventually!(
        model.endpoints(HOST) == expected,
        "the model never converged after the compaction: {:?}",
        model.endpoints(HOST)
    );
    assert!(model.resyncs >= 2, "no re-list after the compaction");
    assert_eq!(model.downs, 0, "a compaction is not an outage");

    // And the new watch follows changes again.
    client
        .delete(provider_key("127.0.0.5", 30049), None)
        .await
        .unwrap();
    assert_eventually!(
        model.endpoints(HOST).len() == 2,
        "the watch after the re-list does not follow deletions"
    );
}
