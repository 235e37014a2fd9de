//! `xds-bench`: the bridge's xDS fan-out benchmark (issue 5), in one command
//! (`scripts/bench-xds.sh`).
//!
//! For each estate size asked for (`--services`, default 1,000 and 10,000) it:
//!
//! 1. starts a real ZooKeeper through the harness and writes `--services` Dubbo interfaces ×
//!    `--providers` providers exactly as Dubbo writes them (the estate of `bridge-bench`: providers
//!    labelled with regions and zones);
//! 2. for each debounce setting (`--quiet-ms`, default the bridge's 50 ms and 5 ms), starts the
//!    release `causeway-bridge` as a child process and waits until `/metrics` reports every
//!    endpoint;
//! 3. connects `--clients` delta ADS clients, each on its own HTTP/2 connection, with its own node
//!    id and a locality spread over three zones, subscribed like a scoped sidecar: CDS and EDS by
//!    name for `--subscriptions` clusters, one of them the cluster that will change (the other
//!    ones drawn at random over the estate); `--wildcard-cds` of them subscribe to CDS by wildcard
//!    (a gateway's view). Every response is ACKed with its nonce at once. The **initial sync** is
//!    timed from the first connection until every client has received (and ACKed) its first CDS
//!    and EDS responses;
//! 4. makes `--changes` endpoint changes, one at a time: alternately registers a new provider of
//!    the watched service and unregisters it. Each change is timed from just before the ZooKeeper
//!    write until each client receives the `DeltaDiscoveryResponse` whose `ClusterLoadAssignment`
//!    shows it; the next change waits until every client has it (and a `--gap-ms` pause). Per
//!    change it also sums the encoded size (`prost::Message::encoded_len`) of every response the
//!    clients received;
//! 5. reads the bridge's RSS and CPU time from `/proc/<pid>` before the clients connect, after
//!    the initial sync and after the churn, and this process's own CPU time and the load average
//!    (the clients share the machine's cores with the bridge and ZooKeeper);
//! 6. measures the baseline in the same run: a plain ZooKeeper watcher's delay from each churn
//!    write to its event.
//!
//! The summary is printed and appended to the "Bridge: xDS fan-out" section of
//! `docs/benchmarks.md`.

use causeway_tests::bench::entry::{self, Runtime};
use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use causeway_tests::bench::bridge::{Bridge, bridge_binary};
use causeway_tests::bench::estate::{
    INTERFACES_PER_APP, Kind, Layout, Peer, Registration, Rng, provider, watched,
};
use causeway_tests::bench::measure::{Memory, Spread, cpu_time, load_average, mb, ms, percentile};
use causeway_tests::bench::report::{append_to_doc, machine, revision, utc_date, verdict};
use causeway_tests::paths::workspace_root;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// Target from the issue: every client has an endpoint change within 100 ms (p99).
const TARGET_P99: Duration = Duration::from_millis(100);
const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// The port every simulated provider listens on (`provider()` in the estate).
const DUBBO_PORT: u16 = 20880;
/// Zones of the clients' region (`bench-region-0`), as the estate labels its providers.
const CLIENT_ZONES: [&str; 3] = ["bench-region-0a", "bench-region-0b", "bench-region-0c"];
/// Connections opened at once while the clients connect (a burst of 1,000 SYNs would overflow
/// the listener's backlog and cost retransmission timeouts, not bridge time).
const CONNECT_CONCURRENCY: usize = 64;
/// A change not seen by every client after this long counts as lost for the missing ones.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the initial sync and the bridge's own cold sync may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(180);
/// Poll period while waiting for the bridge's cold sync.
const SYNC_POLL: Duration = Duration::from_millis(20);
/// A wildcard CDS response at 10,000 services is a few MB; tonic's default limit is 4 MiB.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

