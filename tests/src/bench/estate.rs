//! The simulated Dubbo estate and the registries holding it: interfaces × providers written
//! exactly as Dubbo writes them (ZooKeeper znodes, etcd leased keys), the plain clients that write
//! them, and the plain-client baselines (listing, watch delay) the bridge is compared against.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use etcd_client as etcd;
use tokio::sync::mpsc;
use zookeeper_client as zk;

use crate::etcd::EtcdServer;
use crate::zookeeper::ZooKeeperServer;

/// Reads the bridge's ZooKeeper adapter keeps in flight while listing (its `LIST_CONCURRENCY`);
/// the plain-client baseline uses the same, so the ratio isolates the bridge's own work.
pub const BASELINE_LIST_CONCURRENCY: usize = 64;
/// ZooKeeper requests in flight while populating; the server throttles a connection above its
/// `globalOutstandingLimit` (1000), so stay below it.
pub const ZK_WRITE_WINDOW: usize = 512;
/// etcd's default `--max-txn-ops` is 128 operations per transaction.
pub const ETCD_TXN_OPS: usize = 128;
/// etcd transactions in flight while populating (one HTTP/2 connection multiplexes them).
pub const ETCD_TXNS_IN_FLIGHT: usize = 16;
/// etcd list page, as the bridge's adapter pages (keeps responses under gRPC's 4 MiB limit).
pub const ETCD_PAGE: i64 = 1000;
/// Lease TTL for the etcd providers: Dubbo keeps its lease alive; one longer than any run is
/// equivalent and needs no keep-alive traffic competing with the measurement.
pub const ETCD_LEASE_TTL_S: i64 = 3600;
/// Interfaces per simulated application: an application instance (one IP) serves several
/// interfaces, as real Dubbo estates do.
pub const INTERFACES_PER_APP: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Which registry holds the estate.
pub enum Kind {
    /// Apache ZooKeeper, Dubbo's default registry.
    ZooKeeper,
    /// etcd v3.
    Etcd,
}

impl Kind {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::ZooKeeper => "ZooKeeper",
            Self::Etcd => "etcd",
        }
    }
}

// The registry contents: what Dubbo providers look like.

/// The shape of the simulated estate.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Dubbo interfaces (one service each).
    pub interfaces: usize,
    /// Providers per interface.
    pub providers: usize,
}

/// One provider registration: where it goes and what it says.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The znode path or etcd key.
    pub key: String,
    /// The provider's IP (ZooKeeper node data, as Curator writes the creating host's address).
    pub ip: String,
}

impl Layout {
    /// All providers of the estate.
    pub fn endpoints(&self) -> usize {
        self.interfaces * self.providers
    }

    /// Instances of the simulated applications (each a distinct IP).
    pub fn instances(&self) -> usize {
        self.interfaces.div_ceil(INTERFACES_PER_APP) * self.providers
    }

    /// The Java name of interface number `i`.
    pub fn interface(i: usize) -> String {
        // Package spread over a few domains, as real estates are; names stay unique by index.
        format!("com.causeway.bench.domain{:02}.BenchService{i:05}", i % 20)
    }

    /// Provider `p` of interface `i`: instance `p` of the application serving `i`.
    pub fn registration(&self, i: usize, p: usize) -> Registration {
        let app = i / INTERFACES_PER_APP;
        provider(&Self::interface(i), app, app * self.providers + p)
    }

    /// Every registration of the estate, interface by interface.
    pub fn all(&self) -> Vec<Registration> {
        let mut all = Vec::with_capacity(self.endpoints());
        for i in 0..self.interfaces {
            for p in 0..self.providers {
                all.push(self.registration(i, p));
            }
        }
        all
    }
}

