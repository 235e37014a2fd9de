//! The demo's scenarios, each a walk through rules with what it expects and what it measured:
//!
//! - **canary**: `greet` weighted 100/0 → 80/20 → 50/50 → 0/100 between v1 and v2;
//! - **method**: `slow` to v2 only, everything else to v1 (per-method routing);
//! - **locality**: the consumer's zone serves all calls; when zone-a's providers go away, zone-b
//!   takes over with no failed call; when they return, traffic comes home;
//! - **batch**: steady user traffic (`place`, 5 ms of work) against providers whose "thread pools"
//!   are small: alone (the baseline), with a batch job's flood of `report` calls (attachment
//!   `batch=true`) and no isolation rule (user calls are refused by full providers), and with a
//!   TrafficIsolation that gives batch a budget of its own (no user call fails; batch is shed at
//!   the proxy). Each step reports the user success rate and p99, and the batch calls served and
//!   refused;
//! - **mixed** ([`mixed`]): the estate's Thrift, gRPC and HTTP services through the same proxy,
//!   routed by MetaRouter and VirtualService rules, and counted in its Istio metrics.
//!
//! A step passes when the measured share is within four standard deviations (at least 3 points)
//! of the expected one and no call failed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::greeter::{CallError, Client, Served};

mod mixed;
use crate::mesh::{HOME_ZONE, Mesh, OTHER_ZONE, PROVIDER_CAPACITY};

/// User calls per second in the batch scenario (open loop, like real users).
pub const USER_RATE: u32 = 200;
/// Batch workers, each calling `report` back to back: more than the home zone's providers take.
pub const BATCH_WORKERS: usize = 64;
/// The batch class's budget under the isolation rule: with the users' needs, well within the home
/// zone's two providers.
pub const BATCH_BUDGET: usize = 16;
/// The user class's budget: what the home zone's two providers take, less the batch budget.
pub const USER_BUDGET: usize = 2 * PROVIDER_CAPACITY - BATCH_BUDGET;
/// How long a batch worker waits after a refusal, as a batch job backing off does.
const BATCH_BACKOFF: Duration = Duration::from_millis(50);

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Version shift by weight.
    Canary,
    /// Per-method routing.
    Method,
    /// Batch-job isolation.
    Batch,
    /// Zone failover and return.
    Locality,
    /// Thrift, gRPC and HTTP services routed by the same kind of rules.
    Mixed,
    /// Every scenario.
    All,
}

/// One step's verdict.
#[derive(Debug, Clone)]
pub struct Step {
    /// What was checked.
    pub name: String,
    /// What was expected.
    pub expected: String,
    /// What was measured.
    pub measured: String,
    /// Whether they agree.
    pub passed: bool,
}

/// What a burst of calls saw.
#[derive(Debug, Default)]
pub struct Tally {
    by_version: BTreeMap<String, usize>,
    by_zone: BTreeMap<String, usize>,
    failed: usize,
    first_error: Option<CallError>,
    latencies_us: Vec<u64>,
}