const USAGE: &str = "\
usage: xds-bench [--clients N] [--services N[,N…]] [--providers N] [--changes N]
                 [--subscriptions N] [--wildcard-cds N] [--quiet-ms MS[,MS…]] [--gap-ms MS]
                 [--doc PATH | --no-doc] [--bridge PATH] [--no-build]

  --clients        delta ADS clients, one HTTP/2 connection each (default: 1000)
  --services       estate sizes to run, Dubbo interfaces in ZooKeeper (default: 1000,10000)
  --providers      providers per interface (default: 3)
  --changes        endpoint changes to time per run (default: 60)
  --subscriptions  clusters each client subscribes to by name, CDS and EDS, the changing one
                   included (default: 20)
  --wildcard-cds   clients that subscribe to CDS by wildcard instead (default: 10)
  --quiet-ms       the bridge's debounce quiet periods to run with (default: 10,50; 10 is the
                   bridge's default, 50 its earlier one)
  --gap-ms         pause after every client has a change, before the next (default: 100)
  --doc PATH       append the results here (default: docs/benchmarks.md of the workspace)
  --no-doc         do not write the results anywhere but stdout
  --bridge PATH    the causeway-bridge binary (default: next to this executable)
  --no-build       do not build causeway-bridge first (default: build it when run by cargo)

A quick run: scripts/bench-xds.sh --clients 50 --services 200 --changes 10 --no-doc";

#[derive(Debug, Clone)]
struct Options {
    clients: usize,
    services: Vec<usize>,
    providers: usize,
    changes: usize,
    subscriptions: usize,
    wildcard_cds: usize,
    quiet_ms: Vec<u64>,
    gap: Duration,
    doc: Option<PathBuf>,
    bridge: Option<PathBuf>,
    build: bool,
}

fn list<T: std::str::FromStr>(flag: &str, value: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .split(',')
        .map(|v| v.trim().parse::<T>().with_context(|| flag.to_owned()))
        .collect()
}