/// The registration of application `app`'s instance number `instance` serving `iface`.
pub fn provider(iface: &str, app: usize, instance: usize) -> Registration {
    // Instance numbers map onto 10.0.0.0/8, distinct for the first 16 million.
    let n = instance + 1;
    let ip = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    let region = format!("bench-region-{}", app % 3);
    let zone = format!("{region}{}", ['a', 'b', 'c'][n % 3]);
    let pid = 1000 + n % 60_000;
    let timestamp = 1_700_000_000_000u64 + (n as u64) * 7919;
    // Parameters in the sorted order Dubbo prints them, with the set a Dubbo 3.2 provider sends
    // (and the zone/region labels a multi-zone estate adds).
    let url = format!(
        "dubbo://{ip}:20880/{iface}?anyhost=true&application=bench-app-{app:04}\
         &background=false&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false\
         &interface={iface}&methods=create,delete,get,list,search,update&pid={pid}\
         &region={region}&release=3.2.9&service-name-mapping=true&side=provider&threads=200\
         &timeout=3000&timestamp={timestamp}&version=1.0.0&zone={zone}"
    );
    Registration {
        key: format!(
            "/dubbo/{}/providers/{}",
            url_encode(iface),
            url_encode(&url)
        ),
        ip,
    }
}

/// Percent-encodes like Java's `URLEncoder.encode(s, "UTF-8")`, which is what Dubbo uses for
/// provider node names and etcd key segments: letters, digits and `.-*_` stay, space becomes `+`,
/// every other byte `%XX` in upper case. Written here rather than borrowed from the bridge, so the
/// registry contents do not depend on the code under test.
pub fn url_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3 / 2);
    for &b in input.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A small deterministic generator (xorshift64*): the churn picks the same interfaces every run.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x % (n as u64)) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// The registries.

/// A real registry server plus the plain client the bench writes (and measures baselines) with.
pub enum Peer {
    /// ZooKeeper.
    ZooKeeper {
        /// The server guard.
        server: ZooKeeperServer,
        /// The plain client that writes.
        client: zk::Client,
    },
    /// etcd.
    Etcd {
        /// The server guard.
        server: EtcdServer,
        /// The plain client that writes (boxed: the etcd client is several times larger than
        /// the ZooKeeper variant).
        client: Box<etcd::Client>,
        /// The lease every provider key is written with.
        lease: i64,
    },
}

/// Events a plain watcher received: (key, when it arrived).
pub type WatchEvents = mpsc::UnboundedReceiver<(String, Instant)>;

/// A plain client session on `server`.
pub async fn zk_connect(server: &ZooKeeperServer) -> anyhow::Result<zk::Client> {
    // The harness's short tick caps sessions at 5 s; ask for the cap, not the 500 ms minimum, so
    // a loaded machine cannot expire the session holding 100k ephemeral providers.
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .connect(&server.connect_string())
        .await
        .context("connect to ZooKeeper")
}

/// Awaits the futures with at most `window` outstanding. zookeeper-client sends a request when
/// the method is called and the returned future only waits for the reply, so this pipelines.
pub async fn pipelined<T, F>(
    futures: impl IntoIterator<Item = F>,
    window: usize,
    mut check: impl FnMut(Result<T, zk::Error>) -> anyhow::Result<()>,
) -> anyhow::Result<()>
where
    F: Future<Output = Result<T, zk::Error>>,
{
    let mut in_flight = VecDeque::with_capacity(window);
    for future in futures {
        if in_flight.len() >= window
            && let Some(oldest) = in_flight.pop_front()
        {
            check(oldest.await)?;
        }
        in_flight.push_back(future);
    }
    while let Some(future) = in_flight.pop_front() {
        check(future.await)?;
    }
    Ok(())
}

/// Accepts a create that succeeded or found the node already there.
pub fn created<T>(result: Result<T, zk::Error>) -> anyhow::Result<()> {
    match result {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(error) => Err(error).context("create a znode"),
    }
}

impl Peer {
    /// Starts a server of `kind` and connects the writing client.
    pub async fn start(kind: Kind) -> anyhow::Result<Self> {
        match kind {
            Kind::ZooKeeper => {
                let server = ZooKeeperServer::start().await?;
                let client = zk_connect(&server).await?;
                Ok(Self::ZooKeeper { server, client })
            }
            Kind::Etcd => {
                let server = EtcdServer::start().await?;
                let mut client = etcd::Client::connect([server.endpoint()], None)
                    .await
                    .context("connect to etcd")?;
                let lease = client.lease_grant(ETCD_LEASE_TTL_S, None).await?.id();
                Ok(Self::Etcd {
                    server,
                    client: Box::new(client),
                    lease,
                })
            }
        }
    }

