//! `bridge-bench`: the bridge's registry-scale benchmark, against real registries and the real
//! `causeway-bridge` binary, in one command (`scripts/bench-bridge.sh`).
//!
//! For each registry asked for (ZooKeeper, etcd) it:
//!
//! 1. starts a real server through the harness and writes `--interfaces` × `--providers` Dubbo
//!    providers the way Dubbo writes them (ZooKeeper: persistent `/dubbo/<iface>/providers`
//!    parents and ephemeral znodes named by the URL-encoded provider URL; etcd: keys
//!    `/dubbo/<iface>/providers/<encoded url>` on a lease, valued with the lease id), with many
//!    requests in flight. The population is timed and printed, but is not one of the figures.
//! 2. measures the baselines the ratios are taken against, with plain clients in this process:
//!    listing every provider once (same read concurrency as the bridge's adapter), and, on the very
//!    writes of the churn phase, the raw watch delay from a write to a plain watcher's event.
//! 3. starts the release `causeway-bridge` as a child process and measures the **cold sync**: from
//!    just before the process is spawned until `/metrics` reports every endpoint (polled every
//!    10 ms); then its RSS (`VmRSS`, `VmHWM` from `/proc/<pid>/status`) and CPU time.
//! 4. churns at a steady rate (`--churn-per-sec`), alternately adding a provider to a random
//!    interface and removing it again, and times each **change → snapshot**: from just before the
//!    registry write until `/metrics` shows `causeway_bridge_snapshots_total` incremented with the
//!    expected `causeway_bridge_endpoints` (polled every 2 ms; `/metrics` is the lightest signal the
//!    bridge exposes, a few hundred bytes). The bridge's own
//!    `causeway_bridge_change_to_snapshot_seconds` histogram over the same phase is reported as a
//!    cross-check (it starts when the adapter sees the event, so it excludes the watch delay).
//! 5. prints a summary against the targets (cold sync ≤ 10 s, change → snapshot p99 ≤ 150 ms,
//!    RSS ≤ 300 MB) and appends it to the "Bridge: registry scale" section of
//!    `docs/benchmarks.md`.
//!
//! Changes are serialised: a write waits for the previous change's snapshot (and for its own slot
//! in the schedule), so every snapshot is attributable to exactly one change. The requested rate
//! is therefore achieved only while latencies stay below its period; the achieved rate is
//! reported. Launched by `cargo run`, the bench first builds `causeway-bridge` in the same target
//! directory and profile, so the figures are always for the current source.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use causeway_tests::etcd::EtcdServer;
use causeway_tests::paths::workspace_root;
use causeway_tests::ports::free_port;
use causeway_tests::process::PeerProcess;
use causeway_tests::zookeeper::ZooKeeperServer;
use etcd_client as etcd;
use tokio::sync::mpsc;
use zookeeper_client as zk;

/// Targets from the issue.
const TARGET_COLD_SYNC: Duration = Duration::from_secs(10);
const TARGET_P99: Duration = Duration::from_millis(150);
const TARGET_RSS_MB: f64 = 300.0;

/// Polling periods: cold sync is measured in seconds, change latency in tens of milliseconds.
const SYNC_POLL: Duration = Duration::from_millis(10);
const CHANGE_POLL: Duration = Duration::from_millis(2);
/// A change not in a snapshot after this long counts as lost (and as this latency).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads the bridge's ZooKeeper adapter keeps in flight while listing (its `LIST_CONCURRENCY`);
/// the plain-client baseline uses the same, so the ratio isolates the bridge's own work.
const BASELINE_LIST_CONCURRENCY: usize = 64;
/// ZooKeeper requests in flight while populating; the server throttles a connection above its
/// `globalOutstandingLimit` (1000), so stay below it.
const ZK_WRITE_WINDOW: usize = 512;
/// etcd's default `--max-txn-ops` is 128 operations per transaction.
const ETCD_TXN_OPS: usize = 128;
/// etcd transactions in flight while populating (one HTTP/2 connection multiplexes them).
const ETCD_TXNS_IN_FLIGHT: usize = 16;
/// etcd list page, as the bridge's adapter pages (keeps responses under gRPC's 4 MiB limit).
const ETCD_PAGE: i64 = 1000;
/// Lease TTL for the etcd providers: Dubbo keeps its lease alive; one longer than any run is
/// equivalent and needs no keep-alive traffic competing with the measurement.
const ETCD_LEASE_TTL_S: i64 = 3600;
/// Interfaces per simulated application: an application instance (one IP) serves several
/// interfaces, as real Dubbo estates do.
const INTERFACES_PER_APP: usize = 10;
/// Linux reports `/proc/<pid>/stat` CPU times in USER_HZ, which is 100 on every architecture.
const USER_HZ: f64 = 100.0;