impl Options {
    /// Parses the arguments; `Ok(None)` when help was asked for.
    fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Self>> {
        let mut options = Self {
            clients: 1000,
            services: vec![1000, 10_000],
            providers: 3,
            changes: 60,
            subscriptions: 20,
            wildcard_cds: 10,
            quiet_ms: vec![10, 50],
            gap: Duration::from_millis(100),
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
                "--clients" => options.clients = value()?.parse().context("--clients")?,
                "--services" => options.services = list(&flag, &value()?)?,
                "--providers" => options.providers = value()?.parse().context("--providers")?,
                "--changes" => options.changes = value()?.parse().context("--changes")?,
                "--subscriptions" => {
                    options.subscriptions = value()?.parse().context("--subscriptions")?;
                }
                "--wildcard-cds" => {
                    options.wildcard_cds = value()?.parse().context("--wildcard-cds")?;
                }
                "--quiet-ms" => options.quiet_ms = list(&flag, &value()?)?,
                "--gap-ms" => {
                    options.gap = Duration::from_millis(value()?.parse().context("--gap-ms")?);
                }
                "--doc" => options.doc = Some(PathBuf::from(value()?)),
                "--no-doc" => options.doc = None,
                "--bridge" => options.bridge = Some(PathBuf::from(value()?)),
                "--no-build" => options.build = false,
                "-h" | "--help" => return Ok(None),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        ensure!(options.clients > 0, "--clients must be positive");
        ensure!(
            !options.services.is_empty() && options.services.iter().all(|&s| s > 0),
            "--services must be positive"
        );
        ensure!(options.providers > 0, "--providers must be positive");
        ensure!(options.changes > 0, "--changes must be positive");
        ensure!(
            options.subscriptions > 0,
            "--subscriptions must be positive"
        );
        ensure!(!options.quiet_ms.is_empty(), "--quiet-ms needs a value");
        options.wildcard_cds = options.wildcard_cds.min(options.clients);
        Ok(Some(options))
    }

    fn command(&self) -> String {
        let join = |v: &[String]| v.join(",");
        format!(
            "scripts/bench-xds.sh --clients {} --services {} --providers {} --changes {} \
             --subscriptions {} --wildcard-cds {} --quiet-ms {} --gap-ms {}",
            self.clients,
            join(
                &self
                    .services
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
            self.providers,
            self.changes,
            self.subscriptions,
            self.wildcard_cds,
            join(
                &self
                    .quiet_ms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
            self.gap.as_millis()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The clients.

/// The cluster the bridge publishes for interface `i` (dubbo2istio's host rule: lower-cased
/// interface, then `-<version>` with dots as dashes; the estate's providers are version 1.0.0).
fn cluster_of(i: usize) -> String {
    let host = format!("{}-1-0-0", Layout::interface(i).to_ascii_lowercase());
    format!("outbound|{DUBBO_PORT}||{host}")
}

/// What the clients are waiting for: change `change` makes `ip` present or absent in the
/// watched cluster.
#[derive(Debug, Clone, Default)]
struct Expectation {
    change: Option<usize>,
    ip: String,
    present: bool,
}

/// Counters one client keeps, read by the coordinator between changes.
#[derive(Debug, Default)]
struct ClientCounters {
    responses: AtomicU64,
    bytes: AtomicU64,
    resources: AtomicU64,
}

/// What a client reports.
#[derive(Debug)]
enum Event {
    /// Its first CDS and EDS responses arrived and were ACKed.
    Synced { at: Instant },
    /// It received change `change`.
    Seen { change: usize, at: Instant },
    /// The stream failed.
    Failed { client: usize, error: String },
}

/// One client's subscription.
#[derive(Debug, Clone)]
struct ClientSpec {
    id: usize,
    zone: &'static str,
    clusters: Vec<String>,
    wildcard_cds: bool,
    watched: String,
}

impl ClientSpec {
    fn node(&self) -> Node {
        Node {
            id: format!("xds-bench-{:04}", self.id),
            cluster: "xds-bench".to_owned(),
            locality: Some(Locality {
                region: "bench-region-0".to_owned(),
                zone: self.zone.to_owned(),
                ..Locality::default()
            }),
            ..Node::default()
        }
    }
}

/// The endpoint IPs of a `ClusterLoadAssignment`.
fn endpoint_ips(assignment: &ClusterLoadAssignment) -> HashSet<&str> {
    assignment
        .endpoints
        .iter()
        .flat_map(|locality| &locality.lb_endpoints)
        .filter_map(|lb| match &lb.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(e)) => e.address.as_ref(),
            _ => None,
        })
        .filter_map(|a| match &a.address {
            Some(address::Address::SocketAddress(s)) => Some(s),
            _ => None,
        })
        .filter(|s| {
            matches!(
                s.port_specifier,
                Some(socket_address::PortSpecifier::PortValue(_))
            )
        })
        .map(|s| s.address.as_str())
        .collect()
}

/// One delta ADS client: subscribes, ACKs every response, and reports when the watched cluster
/// matches the current expectation.
async fn run_client(
    spec: ClientSpec,
    channel: Channel,
    counters: Arc<ClientCounters>,
    expect: watch::Receiver<Expectation>,
    events: mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let (tx, rx) = mpsc::channel(8);
    let node = spec.node();
    let cds_names = if spec.wildcard_cds {
        vec!["*".to_owned()]
    } else {
        spec.clusters.clone()
    };
    for (type_url, names) in [(CLUSTER, cds_names), (ENDPOINT, spec.clusters.clone())] {
        tx.send(DeltaDiscoveryRequest {
            node: Some(node.clone()),
            type_url: type_url.to_owned(),
            resource_names_subscribe: names,
            ..DeltaDiscoveryRequest::default()
        })
        .await?;
    }
    let mut inbound = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let (mut cds_seen, mut eds_seen, mut synced) = (false, false, false);
    let mut last_seen: Option<usize> = None;
    while let Some(response) = inbound.message().await? {
        let at = Instant::now();
        counters.responses.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add(response.encoded_len() as u64, Ordering::Relaxed);
        counters
            .resources
            .fetch_add(response.resources.len() as u64, Ordering::Relaxed);
        if response.type_url == ENDPOINT {
            eds_seen = true;
            ensure!(
                !response.removed_resources.contains(&spec.watched),
                "the bridge does not serve {}",
                spec.watched
            );
            check_watched(&spec, &response, &expect, &mut last_seen, at, &events)?;
        } else if response.type_url == CLUSTER {
            cds_seen = true;
        }
        tx.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        })
        .await?;
        if cds_seen && eds_seen && !synced {
            synced = true;
            let _ = events.send(Event::Synced { at: Instant::now() });
        }
    }
    bail!("the bridge closed the stream")
}

/// Reports the current change once the watched cluster in `response` shows it.
fn check_watched(
    spec: &ClientSpec,
    response: &DeltaDiscoveryResponse,
    expect: &watch::Receiver<Expectation>,
    last_seen: &mut Option<usize>,
    at: Instant,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    let Some(resource) = response.resources.iter().find(|r| r.name == spec.watched) else {
        return Ok(());
    };
    let expectation = expect.borrow().clone();
    let Some(change) = expectation.change else {
        return Ok(());
    };
    if *last_seen == Some(change) {
        return Ok(());
    }
    let body = resource
        .resource
        .as_ref()
        .ok_or_else(|| anyhow!("{} sent without a body", spec.watched))?;
    let assignment = ClusterLoadAssignment::decode(body.value.as_slice())?;
    if endpoint_ips(&assignment).contains(expectation.ip.as_str()) == expectation.present {
        *last_seen = Some(change);
        let _ = events.send(Event::Seen { change, at });
    }
    Ok(())
}

/// The clients' subscriptions: the watched cluster plus `subscriptions - 1` drawn over the
/// estate (a deterministic draw, so every run subscribes alike).
fn client_specs(options: &Options, services: usize, watched: usize) -> Vec<ClientSpec> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    (0..options.clients)
        .map(|id| {
            let mut picked = vec![watched];
            let want = options.subscriptions.min(services);
            while picked.len() < want {
                let i = rng.below(services);
                if !picked.contains(&i) {
                    picked.push(i);
                }
            }
            ClientSpec {
                id,
                zone: CLIENT_ZONES[id % CLIENT_ZONES.len()],
                clusters: picked.into_iter().map(cluster_of).collect(),
                // Spread the wildcard clients over the zones too.
                wildcard_cds: id % options.clients.div_ceil(options.wildcard_cds.max(1)) == 0
                    && options.wildcard_cds > 0,
                watched: cluster_of(watched),
            }
        })
        .collect()
}

/// The clients as started: their counters and their tasks.
struct Fleet {
    counters: Vec<Arc<ClientCounters>>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Fleet {
    fn totals(&self) -> (u64, u64, u64) {
        self.counters.iter().fold((0, 0, 0), |(r, b, n), c| {
            (
                r + c.responses.load(Ordering::Relaxed),
                b + c.bytes.load(Ordering::Relaxed),
                n + c.resources.load(Ordering::Relaxed),
            )
        })
    }
}

/// Connects every client (each its own HTTP/2 connection) and starts its stream.
async fn connect_fleet(
    specs: Vec<ClientSpec>,
    xds: std::net::SocketAddr,
    expect: &watch::Receiver<Expectation>,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<Fleet> {
    let endpoint = Endpoint::from_shared(format!("http://{xds}"))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true);
    let mut connecting = JoinSet::new();
    let mut fleet = Fleet {
        counters: Vec::with_capacity(specs.len()),
        tasks: JoinSet::new(),
    };
    let start = |spec: ClientSpec, channel: Channel, fleet: &mut Fleet| {
        let counters = Arc::new(ClientCounters::default());
        fleet.counters.push(counters.clone());
        let (expect, events) = (expect.clone(), events.clone());
        fleet.tasks.spawn(async move {
            let id = spec.id;
            let result = run_client(spec, channel, counters, expect, events.clone()).await;
            if let Err(error) = &result {
                let _ = events.send(Event::Failed {
                    client: id,
                    error: format!("{error:#}"),
                });
            }
            result
        });
    };
    for spec in specs {
        if connecting.len() >= CONNECT_CONCURRENCY
            && let Some(done) = connecting.join_next().await
        {
            let (spec, channel) = done??;
            start(spec, channel, &mut fleet);
        }
        let endpoint = endpoint.clone();
        connecting.spawn(async move {
            let channel = endpoint
                .connect()
                .await
                .with_context(|| format!("client {} connect", spec.id))?;
            anyhow::Ok((spec, channel))
        });
    }
    while let Some(done) = connecting.join_next().await {
        let (spec, channel) = done??;
        start(spec, channel, &mut fleet);
    }
    Ok(fleet)
}

// ---------------------------------------------------------------------------------------------
// One run: an estate size and a debounce setting.

/// One timed change.
#[derive(Debug, Clone)]
struct ChangeSample {
    /// Write → each client's response (one per client that saw it).
    per_client: Vec<Duration>,
    /// Clients that had not seen it after [`CHANGE_TIMEOUT`].
    missing: usize,
    /// Write → a plain watcher's event.
    watch: Option<Duration>,
    /// Responses, encoded bytes and resources the clients received for this change.
    responses: u64,
    bytes: u64,
    resources: u64,
}

/// Everything measured in one run.
#[derive(Debug)]
struct RunFigures {
    services: usize,
    endpoints: usize,
    quiet_ms: u64,
    bridge_sync: Duration,
    memory_idle: Memory,
    initial_sync: Duration,
    initial_bytes: u64,
    initial_responses: u64,
    memory_clients: Memory,
    sync_cpu_bridge: Duration,
    sync_cpu_clients: Duration,
    samples: Vec<ChangeSample>,
    churn_elapsed: Duration,
    churn_cpu_bridge: Duration,
    churn_cpu_clients: Duration,
    memory_churned: Memory,
    load_before: String,
    load_after: String,
}

/// This process's own CPU time (the clients and the coordinator).
fn own_cpu() -> anyhow::Result<Duration> {
    cpu_time(std::process::id())
}

fn debounce_config(dir: &Path, quiet_ms: u64) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("bridge-quiet-{quiet_ms}.yaml"));
    std::fs::write(
        &path,
        format!("debounce: {{quiet_ms: {quiet_ms}, max_ms: 1000}}\n"),
    )?;
    Ok(path)
}

