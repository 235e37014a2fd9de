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

use causeway_tests::bench::entry::{self, Runtime};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use causeway_tests::bench::bridge::{Bridge, bridge_binary};
use causeway_tests::bench::estate::{
    INTERFACES_PER_APP, Kind, Layout, Peer, Registration, Rng, provider, watched,
};
use causeway_tests::bench::measure::{Memory, Spread, cpu_time, load_average, mb, ms};
use causeway_tests::bench::report::{append_to_doc, machine, revision, utc_date, verdict};
use causeway_tests::paths::workspace_root;
use causeway_tests::process::PeerProcess;

/// Targets from the issue.
const TARGET_COLD_SYNC: Duration = Duration::from_secs(10);
const TARGET_P99: Duration = Duration::from_millis(150);
const TARGET_RSS_MB: f64 = 300.0;

/// Polling periods: cold sync is measured in seconds, change latency in tens of milliseconds.
const SYNC_POLL: Duration = Duration::from_millis(10);
const CHANGE_POLL: Duration = Duration::from_millis(2);
/// A change not in a snapshot after this long counts as lost (and as this latency).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

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
    let extra_args: Vec<OsString> = match &serviceentry {
        Some(dir) => vec!["--serviceentry-dir".into(), dir.path().into()],
        None => Vec::new(),
    };
    let mut bridge = Bridge::spawn(binary, &peer.bridge_url(), log_dir, &extra_args)?;
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

// ---------------------------------------------------------------------------------------------
// Entry point.

async fn run(options: Options) -> anyhow::Result<bool> {
    let binary = bridge_binary(options.bridge.as_deref(), options.build)?;
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
        append_to_doc(doc, SECTION, SECTION_INTRO, &report)?;
        println!("appended to {}", doc.display());
    }
    Ok(results.iter().all(|(_, r)| r.is_ok()))
}

fn main() -> ExitCode {
    // One thread: the bench shares two cores with the registry and the bridge, and should take as
    // little of them as it can.
    entry::main(
        "bridge-bench",
        USAGE,
        Runtime::CurrentThread,
        || Options::parse(std::env::args().skip(1)),
        run,
    )
}

#[cfg(test)]
mod tests {
    use causeway_tests::bench::bridge::Metrics;

    use super::*;

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
}