const USAGE: &str = "\
usage: bridge-bench [--registry zookeeper|etcd|all] [--interfaces N] [--providers N]
                    [--changes N] [--churn-per-sec R] [--sync-timeout-s S]
                    [--serviceentry-dir] [--doc PATH | --no-doc] [--bridge PATH] [--no-build]

  --registry          which registry to benchmark (default: all)
  --interfaces        Dubbo interfaces to register (default: 10000)
  --providers         providers per interface (default: 10)
  --changes           single-provider changes to time (default: 200)
  --churn-per-sec     change rate of the churn phase (default: 5)
  --sync-timeout-s    give up on the cold sync after this long (default: 120)
  --serviceentry-dir  also run the bridge's ServiceEntry writer (into a temporary directory)
  --doc PATH          append the results here (default: docs/benchmarks.md of the workspace)
  --no-doc            do not write the results anywhere but stdout
  --bridge PATH       the causeway-bridge binary (default: next to this executable)
  --no-build          do not build causeway-bridge first (default: build it when run by cargo)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ZooKeeper,
    Etcd,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::ZooKeeper => "ZooKeeper",
            Self::Etcd => "etcd",
        }
    }
}

#[derive(Debug)]
struct Options {
    registries: Vec<Kind>,
    interfaces: usize,
    providers: usize,
    changes: usize,
    churn_per_sec: f64,
    sync_timeout: Duration,
    serviceentry_dir: bool,
    doc: Option<PathBuf>,
    bridge: Option<PathBuf>,
    build: bool,
}

impl Options {
    /// Parses the arguments; `Ok(None)` when help was asked for.
    fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Self>> {
        let mut options = Self {
            registries: vec![Kind::ZooKeeper, Kind::Etcd],
            interfaces: 10_000,
            providers: 10,
            changes: 200,
            churn_per_sec: 5.0,
            sync_timeout: Duration::from_secs(120),
            serviceentry_dir: false,
            doc: Some(workspace_root().join("docs").join("benchmarks.md")),
            bridge: None,
            build: true,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| anyhow!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--registry" => {
                    options.registries = match value()?.as_str() {
                        "zookeeper" | "zk" => vec![Kind::ZooKeeper],
                        "etcd" => vec![Kind::Etcd],
                        "all" => vec![Kind::ZooKeeper, Kind::Etcd],
                        other => bail!("--registry {other:?}: expected zookeeper, etcd or all"),
                    }
                }
                "--interfaces" => options.interfaces = value()?.parse().context("--interfaces")?,
                "--providers" => options.providers = value()?.parse().context("--providers")?,
                "--changes" => options.changes = value()?.parse().context("--changes")?,
                "--churn-per-sec" => {
                    options.churn_per_sec = value()?.parse().context("--churn-per-sec")?;
                }
                "--sync-timeout-s" => {
                    options.sync_timeout =
                        Duration::from_secs(value()?.parse().context("--sync-timeout-s")?);
                }
                "--serviceentry-dir" => options.serviceentry_dir = true,
                "--doc" => options.doc = Some(PathBuf::from(value()?)),
                "--no-doc" => options.doc = None,
                "--bridge" => options.bridge = Some(PathBuf::from(value()?)),
                "--no-build" => options.build = false,
                "-h" | "--help" => return Ok(None),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        ensure!(
            options.interfaces > 0 && options.providers > 0,
            "--interfaces and --providers must be positive"
        );
        ensure!(options.changes > 0, "--changes must be positive");
        ensure!(
            options.churn_per_sec.is_finite() && options.churn_per_sec > 0.0,
            "--churn-per-sec must be positive"
        );
        Ok(Some(options))
    }
}

// ---------------------------------------------------------------------------------------------
// The registry contents: what Dubbo providers look like.

/// The shape of the simulated estate.
#[derive(Debug, Clone, Copy)]
struct Layout {
    interfaces: usize,
    providers: usize,
}

/// One provider registration: where it goes and what it says.
#[derive(Debug, Clone)]
struct Registration {
    /// The znode path or etcd key.
    key: String,
    /// The provider's IP (ZooKeeper node data, as Curator writes the creating host's address).
    ip: String,
}

impl Layout {
    fn endpoints(&self) -> usize {
        self.interfaces * self.providers
    }

    /// Instances of the simulated applications (each a distinct IP).
    fn instances(&self) -> usize {
        self.interfaces.div_ceil(INTERFACES_PER_APP) * self.providers
    }

    fn interface(i: usize) -> String {
        // Package spread over a few domains, as real estates are; names stay unique by index.
        format!("com.causeway.bench.domain{:02}.BenchService{i:05}", i % 20)
    }

    /// Provider `p` of interface `i`: instance `p` of the application serving `i`.
    fn registration(&self, i: usize, p: usize) -> Registration {
        let app = i / INTERFACES_PER_APP;
        provider(&Self::interface(i), app, app * self.providers + p)
    }