impl Tally {
    /// Counts one call's outcome and how long it took.
    fn record(&mut self, (result, took): (Result<Served, CallError>, Duration)) {
        self.latencies_us.push(took.as_micros() as u64);
        match result {
            Ok(Served { version, zone }) => {
                *self.by_version.entry(version).or_default() += 1;
                *self.by_zone.entry(zone).or_default() += 1;
            }
            Err(error) => {
                self.failed += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }

    /// The first failure seen, if any.
    pub fn first_error(&self) -> Option<&CallError> {
        self.first_error.as_ref()
    }

    /// Calls counted.
    pub fn total(&self) -> usize {
        self.by_version.values().sum::<usize>() + self.failed
    }

    /// The share of calls `version` served.
    pub fn share(&self, version: &str) -> f64 {
        let total = self.total().max(1);
        self.by_version.get(version).copied().unwrap_or(0) as f64 / total as f64
    }

    /// Share of calls that succeeded.
    pub fn success_rate(&self) -> f64 {
        1.0 - self.failed as f64 / self.total().max(1) as f64
    }

    /// Calls that failed.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// A latency percentile in milliseconds (`p` in 0..=1).
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let at = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[at] as f64 / 1000.0
    }

    /// One line: per version, per zone, failures, latency percentiles.
    pub fn summary(&mut self) -> String {
        let versions: Vec<String> = self
            .by_version
            .iter()
            .map(|(v, n)| format!("{v} {n}"))
            .collect();
        let zones: Vec<String> = self
            .by_zone
            .iter()
            .map(|(z, n)| format!("{z} {n}"))
            .collect();
        let (p50, p99) = (self.percentile_ms(0.5), self.percentile_ms(0.99));
        format!(
            "{} | {} | failed {} | p50 {p50:.2} ms p99 {p99:.2} ms",
            versions.join(", "),
            zones.join(", "),
            self.failed,
        )
    }
}

/// Sends `calls` calls of `method` through the proxy, 16 at a time, and tallies who served them.
pub async fn burst(client: &Client, method: &str, calls: usize) -> Tally {
    let method: Arc<str> = Arc::from(method);
    burst_of(calls, || {
        let (client, method) = (client.clone(), method.clone());
        async move { client.call(&method, &[]).await }
    })
    .await
}

/// Calls [`burst_of`] keeps in flight at once.
pub const BURST_IN_FLIGHT: usize = 16;

/// Makes `calls` calls with `call` (any protocol), [`BURST_IN_FLIGHT`] at a time, and tallies
/// who served them.
pub async fn burst_of<F, Fut>(calls: usize, call: F) -> Tally
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Served, CallError>> + Send + 'static,
{
    let mut tally = Tally::default();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut sent = 0;
    while sent < calls || !in_flight.is_empty() {
        while sent < calls && in_flight.len() < BURST_IN_FLIGHT {
            let one = call();
            in_flight.spawn(async move {
                let start = Instant::now();
                let result = one.await;
                (result, start.elapsed())
            });
            sent += 1;
        }
        let Some(Ok(done)) = in_flight.join_next().await else {
            continue;
        };
        tally.record(done);
    }
    tally
}

/// Sends `calls` calls of `method` at `rate` per second whatever the answers (open loop: a slow
/// answer does not slow the next call down, as with real users), and tallies them.
pub async fn steady(client: &Client, method: &str, calls: usize, rate: u32) -> Tally {
    let mut tally = Tally::default();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..calls {
        ticks.tick().await;
        let client = client.clone();
        let method = method.to_owned();
        in_flight.spawn(async move {
            let start = Instant::now();
            let result = client.call(&method, &[]).await;
            (result, start.elapsed())
        });
        while let Some(Ok(done)) = in_flight.try_join_next() {
            tally.record(done);
        }
    }
    while let Some(done) = in_flight.join_next().await {
        if let Ok(done) = done {
            tally.record(done);
        }
    }
    tally
}

/// A batch job: workers calling `report` with `batch=true` back to back until stopped.
pub struct Flood {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    workers: tokio::task::JoinSet<()>,
}

/// What a batch job got done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodResult {
    /// Calls served.
    pub served: usize,
    /// Calls refused (by a full provider or by the proxy).
    pub refused: usize,
}

impl Flood {
    /// Starts `workers` workers on their own connection (`client`).
    pub fn start(client: &Client, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (client, stop, served, refused) = (
                client.clone(),
                stop.clone(),
                served.clone(),
                refused.clone(),
            );
            set.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.call("report", &[("batch", "true")]).await {
                        Ok(_) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(BATCH_BACKOFF).await;
                        }
                    }
                }
            });
        }
        Self {
            stop,
            served,
            refused,
            workers: set,
        }
    }

    /// Stops the workers once their calls in progress end.
    pub async fn stop(mut self) -> FloodResult {
        self.stop.store(true, Ordering::Relaxed);
        while self.workers.join_next().await.is_some() {}
        FloodResult {
            served: self.served.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// Whether `share` is close enough to `expected` for `n` calls.
pub(crate) fn close(share: f64, expected: f64, n: usize) -> bool {
    let sd = (expected * (1.0 - expected) / n.max(1) as f64).sqrt();
    (share - expected).abs() <= (4.0 * sd).max(0.03)
}

fn rules(host: &str, v1: u32, v2: u32, slow_to_v2: bool) -> String {
    let method_route = if slow_to_v2 {
        format!(
            "  - name: slow-to-v2
    match: {{attributes: {{method: {{exact: slow}}}}}}
    route: [{{destination: {{host: {host}, subset: v2}}}}]
"
        )
    } else {
        String::new()
    };
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter, namespace: causeway-demo}}
spec:
  host: {host}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {{name: greeter, namespace: causeway-demo}}
spec:
  hosts: [{host}]
  routes:
{method_route}  - name: split
    route:
    - {{destination: {{host: {host}, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: {host}, subset: v2}}, weight: {v2}}}
"
    )
}