async fn run_once(
    options: &Options,
    peer: &mut Peer,
    layout: Layout,
    quiet_ms: u64,
    binary: &Path,
    log_dir: &Path,
) -> anyhow::Result<RunFigures> {
    let expected = layout.endpoints() as u64;
    let config = debounce_config(log_dir, quiet_ms)?;
    let load_before = load_average();
    let started = Instant::now();
    let extra: Vec<OsString> = vec!["--config".into(), config.into()];
    let mut bridge = Bridge::spawn(binary, &peer.bridge_url(), log_dir, &extra)?;
    loop {
        bridge.process.ensure_running()?;
        if let Ok(metrics) = bridge.scraper.scrape().await
            && metrics.endpoints == expected
        {
            break;
        }
        ensure!(
            started.elapsed() < SYNC_TIMEOUT,
            "the bridge did not report {expected} endpoints within {SYNC_TIMEOUT:?}:\n{}",
            bridge.process.log_tail(20)
        );
        tokio::time::sleep(SYNC_POLL).await;
    }
    let bridge_sync = started.elapsed();
    let memory_idle = Memory::of(bridge.pid())?;
    println!(
        "   bridge (quiet {quiet_ms} ms) has all {expected} endpoints after {:.2} s; RSS {:.0} MB",
        bridge_sync.as_secs_f64(),
        mb(memory_idle.rss_kb)
    );

    // The watched service: the middle of the estate, so nothing about it is special.
    let watched = layout.interfaces / 2;
    let specs = client_specs(options, layout.interfaces, watched);
    let (expect_tx, expect_rx) = watch::channel(Expectation::default());
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let cpu_bridge = cpu_time(bridge.pid())?;
    let cpu_clients = own_cpu()?;
    let started = Instant::now();
    let fleet = connect_fleet(specs, bridge.xds, &expect_rx, &events_tx).await?;
    let mut synced = 0;
    let mut last_synced = started;
    while synced < options.clients {
        match tokio::time::timeout_at((started + SYNC_TIMEOUT).into(), events.recv()).await {
            Ok(Some(Event::Synced { at })) => {
                synced += 1;
                last_synced = last_synced.max(at);
            }
            Ok(Some(Event::Failed { client, error })) => bail!("client {client}: {error}"),
            Ok(Some(Event::Seen { .. })) => {}
            Ok(None) | Err(_) => bail!(
                "only {synced} of {} clients synced within {SYNC_TIMEOUT:?}",
                options.clients
            ),
        }
    }
    let initial_sync = last_synced.duration_since(started);
    let sync_cpu_bridge = cpu_time(bridge.pid())?.saturating_sub(cpu_bridge);
    let sync_cpu_clients = own_cpu()?.saturating_sub(cpu_clients);
    // Let the ACKs land before reading memory and starting the churn.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (initial_responses, initial_bytes, _) = fleet.totals();
    let memory_clients = Memory::of(bridge.pid())?;
    println!(
        "   {} clients synced in {:.2} s ({:.1} MB received); bridge RSS {:.0} MB",
        options.clients,
        initial_sync.as_secs_f64(),
        initial_bytes as f64 / 1e6,
        mb(memory_clients.rss_kb)
    );

    // The churn. The plain watcher starts now, so it only sees the churn's writes.
    let mut zk_events = peer.watch().await?;
    let mut seen_keys = std::collections::HashMap::new();
    let app = watched / INTERFACES_PER_APP;
    let mut next_instance = layout.instances() + 1000;
    let mut pending_removal: Option<Registration> = None;
    let mut samples = Vec::with_capacity(options.changes);
    let cpu_bridge = cpu_time(bridge.pid())?;
    let cpu_clients = own_cpu()?;
    let churn_started = Instant::now();
    // An even count leaves the estate as it was for the next run.
    let changes = options.changes + options.changes % 2;
    for change in 0..changes {
        let (registration, adding) = match pending_removal.take() {
            Some(registration) => (registration, false),
            None => {
                next_instance += 1;
                (
                    provider(&Layout::interface(watched), app, next_instance),
                    true,
                )
            }
        };
        expect_tx.send_replace(Expectation {
            change: Some(change),
            ip: registration.ip.clone(),
            present: adding,
        });
        let before = fleet.totals();
        let t0 = Instant::now();
        if adding {
            peer.add(&registration).await?;
        } else {
            peer.remove(&registration).await?;
        }
        let deadline = t0 + CHANGE_TIMEOUT;
        let mut per_client = Vec::with_capacity(options.clients);
        while per_client.len() < options.clients {
            match tokio::time::timeout_at(deadline.into(), events.recv()).await {
                Ok(Some(Event::Seen { change: c, at })) if c == change => {
                    per_client.push(at.saturating_duration_since(t0));
                }
                Ok(Some(Event::Failed { client, error })) => bail!("client {client}: {error}"),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let after = fleet.totals();
        let missing = options.clients - per_client.len();
        if missing > 0 {
            eprintln!("   change {change}: {missing} clients missed it after {CHANGE_TIMEOUT:?}");
        }
        let watch = watched_delay(&mut zk_events, &mut seen_keys, &registration.key, t0).await;
        samples.push(ChangeSample {
            per_client,
            missing,
            watch,
            responses: after.0 - before.0,
            bytes: after.1 - before.1,
            resources: after.2 - before.2,
        });
        if adding {
            pending_removal = Some(registration);
        }
        tokio::time::sleep(options.gap).await;
    }
    let churn_elapsed = churn_started.elapsed();
    let churn_cpu_bridge = cpu_time(bridge.pid())?.saturating_sub(cpu_bridge);
    let churn_cpu_clients = own_cpu()?.saturating_sub(cpu_clients);
    let memory_churned = Memory::of(bridge.pid())?;
    let load_after = load_average();
    drop(fleet);
    if let Some(line) = bridge.logged_error() {
        eprintln!("   note: the bridge logged an error: {line}");
    }
    Ok(RunFigures {
        services: layout.interfaces,
        endpoints: layout.endpoints(),
        quiet_ms,
        bridge_sync,
        memory_idle,
        initial_sync,
        initial_bytes,
        initial_responses,
        memory_clients,
        sync_cpu_bridge,
        sync_cpu_clients,
        samples,
        churn_elapsed,
        churn_cpu_bridge,
        churn_cpu_clients,
        memory_churned,
        load_before,
        load_after,
    })
}

async fn watched_delay(
    events: &mut causeway_tests::bench::estate::WatchEvents,
    seen: &mut std::collections::HashMap<String, Instant>,
    key: &str,
    since: Instant,
) -> Option<Duration> {
    watched(events, seen, key, since, Duration::from_secs(2))
        .await
        .map(|at| at.saturating_duration_since(since))
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn kb(bytes: f64) -> String {
    if bytes >= 1e6 {
        format!("{:.1} MB", bytes / 1e6)
    } else {
        format!("{:.1} kB", bytes / 1e3)
    }
}

fn report(
    options: &Options,
    runs: &[RunFigures],
    failures: &[String],
    started: SystemTime,
) -> String {
    let mut out = String::new();
    let date = utc_date(started.duration_since(UNIX_EPOCH).unwrap_or_default());
    let _ = writeln!(out, "### Run of {date}\n");
    let _ = writeln!(out, "- Machine: {}", machine());
    let _ = writeln!(out, "- Revision: {}", revision());
    let _ = writeln!(out, "- Command: `{}`", options.command());
    if let Some(bridge) = &options.bridge {
        let _ = writeln!(
            out,
            "- Bridge binary given with `--bridge {}`, not built from this checkout",
            bridge.display()
        );
    }
    let _ = writeln!(
        out,
        "- {} delta clients in one process (multi-threaded runtime), each on its own HTTP/2 \
         connection; CDS + EDS by name for {} clusters each ({} with CDS by wildcard); zones \
         {}; {} providers per service",
        options.clients,
        options.subscriptions,
        options.wildcard_cds,
        CLIENT_ZONES.join(", "),
        options.providers
    );
    for failure in failures {
        let _ = writeln!(out, "- Not measured: {}", failure.replace('\n', " "));
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| Services (endpoints) | Quiet | Change → all clients p50 / p99 / max (ms), p99 ≤ {} | \
         Last client per change p50 / p99 | Raw ZooKeeper watch p50 / p99 → ratio p50, p99 | \
         Bytes per change: all clients / per client (responses) | Initial sync (MB sent) | \
         Bridge RSS idle → clients synced → after churn | Bridge CPU per change (% during churn) \
         | Clients' CPU per change | Load before → after |",
        TARGET_P99.as_millis()
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        let all: Vec<Duration> = run
            .samples
            .iter()
            .flat_map(|s| s.per_client.iter().copied())
            .collect();
        let missing: usize = run.samples.iter().map(|s| s.missing).sum();
        let all = Spread::of(all);
        let last = Spread::of(
            run.samples
                .iter()
                .map(|s| s.per_client.iter().copied().max().unwrap_or_default())
                .collect(),
        );
        let watch = Spread::of(run.samples.iter().filter_map(|s| s.watch).collect());
        let n = run.samples.len().max(1) as f64;
        let bytes = run.samples.iter().map(|s| s.bytes).sum::<u64>() as f64 / n;
        let responses = run.samples.iter().map(|s| s.responses).sum::<u64>() as f64 / n;
        let ratio = |a: Duration, b: Duration| {
            if b.is_zero() {
                "n/a".to_owned()
            } else {
                format!("{:.0}×", a.as_secs_f64() / b.as_secs_f64())
            }
        };
        let churn_s = run.churn_elapsed.as_secs_f64().max(f64::EPSILON);
        let _ = writeln!(
            out,
            "| {} ({}) | {} ms | {:.1} / {:.1} / {:.1} {}{} | {:.1} / {:.1} | {:.1} / {:.1} → {}, \
             {} | {} / {} ({:.0}) | {:.2} s ({:.1} MB, {} responses; bridge CPU {:.1} s, clients \
             {:.1} s) | {:.0} → {:.0} → {:.0} MB (peak {:.0}) | {:.1} ms ({:.0}%) | {:.1} ms | {} \
             → {} |",
            run.services,
            run.endpoints,
            run.quiet_ms,
            ms(all.p50),
            ms(all.p99),
            ms(all.max),
            verdict(all.p99 <= TARGET_P99 && missing == 0),
            if missing > 0 {
                format!(" ({missing} missed)")
            } else {
                String::new()
            },
            ms(last.p50),
            ms(last.p99),
            ms(watch.p50),
            ms(watch.p99),
            ratio(all.p50, watch.p50),
            ratio(all.p99, watch.p99),
            kb(bytes),
            kb(bytes / options.clients as f64),
            responses,
            run.initial_sync.as_secs_f64(),
            run.initial_bytes as f64 / 1e6,
            run.initial_responses,
            run.sync_cpu_bridge.as_secs_f64(),
            run.sync_cpu_clients.as_secs_f64(),
            mb(run.memory_idle.rss_kb),
            mb(run.memory_clients.rss_kb),
            mb(run.memory_churned.rss_kb),
            mb(run.memory_churned.hwm_kb),
            ms(run.churn_cpu_bridge) / n,
            100.0 * run.churn_cpu_bridge.as_secs_f64() / churn_s,
            ms(run.churn_cpu_clients) / n,
            run.load_before,
            run.load_after,
        );
    }
    let _ = writeln!(out);
    for run in runs {
        let per_change: Vec<Duration> = run
            .samples
            .iter()
            .map(|s| s.per_client.iter().copied().max().unwrap_or_default())
            .collect();
        let mut sorted = per_change.clone();
        sorted.sort();
        let resources = run.samples.iter().map(|s| s.resources).sum::<u64>() as f64
            / run.samples.len().max(1) as f64;
        let _ = writeln!(
            out,
            "- {} services, quiet {} ms: bridge cold sync {:.2} s (not a figure); {} changes in \
             {:.1} s; resources per change {:.0}; last client p90 {:.1} ms; bridge memory per \
             connected client {:.1} kB.",
            run.services,
            run.quiet_ms,
            run.bridge_sync.as_secs_f64(),
            run.samples.len(),
            run.churn_elapsed.as_secs_f64(),
            resources,
            ms(percentile(&sorted, 90.0)),
            (run.memory_clients.rss_kb as f64 - run.memory_idle.rss_kb as f64) * 1.024
                / options.clients as f64
        );
    }
    out
}

const SECTION: &str = "## Bridge: xDS fan-out";

const SECTION_INTRO: &str = "\
## Bridge: xDS fan-out

How fast one endpoint change reaches many delta xDS clients, and what it costs. Run it with
`scripts/bench-xds.sh` (options: `--help`); each run appends its results below.
";

// ---------------------------------------------------------------------------------------------
// Entry point.

async fn run(options: Options) -> anyhow::Result<bool> {
    let binary = bridge_binary(options.bridge.as_deref(), options.build)?;
    let started = SystemTime::now();
    let log_root = std::env::temp_dir().join("causeway-xds-bench");
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for &services in &options.services {
        let layout = Layout {
            interfaces: services,
            providers: options.providers,
        };
        println!("\n== {services} services × {} providers", layout.providers);
        let mut peer = Peer::start(Kind::ZooKeeper).await?;
        let t = Instant::now();
        peer.populate(layout).await?;
        println!(
            "   populated in {:.1} s (not a figure)",
            t.elapsed().as_secs_f64()
        );
        for &quiet_ms in &options.quiet_ms {
            let log_dir = log_root.join(format!("{services}-quiet{quiet_ms}"));
            std::fs::create_dir_all(&log_dir)?;
            match run_once(&options, &mut peer, layout, quiet_ms, &binary, &log_dir).await {
                Ok(figures) => runs.push(figures),
                Err(error) => {
                    eprintln!("   {services} services, quiet {quiet_ms} ms: {error:#}");
                    failures.push(format!(
                        "{services} services, quiet {quiet_ms} ms: {error:#}"
                    ));
                }
            }
            println!(
                "   bridge log: {}",
                log_dir.join("causeway-bridge.log").display()
            );
        }
    }
    let report = report(&options, &runs, &failures, started);
    println!("\n{report}");
    if let Some(doc) = &options.doc {
        append_to_doc(doc, SECTION, SECTION_INTRO, &report)?;
        println!("appended to {}", doc.display());
    }
    Ok(failures.is_empty())
}

fn main() -> ExitCode {
    // Multi-threaded: 1,000 streams decoding and ACKing would serialise on one thread and make
    // the clients, not the bridge, the bottleneck. They still share the cores with the bridge
    // and ZooKeeper; their CPU time is reported.
    entry::main(
        "xds-bench",
        USAGE,
        Runtime::MultiThread,
        || Options::parse(std::env::args().skip(1)),
        run,
    )
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::config::endpoint::v3::{
        Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints,
    };

    use super::*;

    #[test]
    fn cluster_names_follow_the_bridge_host_rule() {
        assert_eq!(
            cluster_of(7),
            "outbound|20880||com.causeway.bench.domain07.benchservice00007-1-0-0"
        );
    }

    #[test]
    fn every_client_subscribes_to_the_watched_cluster() {
        let options = Options {
            clients: 30,
            wildcard_cds: 3,
            subscriptions: 5,
            ..Options::parse(Vec::new()).unwrap().unwrap()
        };
        let specs = client_specs(&options, 100, 50);
        assert!(specs.iter().all(|s| s.clusters.contains(&cluster_of(50))));
        assert!(specs.iter().all(|s| s.clusters.len() == 5));
        assert_eq!(specs.iter().filter(|s| s.wildcard_cds).count(), 3);
    }

    #[test]
    fn reads_endpoint_ips() {
        let endpoint = |ip: &str| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: ip.to_owned(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(20880)),
                        ..SocketAddress::default()
                    })),
                }),
                ..EnvoyEndpoint::default()
            })),
            ..LbEndpoint::default()
        };
        let assignment = ClusterLoadAssignment {
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint("10.0.0.1"), endpoint("10.0.0.2")],
                ..LocalityLbEndpoints::default()
            }],
            ..ClusterLoadAssignment::default()
        };
        assert_eq!(
            endpoint_ips(&assignment),
            HashSet::from(["10.0.0.1", "10.0.0.2"])
        );
    }
}