    fn all(&self) -> Vec<Registration> {
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
fn provider(iface: &str, app: usize, instance: usize) -> Registration {
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
fn url_encode(input: &str) -> String {
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
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
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
enum Peer {
    ZooKeeper {
        server: ZooKeeperServer,
        client: zk::Client,
    },
    Etcd {
        server: EtcdServer,
        // Boxed: the etcd client is several times larger than the ZooKeeper variant.
        client: Box<etcd::Client>,
        lease: i64,
    },
}

/// Events a plain watcher received: (key, when it arrived).
type WatchEvents = mpsc::UnboundedReceiver<(String, Instant)>;

async fn zk_connect(server: &ZooKeeperServer) -> anyhow::Result<zk::Client> {
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
async fn pipelined<T, F>(
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

fn created<T>(result: Result<T, zk::Error>) -> anyhow::Result<()> {
    match result {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(error) => Err(error).context("create a znode"),
    }
}

impl Peer {
    async fn start(kind: Kind) -> anyhow::Result<Self> {
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

    fn bridge_url(&self) -> String {
        match self {
            Self::ZooKeeper { server, .. } => {
                format!("zookeeper://{}?name=zk-bench", server.connect_string())
            }
            Self::Etcd { server, .. } => format!("etcd://{}?name=etcd-bench", server.addr()),
        }
    }

    /// Writes every provider of `layout`.
    async fn populate(&mut self, layout: Layout) -> anyhow::Result<()> {
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
    async fn list_all(&self) -> anyhow::Result<usize> {
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
    async fn watch(&self) -> anyhow::Result<WatchEvents> {
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
    async fn add(&mut self, registration: &Registration) -> anyhow::Result<()> {
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
    async fn remove(&mut self, registration: &Registration) -> anyhow::Result<()> {
        match self {
            Self::ZooKeeper { client, .. } => client.delete(&registration.key, None).await?,
            Self::Etcd { client, .. } => {
                client.delete(registration.key.as_str(), None).await?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The bridge process and what it exposes.

/// The bridge's `/metrics`, the parts the bench reads.
#[derive(Debug, Clone, Default)]
struct Metrics {
    snapshots: u64,
    endpoints: u64,
    services: u64,
    /// Cumulative `change_to_snapshot_seconds` buckets: (upper bound, count).
    buckets: Vec<(String, u64)>,
}

impl Metrics {
    fn parse(text: &str) -> Self {
        let mut metrics = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            // Counters and gauges print as integers; anything else (sums) is not read here.
            let number = || value.parse::<u64>().ok();
            match series {
                "causeway_bridge_snapshots_total" => {
                    metrics.snapshots = number().unwrap_or_default();
                }
                "causeway_bridge_endpoints" => metrics.endpoints = number().unwrap_or_default(),
                "causeway_bridge_services" => metrics.services = number().unwrap_or_default(),
                _ => {
                    if let Some(le) = series
                        .strip_prefix("causeway_bridge_change_to_snapshot_seconds_bucket{le=\"")
                        .and_then(|rest| rest.strip_suffix("\"}"))
                    {
                        metrics
                            .buckets
                            .push((le.to_owned(), number().unwrap_or_default()));
                    }
                }
            }
        }
        metrics
    }
}

/// Reads the admin server's `/metrics` over one kept-alive connection.
struct Scraper {
    http: reqwest::Client,
    url: String,
}

impl Scraper {
    fn new(admin: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()?,
            url: format!("http://{admin}/metrics"),
        })
    }

    async fn scrape(&self) -> anyhow::Result<Metrics> {
        let text = self
            .http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Metrics::parse(&text))
    }
}

/// Memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss_kb: u64,
    hwm_kb: u64,
}

impl Memory {
    fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse().ok())
                .unwrap_or_default()
        };
        Ok(Self {
            rss_kb: field("VmRSS:"),
            hwm_kb: field("VmHWM:"),
        })
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// User + system CPU time a process has used so far.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime are
    // fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / USER_HZ))
}

/// The running `causeway-bridge` child.
struct Bridge {
    process: PeerProcess,
    log: PathBuf,
    scraper: Scraper,
}

impl Bridge {
    fn spawn(
        binary: &Path,
        registry_url: &str,
        log_dir: &Path,
        serviceentry_dir: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let xds = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let name = "causeway-bridge";
        let log = log_dir.join(format!("{name}.log"));
        // The log is appended to by the harness; start each run with an empty one.
        let _ = std::fs::remove_file(&log);
        let mut command = Command::new(binary);
        command
            .args(["--registry", registry_url])
            .args(["--admin-listen", &admin.to_string()])
            // Its own xDS port, so a bridge someone else runs on the default one cannot clash.
            .args(["--xds-listen", &xds.to_string()])
            // The adapters' debug lines report how long a listing took; nothing per event.
            .env("RUST_LOG", "info,causeway_bridge::registry=debug")
            .env("NO_COLOR", "1");
        if let Some(dir) = serviceentry_dir {
            command.arg("--serviceentry-dir").arg(dir);
        }
        let process = PeerProcess::spawn_in(name, command, log_dir)?;
        Ok(Self {
            process,
            log,
            scraper: Scraper::new(admin)?,
        })
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first error the bridge logged, if any.
    fn logged_error(&self) -> Option<String> {
        self.log_text()
            .lines()
            .find(|l| l.contains(" ERROR "))
            .map(str::to_owned)
    }

    /// How long the adapter's first listing took: its own `took_ms` when its debug line reports
    /// one (ZooKeeper), else from the log timestamps, adapter start → resync sent (etcd).
    fn listing_time(&self) -> Option<Duration> {
        let text = self.log_text();
        let resync = text.lines().find(|l| l.contains(" resync "))?;
        if let Some(at) = resync.find("took_ms=") {
            let digits = &resync[at + "took_ms=".len()..];
            let ms = digits.split(|c: char| !c.is_ascii_digit()).next()?;
            return ms.parse().ok().map(Duration::from_millis);
        }
        let start = text
            .lines()
            .find(|l| l.contains("starting registry adapter"))?;
        let took = log_seconds(resync)? - log_seconds(start)?;
        // Negative across midnight: unknown rather than wrong.
        (took >= 0.0).then(|| Duration::from_secs_f64(took))
    }
}

/// Seconds into the day of a text log line (`2026-01-02T03:04:05.678901Z …`).
fn log_seconds(line: &str) -> Option<f64> {
    let time = line.get(11..)?.split(['Z', ' ']).next()?;
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/// One timed change.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Write → snapshot visible on `/metrics`.
    latency: Duration,
    /// Write → a plain watcher's event, when it arrived.
    watch: Option<Duration>,
    /// Write → the registry acknowledged it.
    ack: Duration,
    /// When the write was issued (for the achieved rate).
    written: Instant,
}

/// Everything measured for one registry.
#[derive(Debug)]
struct Figures {
    layout: Layout,
    populate: Duration,
    baseline_list: Duration,
    baseline_listed: usize,
    cold_sync: Duration,
    admin_up: Option<Duration>,
    listing: Option<Duration>,
    services: u64,
    sync_cpu: Duration,
    memory_synced: Memory,
    samples: Vec<Sample>,
    timeouts: usize,
    churn_elapsed: Duration,
    churn_cpu: Duration,
    memory_churned: Memory,
    histogram: Vec<(String, u64)>,
    load_before: String,
}

/// The `q`-th percentile (nearest rank) of `sorted`.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 / p90 / p99 / max of some durations, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Spread {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    n: usize,
}

impl Spread {
    fn of(mut values: Vec<Duration>) -> Self {
        values.sort();
        Self {
            p50: percentile(&values, 50.0),
            p90: percentile(&values, 90.0),
            p99: percentile(&values, 99.0),
            max: values.last().copied().unwrap_or_default(),
            n: values.len(),
        }
    }

    fn cells(&self) -> String {
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1}",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_owned())
}

/// Waits for the watcher's event on `key` that arrived at or after `since`.
async fn watched(
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

async fn bench(
    kind: Kind,
    options: &Options,
    binary: &Path,
    log_dir: &Path,
) -> anyhow::Result<Figures> {
    let layout = Layout {
        interfaces: options.interfaces,
        providers: options.providers,
    };
    let expected = layout.endpoints() as u64;
    println!("\n== {}: starting the server", kind.name());
    let mut peer = Peer::start(kind).await?;

    let started = Instant::now();
    peer.populate(layout).await?;
    let populate = started.elapsed();
    println!(
        "   populated {} interfaces × {} providers in {:.1} s (not a figure)",
        layout.interfaces,
        layout.providers,
        populate.as_secs_f64()
    );

    let started = Instant::now();
    let baseline_listed = peer.list_all().await?;
    let baseline_list = started.elapsed();
    ensure!(
        baseline_listed == layout.endpoints(),
        "the plain client listed {baseline_listed} providers, expected {}",
        layout.endpoints()
    );
    println!(
        "   baseline: a plain client listed {baseline_listed} providers in {:.2} s",
        baseline_list.as_secs_f64()
    );

    let serviceentry = if options.serviceentry_dir {
        Some(PeerProcess::temp_dir("bench-serviceentries")?)
    } else {
        None
    };
    let load_before = load_average();
    let started = Instant::now();
    let mut bridge = Bridge::spawn(
        binary,
        &peer.bridge_url(),
        log_dir,
        serviceentry.as_ref().map(|d| d.path()),
    )?;
    let mut admin_up = None;
    let mut polls = 0u64;
    let synced = loop {
        bridge.process.ensure_running()?;
        if let Ok(metrics) = bridge.scraper.scrape().await {
            admin_up.get_or_insert_with(|| started.elapsed());
            if metrics.endpoints == expected {
                break metrics;
            }
        }
        polls += 1;
        // Reading the log costs more than a scrape: every half second is enough to fail fast
        // (an adapter missing from the build logs an error and never lists).
        if polls.is_multiple_of(50)
            && let Some(line) = bridge.logged_error()
        {
            bail!("the bridge logged an error during the cold sync: {line}");
        }
        if started.elapsed() > options.sync_timeout {
            bail!(
                "no snapshot with {expected} endpoints after {:?}; bridge log:\n{}",
                options.sync_timeout,
                bridge.process.log_tail(20)
            );
        }
        tokio::time::sleep(SYNC_POLL).await;
    };
    let cold_sync = started.elapsed();
    let memory_synced = Memory::of(bridge.pid())?;
    let sync_cpu = cpu_time(bridge.pid())?;
    println!(
        "   cold sync: {expected} endpoints in {:.2} s; RSS {:.0} MB (peak {:.0} MB)",
        cold_sync.as_secs_f64(),
        mb(memory_synced.rss_kb),
        mb(memory_synced.hwm_kb)
    );

    // Churn. The plain watcher starts now, so it only sees the churn's writes.
    let mut events = peer.watch().await?;
    let mut seen = HashMap::new();
    let before_churn = bridge.scraper.scrape().await?;
    let cpu_before_churn = cpu_time(bridge.pid())?;
    let period = Duration::from_secs_f64(1.0 / options.churn_per_sec);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut next_instance = layout.instances();
    let mut pending_removal: Option<Registration> = None;
    let mut endpoints = expected;
    let mut samples = Vec::with_capacity(options.changes);
    let mut timeouts = 0;
    let churn_started = Instant::now();
    let mut next_write = tokio::time::Instant::now();
    for change in 0..options.changes {
        tokio::time::sleep_until(next_write).await;
        // A steady schedule; a late change does not make the next ones burst to catch up.
        next_write = (next_write + period).max(tokio::time::Instant::now());
        let before = bridge.scraper.scrape().await?;
        let (registration, adding) = match pending_removal.take() {
            Some(registration) => (registration, false),
            None => {
                let i = rng.below(layout.interfaces);
                next_instance += 1;
                let app = i / INTERFACES_PER_APP;
                (provider(&Layout::interface(i), app, next_instance), true)
            }
        };
        endpoints = if adding { endpoints + 1 } else { endpoints - 1 };
        let t0 = Instant::now();
        if adding {
            peer.add(&registration).await?;
        } else {
            peer.remove(&registration).await?;
        }
        let ack = t0.elapsed();
        let latency = loop {
            let metrics = bridge.scraper.scrape().await?;
            if metrics.snapshots > before.snapshots && metrics.endpoints == endpoints {
                break t0.elapsed();
            }
            if t0.elapsed() > CHANGE_TIMEOUT {
                timeouts += 1;
                eprintln!("   change {change} not in a snapshot after {CHANGE_TIMEOUT:?}");
                break CHANGE_TIMEOUT;
            }
            tokio::time::sleep(CHANGE_POLL).await;
        };
        let watch = watched(
            &mut events,
            &mut seen,
            &registration.key,
            t0,
            Duration::from_secs(2),
        )
        .await
        .map(|at| at.saturating_duration_since(t0));
        samples.push(Sample {
            latency,
            watch,
            ack,
            written: t0,
        });
        if adding {
            pending_removal = Some(registration);
        }
    }
    let churn_elapsed = churn_started.elapsed();
    let after_churn = bridge.scraper.scrape().await?;
    let churn_cpu = cpu_time(bridge.pid())?.saturating_sub(cpu_before_churn);
    let memory_churned = Memory::of(bridge.pid())?;
    let histogram = after_churn
        .buckets
        .iter()
        .map(|(le, after)| {
            let before = before_churn
                .buckets
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0, |(_, c)| *c);
            (le.clone(), after.saturating_sub(before))
        })
        .collect();
    if let Some(line) = bridge.logged_error() {
        eprintln!("   note: the bridge logged an error: {line}");
    }
    Ok(Figures {
        layout,
        populate,
        baseline_list,
        baseline_listed,
        cold_sync,
        admin_up,
        listing: bridge.listing_time(),
        services: synced.services,
        sync_cpu,
        memory_synced,
        samples,
        timeouts,
        churn_elapsed,
        churn_cpu,
        memory_churned,
        histogram,
        load_before,
    })
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn verdict(met: bool) -> &'static str {
    if met { "✅ met" } else { "❌ missed" }
}

/// `YYYY-MM-DD HH:MM UTC` for a time since the epoch (civil-from-days over the proleptic
/// Gregorian calendar).
fn utc_date(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let os = std::fs::read_to_string("/etc/debian_version")
        .map(|v| format!("Debian {}", v.trim()))
        .unwrap_or_else(|_| "Linux".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {memory_gib:.0} GiB, {os}, kernel {}",
        kernel.trim()
    )
}

fn revision() -> String {
    let head = command_output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = command_output("git", &["status", "--porcelain", "--", "bridge"])
        .is_some_and(|s| !s.is_empty());
    match (head.is_empty(), dirty) {
        (true, _) => "unknown".to_owned(),
        (false, true) => format!("`{head}` + uncommitted bridge changes"),
        (false, false) => format!("`{head}`"),
    }
}

/// The results of one run as Markdown (printed, and appended to the doc).
fn report(
    options: &Options,
    results: &[(Kind, anyhow::Result<Figures>)],
    started: SystemTime,
    load_after: &str,
) -> String {
    let mut out = String::new();
    let date = utc_date(started.duration_since(UNIX_EPOCH).unwrap_or_default());
    let registries: Vec<&str> = results.iter().map(|(k, _)| k.name()).collect();
    let _ = writeln!(out, "### Run of {date} ({})\n", registries.join(", "));
    let _ = writeln!(out, "- Machine: {}", machine());
    let _ = writeln!(out, "- Revision: {}", revision());
    let _ = writeln!(
        out,
        "- Command: `scripts/bench-bridge.sh --registry {} --interfaces {} --providers {} \
         --changes {} --churn-per-sec {}{}`",
        match options.registries.as_slice() {
            [Kind::ZooKeeper] => "zookeeper",
            [Kind::Etcd] => "etcd",
            _ => "all",
        },
        options.interfaces,
        options.providers,
        options.changes,
        options.churn_per_sec,
        if options.serviceentry_dir {
            " --serviceentry-dir"
        } else {
            ""
        }
    );
    if let Some(bridge) = &options.bridge {
        // Figures from a binary other than this checkout's must say so.
        let _ = writeln!(
            out,
            "- Bridge binary given with `--bridge {}`, not built from this checkout",
            bridge.display()
        );
    }
    let _ = writeln!(
        out,
        "- Bridge: release build, default debounce (50 ms quiet / 1 s max){}; load average \
         (1/5/15 min) at the end: {load_after}\n",
        if options.serviceentry_dir {
            ", ServiceEntry writer on"
        } else {
            ", no ServiceEntry output"
        }
    );

    let _ = writeln!(
        out,
        "| Registry | Cold sync (s) ≤ {} | RSS after sync / churn, peak (MB) ≤ {} | \
         Change→snapshot p50 / p99 (ms), p99 ≤ {} |",
        TARGET_COLD_SYNC.as_secs(),
        TARGET_RSS_MB,
        TARGET_P99.as_millis()
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for (kind, result) in results {
        match result {
            Ok(f) => {
                let spread = Spread::of(f.samples.iter().map(|s| s.latency).collect());
                let peak = mb(f.memory_synced.hwm_kb.max(f.memory_churned.hwm_kb));
                let _ = writeln!(
                    out,
                    "| {} | {:.2} {} | {:.0} / {:.0}, {:.0} {} | {:.1} / {:.1} {} |",
                    kind.name(),
                    f.cold_sync.as_secs_f64(),
                    verdict(f.cold_sync <= TARGET_COLD_SYNC),
                    mb(f.memory_synced.rss_kb),
                    mb(f.memory_churned.rss_kb),
                    peak,
                    verdict(peak <= TARGET_RSS_MB),
                    ms(spread.p50),
                    ms(spread.p99),
                    verdict(spread.p99 <= TARGET_P99 && f.timeouts == 0),
                );
            }
            Err(error) => {
                let reason = format!("{error:#}").replace('\n', " ").replace('|', "\\|");
                let _ = writeln!(
                    out,
                    "| {} | not measured: {} | | |",
                    kind.name(),
                    reason.chars().take(300).collect::<String>()
                );
            }
        }
    }
    for (kind, result) in results {
        let Ok(f) = result else { continue };
        let _ = writeln!(out);
        let _ = writeln!(out, "#### {}\n", kind.name());
        let latency = Spread::of(f.samples.iter().map(|s| s.latency).collect());
        let watch = Spread::of(f.samples.iter().filter_map(|s| s.watch).collect());
        let ack = Spread::of(f.samples.iter().map(|s| s.ack).collect());
        let ratio = |a: Duration, b: Duration| {
            if b.is_zero() {
                "n/a".to_owned()
            } else {
                format!("{:.1}×", a.as_secs_f64() / b.as_secs_f64())
            }
        };
        let _ = writeln!(out, "| Figure | Value | Baseline / note |");
        let _ = writeln!(out, "|---|---|---|");
        let _ = writeln!(
            out,
            "| Registry content | {} interfaces × {} providers = {} endpoints, {} services in \
             the snapshot | populated in {:.1} s (not a figure) |",
            f.layout.interfaces,
            f.layout.providers,
            f.layout.endpoints(),
            f.services,
            f.populate.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "| Cold sync (process start → all endpoints on `/metrics`) | {:.2} s (admin up after \
             {:.2} s{}; bridge CPU {:.1} s) | plain client lists all {} in {:.2} s → ratio {} |",
            f.cold_sync.as_secs_f64(),
            f.admin_up.unwrap_or_default().as_secs_f64(),
            f.listing
                .map(|l| format!("; adapter listing {:.2} s", l.as_secs_f64()))
                .unwrap_or_default(),
            f.sync_cpu.as_secs_f64(),
            f.baseline_listed,
            f.baseline_list.as_secs_f64(),
            ratio(f.cold_sync, f.baseline_list)
        );
        let _ = writeln!(
            out,
            "| RSS after sync (VmRSS / VmHWM) | {:.0} / {:.0} MB | load average before the bridge \
             started: {} |",
            mb(f.memory_synced.rss_kb),
            mb(f.memory_synced.hwm_kb),
            f.load_before
        );
        let _ = writeln!(
            out,
            "| RSS after churn (VmRSS / VmHWM) | {:.0} / {:.0} MB | |",
            mb(f.memory_churned.rss_kb),
            mb(f.memory_churned.hwm_kb)
        );
        let _ = writeln!(
            out,
            "| Change → snapshot p50 / p90 / p99 / max | {} ms ({} samples{}) | raw watch delay \
             {} ms → ratio p50 {}, p99 {} |",
            latency.cells(),
            latency.n,
            if f.timeouts > 0 {
                format!(", {} lost after {CHANGE_TIMEOUT:?}", f.timeouts)
            } else {
                String::new()
            },
            watch.cells(),
            ratio(latency.p50, watch.p50),
            ratio(latency.p99, watch.p99)
        );
        // Per change, so the difference is the bridge's share of that change's latency.
        let own = Spread::of(
            f.samples
                .iter()
                .filter_map(|s| Some(s.latency.saturating_sub(s.watch?)))
                .collect(),
        );
        let _ = writeln!(
            out,
            "| Bridge's share (change → snapshot minus that change's watch delay), p50 / p99 | \
             {:.1} / {:.1} ms | includes the debounce quiet period |",
            ms(own.p50),
            ms(own.p99)
        );
        let _ = writeln!(
            out,
            "| Registry write acknowledged, p50 / p99 | {:.1} / {:.1} ms | |",
            ms(ack.p50),
            ms(ack.p99)
        );
        // Writes per second between the first and the last write.
        let rate = match (f.samples.first(), f.samples.last()) {
            (Some(first), Some(last)) if f.samples.len() > 1 => {
                let span = last.written.duration_since(first.written).as_secs_f64();
                (f.samples.len() - 1) as f64 / span.max(f64::EPSILON)
            }
            _ => 0.0,
        };
        let _ = writeln!(
            out,
            "| Churn | {} changes in {:.1} s = {:.2}/s (asked {}/s); bridge CPU {:.1} s = {:.0}% \
             of a core | |",
            f.samples.len(),
            f.churn_elapsed.as_secs_f64(),
            rate,
            options.churn_per_sec,
            f.churn_cpu.as_secs_f64(),
            100.0 * f.churn_cpu.as_secs_f64() / f.churn_elapsed.as_secs_f64().max(f64::EPSILON)
        );
        let _ = writeln!(
            out,
            "| Bridge histogram `change_to_snapshot_seconds` over the churn (count per bucket) | \
             {} | starts when the adapter sees the event |",
            histogram_cells(&f.histogram)
        );
    }
    out
}

/// Non-cumulative counts of the non-empty buckets, e.g. `64–128 ms: 198`.
fn histogram_cells(cumulative: &[(String, u64)]) -> String {
    let mut cells = Vec::new();
    let mut previous_count = 0;
    let mut previous_bound = "0".to_owned();
    for (le, count) in cumulative {
        let bound = match le.parse::<f64>() {
            Ok(seconds) if seconds.is_finite() => format!("{}", seconds * 1000.0),
            _ => le.clone(),
        };
        let in_bucket = count.saturating_sub(previous_count);
        if in_bucket > 0 {
            cells.push(format!("{previous_bound}–{bound} ms: {in_bucket}"));
        }
        previous_count = *count;
        previous_bound = bound;
    }
    if cells.is_empty() {
        "no observations".to_owned()
    } else {
        cells.join(", ").replace("–+Inf ms", " ms and more")
    }
}

const SECTION: &str = "## Bridge: registry scale";

const SECTION_INTRO: &str = "\
## Bridge: registry scale

How the bridge copes with a large Dubbo estate: 10,000 interfaces × 10 providers (100,000
endpoints) in a real ZooKeeper and a real etcd, written exactly as Dubbo writes them, watched by the
real release `causeway-bridge` binary. Targets: cold sync of 100k endpoints ≤ 10 s, p99 change →
snapshot ≤ 150 ms with the default debounce, RSS ≤ 300 MB.

- **Cold sync**: from just before the bridge process is spawned until its `/metrics` reports every
  endpoint (`causeway_bridge_endpoints`, polled every 10 ms).
- **Change → snapshot**: a steady churn alternately adds a provider to a random interface and
  removes it again; each change is timed from just before the registry write until `/metrics`
  shows `causeway_bridge_snapshots_total` incremented with the expected endpoint count (polled every
  2 ms). Changes are serialised so each snapshot belongs to one change.
- **RSS**: `VmRSS` and `VmHWM` (peak) of the bridge from `/proc/<pid>/status`, after the sync and
  after the churn.
- **Baselines** (same run, same server): a plain client listing every provider once, with the
  bridge adapter's read concurrency; a plain watcher's delay from each churn write to its event.
  Ratios are bridge ÷ baseline.

Run it with `scripts/bench-bridge.sh` (options: `--help`). Each run appends its results below.
";

/// Appends the run to the "Bridge: registry scale" section, creating the file or section.
fn append_to_doc(path: &Path, run: &str) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if text.trim().is_empty() {
        text = "# Benchmarks\n\n".to_owned();
    }
    let Some(section_start) = text.find(SECTION) else {
        if !text.ends_with("\n\n") {
            text.push_str(if text.ends_with('\n') { "\n" } else { "\n\n" });
        }
        text.push_str(SECTION_INTRO);
        text.push('\n');
        text.push_str(run);
        return write_doc(path, &text);
    };
    // The section ends where the next level-2 heading starts, or at the end of the file.
    let body_start = section_start + SECTION.len();
    let section_end = text[body_start..]
        .find("\n## ")
        .map_or(text.len(), |i| body_start + i + 1);
    let mut before = text[..section_end].trim_end().to_owned();
    before.push_str("\n\n");
    before.push_str(run);
    let after = &text[section_end..];
    if !after.is_empty() {
        before.push('\n');
        before.push_str(after);
    }
    write_doc(path, &before)
}

fn write_doc(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Entry point.

/// The `causeway-bridge` binary to measure: built now in this executable's target directory and
/// profile when cargo launched the bench (so the figures are for the current source), then taken
/// from next to this executable.
fn bridge_binary(options: &Options) -> anyhow::Result<PathBuf> {
    if let Some(path) = &options.bridge {
        ensure!(path.is_file(), "--bridge {} does not exist", path.display());
        return Ok(path.clone());
    }
    ensure!(
        !cfg!(debug_assertions),
        "a debug build measures nothing useful: run with `cargo run --release` \
         (scripts/bench-bridge.sh)"
    );
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
    if options.build
        && let Some(cargo) = std::env::var_os("CARGO")
    {
        // `cargo run -p causeway-tests --bin bridge-bench` builds only this binary; build the
        // bridge into the same target directory (the profile directory's parent).
        let target_dir = profile_dir
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent directory", profile_dir.display()))?;
        println!(
            "building causeway-bridge (release) into {}",
            target_dir.display()
        );
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "causeway-bridge", "--bin"])
            .arg("causeway-bridge")
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(workspace_root())
            .status()
            .context("run cargo build for causeway-bridge")?;
        ensure!(
            status.success(),
            "building causeway-bridge failed: {status}"
        );
    }
    let bridge = profile_dir.join("causeway-bridge");
    ensure!(
        bridge.is_file(),
        "{} not found: build it with `cargo build --release -p causeway-bridge`, or pass --bridge",
        bridge.display()
    );
    Ok(bridge)
}

async fn run(options: Options) -> anyhow::Result<bool> {
    let binary = bridge_binary(&options)?;
    let started = SystemTime::now();
    // A fixed folder, not a temporary one: the bridge's log stays for a look after the run.
    let log_root = std::env::temp_dir().join("causeway-bridge-bench");
    let mut results = Vec::new();
    for &kind in &options.registries {
        let log_dir = log_root.join(kind.name().to_ascii_lowercase());
        std::fs::create_dir_all(&log_dir)?;
        let result = bench(kind, &options, &binary, &log_dir).await;
        match &result {
            Ok(_) => println!(
                "   done; bridge log: {}",
                log_dir.join("causeway-bridge.log").display()
            ),
            Err(error) => eprintln!("   {} not measured: {error:#}", kind.name()),
        }
        results.push((kind, result));
    }
    let report = report(&options, &results, started, &load_average());
    println!("\n{report}");
    if let Some(doc) = &options.doc {
        append_to_doc(doc, &report)?;
        println!("appended to {}", doc.display());
    }
    Ok(results.iter().all(|(_, r)| r.is_ok()))
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("bridge-bench: {error:#}");
            return ExitCode::from(2);
        }
    };
    // One thread: the bench shares two cores with the registry and the bridge, and should take as
    // little of them as it can.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bridge-bench: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bridge-bench: {error:#}");
            ExitCode::FAILURE
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

    #[test]
    fn reads_the_metrics_it_needs() {
        let text = "# TYPE causeway_bridge_snapshots counter\n\
            causeway_bridge_snapshots_total 7\n\
            causeway_bridge_endpoints 100000\n\
            causeway_bridge_services 10000\n\
            causeway_bridge_change_to_snapshot_seconds_sum 1.5\n\
            causeway_bridge_change_to_snapshot_seconds_bucket{le=\"0.064\"} 1\n\
            causeway_bridge_change_to_snapshot_seconds_bucket{le=\"0.128\"} 5\n\
            causeway_bridge_change_to_snapshot_seconds_bucket{le=\"+Inf\"} 6\n# EOF\n";
        let m = Metrics::parse(text);
        assert_eq!((m.snapshots, m.endpoints, m.services), (7, 100_000, 10_000));
        assert_eq!(m.buckets.len(), 3);
        assert_eq!(
            histogram_cells(&m.buckets),
            "0–64 ms: 1, 64–128 ms: 4, 128 ms and more: 1"
        );
    }

    #[test]
    fn log_lines_have_times() {
        let line = "2026-11-21T06:10:13.679005Z DEBUG causeway_bridge::registry::etcd: etcd resync";
        let seconds = log_seconds(line).unwrap();
        assert!((seconds - (6.0 * 3600.0 + 10.0 * 60.0 + 13.679005)).abs() < 1e-6);
        assert_eq!(log_seconds("garbage"), None);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(100));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(198));
        assert_eq!(percentile(&values, 100.0), Duration::from_millis(200));
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc_date(Duration::ZERO), "1970-01-01 00:00 UTC");
        assert_eq!(
            utc_date(Duration::from_secs(1_709_210_096)),
            "2024-02-29 12:34 UTC"
        );
    }

    #[test]
    fn runs_are_appended_inside_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("benchmarks.md");
        append_to_doc(&path, "### Run 1\n").unwrap();
        std::fs::write(
            &path,
            std::fs::read_to_string(&path).unwrap() + "\n## Proxy\n\nother\n",
        )
        .unwrap();
        append_to_doc(&path, "### Run 2\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let run1 = text.find("### Run 1").unwrap();
        let run2 = text.find("### Run 2").unwrap();
        let proxy = text.find("## Proxy").unwrap();
        assert!(text.starts_with("# Benchmarks\n\n## Bridge: registry scale"));
        assert!(run1 < run2 && run2 < proxy, "{text}");
    }
}