/// Applies rules and waits until the proxy's split route has exactly these weights (and, with
/// `slow_to_v2`, the method route in front of it).
pub async fn apply(mesh: &Mesh, v1: u32, v2: u32, slow_to_v2: bool) -> anyhow::Result<()> {
    let host = mesh.host.clone();
    let expected_routes = if slow_to_v2 { 2 } else { 1 };
    let mut expected: Vec<(&str, u32)> = [("v1", v1), ("v2", v2)]
        .into_iter()
        .filter(|(_, weight)| *weight > 0)
        .collect();
    // A lone destination takes everything, whatever its weight.
    if let [(_, weight)] = expected.as_mut_slice() {
        *weight = 1;
    }
    mesh.apply_rules(&rules(&host, v1, v2, slow_to_v2), move |snapshot| {
        snapshot.dubbo.values().flatten().any(|table| {
            let Some(split) = table.routes.last() else {
                return false;
            };
            let weights: Vec<(&str, u32)> = split
                .destinations
                .entries()
                .iter()
                .map(|(cluster, weight)| (cluster.split('|').nth(2).unwrap_or(""), *weight))
                .collect();
            let mut relative = weights.clone();
            if let [(_, weight)] = relative.as_mut_slice() {
                *weight = 1;
            }
            table.host == host && table.routes.len() == expected_routes && relative == expected
        })
    })
    .await
}

fn isolation_rules(host: &str, isolated: bool) -> String {
    let mut yaml = rules(host, 50, 50, false);
    if isolated {
        yaml.push_str(&format!(
            "---
apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {{name: greeter, namespace: causeway-demo}}
spec:
  host: {host}
  classes:
  - name: batch
    match: {{attributes: {{batch: {{exact: 'true'}}}}}}
    maxConcurrency: {BATCH_BUDGET}
    shedOrder: 0
  - name: user
    maxConcurrency: {USER_BUDGET}
    shedOrder: 10
  defaultClass: user
"
        ));
    }
    yaml
}

/// Applies the 50/50 rules with or without the TrafficIsolation and waits until the proxy has
/// (or no longer has) the host's classes.
async fn apply_isolation(mesh: &Mesh, isolated: bool) -> anyhow::Result<()> {
    let host = mesh.host.clone();
    mesh.apply_rules(&isolation_rules(&host, isolated), move |snapshot| {
        let has_classes = snapshot
            .admission(&host)
            .is_some_and(|policy| policy.isolation.is_some());
        let split = snapshot.dubbo.values().flatten().any(|table| {
            table.host == host
                && table.routes.len() == 1
                && table.routes[0].destinations.entries().len() == 2
        });
        has_classes == isolated && split
    })
    .await
}