    /// The `--registry` URL the bridge watches this registry with.
    pub fn bridge_url(&self) -> String {
        match self {
            Self::ZooKeeper { server, .. } => {
                format!("zookeeper://{}?name=zk-bench", server.connect_string())
            }
            Self::Etcd { server, .. } => format!("etcd://{}?name=etcd-bench", server.addr()),
        }
    }

    /// Writes every provider of `layout`.
    pub async fn populate(&mut self, layout: Layout) -> anyhow::Result<()> {
        let registrations = layout.all();
        match self {
            Self::ZooKeeper { client, .. } => {
                let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
                created(client.create("/dubbo", b"", &persistent).await)?;
                // Parents before children: one session's requests are applied in order, so a
                // provider created after its parent's request was sent finds the parent.
                let mut dirs = Vec::with_capacity(layout.interfaces * 2);
                for i in 0..layout.interfaces {
                    let dir = format!("/dubbo/{}", url_encode(&Layout::interface(i)));
                    let providers = format!("{dir}/providers");
                    dirs.push(dir);
                    dirs.push(providers);
                }
                pipelined(
                    dirs.iter().map(|dir| client.create(dir, b"", &persistent)),
                    ZK_WRITE_WINDOW,
                    created,
                )
                .await?;
                pipelined(
                    registrations
                        .iter()
                        .map(|r| client.create(&r.key, r.ip.as_bytes(), &ephemeral)),
                    ZK_WRITE_WINDOW,
                    |result| result.map(drop).context("create a provider znode"),
                )
                .await
            }
            Self::Etcd { client, lease, .. } => {
                let lease = *lease;
                let value = lease.to_string();
                let mut tasks = tokio::task::JoinSet::new();
                for chunk in registrations.chunks(ETCD_TXN_OPS) {
                    if tasks.len() >= ETCD_TXNS_IN_FLIGHT
                        && let Some(done) = tasks.join_next().await
                    {
                        done??;
                    }
                    let operations: Vec<etcd::TxnOp> = chunk
                        .iter()
                        .map(|r| {
                            etcd::TxnOp::put(
                                r.key.as_str(),
                                value.as_str(),
                                Some(etcd::PutOptions::new().with_lease(lease)),
                            )
                        })
                        .collect();
                    let mut kv = client.kv_client();
                    tasks.spawn(async move {
                        kv.txn(etcd::Txn::new().and_then(operations))
                            .await
                            .map(drop)
                            .context("etcd transaction")
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done??;
                }
                Ok(())
            }
        }
    }

    /// Baseline: a fresh plain client lists every provider once; returns how many it saw.
    pub async fn list_all(&self) -> anyhow::Result<usize> {
        match self {
            Self::ZooKeeper { server, .. } => {
                let client = zk_connect(server).await?;
                let interfaces = client.list_children("/dubbo").await?;
                let dirs: Vec<String> = interfaces
                    .iter()
                    .map(|i| format!("/dubbo/{i}/providers"))
                    .collect();
                let mut count = 0;
                pipelined(
                    dirs.iter().map(|dir| client.list_children(dir)),
                    BASELINE_LIST_CONCURRENCY,
                    |children| {
                        count += children.context("list a providers directory")?.len();
                        Ok(())
                    },
                )
                .await?;
                Ok(count)
            }
            Self::Etcd { server, .. } => {
                let mut client = etcd::Client::connect([server.endpoint()], None).await?;
                // Paged at one revision, keys only: what any consistent lister of a prefix this
                // size has to do.
                let end = b"/dubbo0".to_vec();
                let mut from = b"/dubbo/".to_vec();
                let mut revision = 0;
                let mut count = 0;
                loop {
                    let mut options = etcd::GetOptions::new()
                        .with_range(end.clone())
                        .with_keys_only()
                        .with_limit(ETCD_PAGE);
                    if revision > 0 {
                        options = options.with_revision(revision);
                    }
                    let response = client.get(from.clone(), Some(options)).await?;
                    if revision == 0 {
                        revision = response
                            .header()
                            .map(|h| h.revision())
                            .ok_or_else(|| anyhow!("etcd response without a header"))?;
                    }
                    count += response.kvs().len();
                    match response.kvs().last() {
                        Some(last) if response.more() => {
                            from = last.key().to_vec();
                            from.push(0);
                        }
                        _ => return Ok(count),
                    }
                }
            }
        }
    }

    /// Baseline: a plain watcher on the Dubbo root, timestamping every node event on arrival.
    pub async fn watch(&self) -> anyhow::Result<WatchEvents> {
        let (sender, receiver) = mpsc::unbounded_channel();
        match self {
            Self::ZooKeeper { server, .. } => {
                let client = zk_connect(server).await?;
                // The same kind of watch the bridge's adapter adds.
                let mut watcher = client
                    .watch("/dubbo", zk::AddWatchMode::PersistentRecursive)
                    .await?;
                tokio::spawn(async move {
                    // Owning the client keeps the watcher's session open.
                    let _client = client;
                    loop {
                        let event = watcher.changed().await;
                        let at = Instant::now();
                        if event.event_type == zk::EventType::Session {
                            if event.session_state.is_terminated() {
                                return;
                            }
                            continue;
                        }
                        if sender.send((event.path, at)).is_err() {
                            return;
                        }
                    }
                });
            }
            Self::Etcd { server, .. } => {
                let mut client = etcd::Client::connect([server.endpoint()], None).await?;
                let mut stream = client
                    .watch("/dubbo/", Some(etcd::WatchOptions::new().with_prefix()))
                    .await?;
                tokio::spawn(async move {
                    let _client = client;
                    while let Ok(Some(response)) = stream.message().await {
                        let at = Instant::now();
                        for event in response.events() {
                            if let Some(kv) = event.kv() {
                                let key = String::from_utf8_lossy(kv.key()).into_owned();
                                if sender.send((key, at)).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        }
        Ok(receiver)
    }

    /// Registers one provider as Dubbo does (ephemeral / leased).
    pub async fn add(&mut self, registration: &Registration) -> anyhow::Result<()> {
        match self {
            Self::ZooKeeper { client, .. } => {
                let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
                client
                    .create(&registration.key, registration.ip.as_bytes(), &ephemeral)
                    .await?;
            }
            Self::Etcd { client, lease, .. } => {
                let options = etcd::PutOptions::new().with_lease(*lease);
                client
                    .put(registration.key.as_str(), lease.to_string(), Some(options))
                    .await?;
            }
        }
        Ok(())
    }

    /// Unregisters one provider as Dubbo does on shutdown.
    pub async fn remove(&mut self, registration: &Registration) -> anyhow::Result<()> {
        match self {
            Self::ZooKeeper { client, .. } => client.delete(&registration.key, None).await?,
            Self::Etcd { client, .. } => {
                client.delete(registration.key.as_str(), None).await?;
            }
        }
        Ok(())
    }
}

/// Waits for the watcher's event on `key` that arrived at or after `since`.
pub async fn watched(
    events: &mut WatchEvents,
    seen: &mut HashMap<String, Instant>,
    key: &str,
    since: Instant,
    patience: Duration,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(at) = seen.get(key).filter(|at| **at >= since) {
            return Some(*at);
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some((path, at))) => {
                seen.insert(path, at);
            }
            Ok(None) | Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_java() {
        assert_eq!(
            url_encode("dubbo://1.2.3.4:20880/a.B?x=1&m=a,b c"),
            "dubbo%3A%2F%2F1.2.3.4%3A20880%2Fa.B%3Fx%3D1%26m%3Da%2Cb+c"
        );
    }

    #[test]
    fn providers_are_distinct_and_dubbo_shaped() {
        let layout = Layout {
            interfaces: 25,
            providers: 3,
        };
        let all = layout.all();
        let keys: std::collections::HashSet<&str> = all.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys.len(), 75);
        assert!(all[0].key.starts_with(
            "/dubbo/com.causeway.bench.domain00.BenchService00000/providers/dubbo%3A%2F%2F10.0.0.1%3A20880%2F"
        ));
        // Interfaces of one application share its instances' IPs.
        assert_eq!(layout.registration(0, 1).ip, layout.registration(9, 1).ip);
        assert_ne!(layout.registration(0, 1).ip, layout.registration(10, 1).ip);
    }
}