/// The proxy's count of batch calls it shed so far.
fn batch_shed(mesh: &Mesh) -> f64 {
    let text = mesh.proxy.metrics.encode().unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("causeway_proxy_shed_total{") && l.contains("traffic_class=\"batch\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One batch step's line: user success and p99 (and the ratio to the baseline), batch work.
fn batch_measured(
    users: &mut Tally,
    baseline_p99: f64,
    batch: Option<(FloodResult, f64)>,
) -> String {
    let p99 = users.percentile_ms(0.99);
    let p50 = users.percentile_ms(0.5);
    let mut text = format!(
        "users: {:.2}% ok ({} failed), p50 {p50:.2} ms p99 {p99:.2} ms",
        users.success_rate() * 100.0,
        users.failed,
    );
    if baseline_p99 > 0.0 {
        text.push_str(&format!(" ({:.2}× baseline)", p99 / baseline_p99));
    }
    if let Some((flood, shed)) = batch {
        text.push_str(&format!(
            " | batch: {} served, {} refused ({shed:.0} shed by the proxy)",
            flood.served, flood.refused
        ));
    }
    if let Some(error) = &users.first_error {
        text.push_str(&format!(" (first user failure: {error})"));
    }
    text
}

/// Batch isolation: users alone, users with a batch flood and no rule, then with the rule.
pub async fn batch(mesh: &Mesh, client: &Client, calls: usize) -> anyhow::Result<Vec<Step>> {
    apply_isolation(mesh, false).await?;
    let batch_client = Client::connect(mesh.proxy_addr()?).await?;
    // Warm-up, not measured: connections and the balancer's latency estimates settle first.
    steady(client, "place", calls / 4, USER_RATE).await;
    let mut baseline = steady(client, "place", calls, USER_RATE).await;
    let baseline_p99 = baseline.percentile_ms(0.99);
    let baseline_step = Step {
        name: "batch baseline".into(),
        expected: "users alone: none fail".into(),
        measured: batch_measured(&mut baseline, 0.0, None),
        passed: baseline.failed == 0,
    };

    let flood = Flood::start(&batch_client, BATCH_WORKERS);
    let shed_before = batch_shed(mesh);
    let mut exposed = steady(client, "place", calls, USER_RATE).await;
    let exposed_flood = flood.stop().await;
    let exposed_step = Step {
        name: "batch flood, no rule".into(),
        expected: "users refused by full providers".into(),
        measured: batch_measured(
            &mut exposed,
            baseline_p99,
            Some((exposed_flood, batch_shed(mesh) - shed_before)),
        ),
        // What the rule is for: without it the flood takes the users' capacity.
        passed: exposed.failed > 0,
    };

    apply_isolation(mesh, true).await?;
    let flood = Flood::start(&batch_client, BATCH_WORKERS);
    let shed_before = batch_shed(mesh);
    let mut isolated = steady(client, "place", calls, USER_RATE).await;
    let isolated_flood = flood.stop().await;
    let shed = batch_shed(mesh) - shed_before;
    let isolated_step = Step {
        name: "batch flood, isolated".into(),
        expected: "no user fails; batch shed at proxy".into(),
        measured: batch_measured(&mut isolated, baseline_p99, Some((isolated_flood, shed))),
        passed: isolated.failed == 0 && shed > 0.0 && isolated_flood.served > 0,
    };
    apply_isolation(mesh, false).await?;
    Ok(vec![baseline_step, exposed_step, isolated_step])
}

pub(crate) fn step(name: String, expected: String, mut tally: Tally, passed: bool) -> Step {
    let passed = passed && tally.failed == 0;
    let mut measured = tally.summary();
    if let Some(error) = &tally.first_error {
        measured.push_str(&format!(" (first failure: {error})"));
    }
    Step {
        name,
        expected,
        measured,
        passed,
    }
}

/// Canary: the share of v2 follows the weights.
pub async fn canary(mesh: &Mesh, client: &Client, calls: usize) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (v1, v2) in [(100, 0), (80, 20), (50, 50), (0, 100)] {
        apply(mesh, v1, v2, false).await?;
        let tally = burst(client, "greet", calls).await;
        let expected = f64::from(v2) / 100.0;
        let passed = close(tally.share("v2"), expected, calls);
        steps.push(step(
            format!("canary {v1}/{v2}"),
            format!("v2 share {:.0}% of greet", expected * 100.0),
            tally,
            passed,
        ));
    }
    Ok(steps)
}

/// The Apache Dubbo Java sample's consumer through the proxy at 80/20: a real Dubbo client's
/// calls split by the same rules.
async fn java_consumer(
    mesh: &Mesh,
    program: &causeway_tests::java::JavaProgram,
    calls: usize,
) -> anyhow::Result<Vec<Step>> {
    apply(mesh, 80, 20, false).await?;
    let run = crate::java::consumer(program, mesh.proxy_addr()?, calls).await?;
    let total = run.failed + run.by_version.values().sum::<usize>();
    let v2 = run.by_version.get("v2").copied().unwrap_or(0);
    let share = v2 as f64 / total.max(1) as f64;
    let mut measured: Vec<String> = run
        .by_version
        .iter()
        .map(|(version, n)| format!("{version} {n}"))
        .collect();
    measured.push(format!("failed {}", run.failed));
    if let Some(error) = &run.first_error {
        measured.push(format!("first failure: {error}"));
    }
    Ok(vec![Step {
        name: "java consumer 80/20".into(),
        expected: "v2 share 20% of greet".into(),
        measured: measured.join(" | "),
        passed: run.failed == 0 && close(share, 0.2, total),
    }])
}

/// Method routing: `slow` only to v2, `greet` only to v1.
pub async fn method(mesh: &Mesh, client: &Client, calls: usize) -> anyhow::Result<Vec<Step>> {
    apply(mesh, 100, 0, true).await?;
    let slow = burst(client, "slow", calls).await;
    let slow_ok = slow.share("v2") == 1.0;
    let greet = burst(client, "greet", calls).await;
    let greet_ok = greet.share("v1") == 1.0;
    Ok(vec![
        step("method slow".into(), "100% to v2".into(), slow, slow_ok),
        step("method greet".into(), "100% to v1".into(), greet, greet_ok),
    ])
}

/// Locality: home zone first; failover when it empties; back when it returns.
pub async fn locality(mesh: &mut Mesh, client: &Client, calls: usize) -> anyhow::Result<Vec<Step>> {
    apply(mesh, 50, 50, false).await?;
    let zone_share =
        |tally: &Tally, zone: &str| tally.by_zone.get(zone).copied().unwrap_or(0) == tally.total();
    let home = burst(client, "greet", calls).await;
    let home_ok = zone_share(&home, HOME_ZONE);
    mesh.stop_zone(HOME_ZONE).await?;
    let away = burst(client, "greet", calls).await;
    let away_ok = zone_share(&away, OTHER_ZONE);
    mesh.start_zone(HOME_ZONE).await?;
    let back = burst(client, "greet", calls).await;
    let back_ok = zone_share(&back, HOME_ZONE);
    Ok(vec![
        step(
            "locality home".into(),
            format!("all served in {HOME_ZONE}"),
            home,
            home_ok,
        ),
        step(
            format!("locality {HOME_ZONE} down"),
            format!("all served in {OTHER_ZONE}, none failed"),
            away,
            away_ok,
        ),
        step(
            format!("locality {HOME_ZONE} back"),
            format!("all served in {HOME_ZONE} again"),
            back,
            back_ok,
        ),
    ])
}

/// Runs the chosen scenarios; returns every step.
pub async fn run(
    mesh: &mut Mesh,
    scenario: Scenario,
    calls: usize,
    report: &mut impl FnMut(&Step),
) -> anyhow::Result<Vec<Step>> {
    let client = Client::connect(mesh.proxy_addr()?).await?;
    let wanted = |s: Scenario| scenario == Scenario::All || scenario == s;
    let mut all = Vec::new();
    let mut record = |steps: Vec<Step>, all: &mut Vec<Step>| {
        for step in steps {
            report(&step);
            all.push(step);
        }
    };
    if wanted(Scenario::Canary) {
        record(canary(mesh, &client, calls).await?, &mut all);
    }
    if wanted(Scenario::Method) {
        record(method(mesh, &client, calls).await?, &mut all);
    }
    if wanted(Scenario::Locality) {
        record(locality(mesh, &client, calls).await?, &mut all);
    }
    if let Some(program) = mesh.java()
        && wanted(Scenario::Canary)
    {
        record(java_consumer(mesh, program, calls).await?, &mut all);
    }
    // The batch scenario fills the Rust providers' small "thread pools" with `report` calls;
    // the Java sample has neither.
    if wanted(Scenario::Batch) && mesh.java().is_none() {
        record(batch(mesh, &client, calls).await?, &mut all);
    }
    if wanted(Scenario::Mixed) {
        record(mixed::run(mesh, calls).await?, &mut all);
    }
    // Leave the mesh routing to every version.
    apply(mesh, 50, 50, false).await?;
    Ok(all)
}
